using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Health;
using Romana.Actors.Routing;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Tests.Health;

/// <summary>The standby repair's decision, without Akka: which routes a supervisor moves, and where.</summary>
public class StandbyRepairTests
{
    private static readonly NodeName A1 = new("a1"), A2 = new("a2"), A3 = new("a3");
    private static readonly Ipv4Cidr S1 = Ipv4Cidr.Parse("100.64.0.0/24"), A2Block = Ipv4Cidr.Parse("100.64.0.64/26");

    /// <summary>Romana's routes through s1's nodes: two through a2 in rtb-a, one through a1, one through a2 in rtb-b.</summary>
    private static readonly RoutesThrough Routes = RoutesThrough.Of(new SubnetId("s1"),
        [new RouteThrough("rtb-a", S1, A2), new RouteThrough("rtb-a", A2Block, A2),
            new RouteThrough("rtb-a", Ipv4Cidr.Parse("100.64.0.128/26"), A1), new RouteThrough("rtb-b", S1, A2)],
        new Dictionary<NodeName, string> { [A1] = "eni-a1", [A2] = "eni-a2", [A3] = "eni-a3" });

    private static Ec2RouteTable Table(string id, params (string Cidr, string Target)[] routes) =>
        new(id, [], [new Ec2Route("10.0.0.0/16", "local"), .. routes.Select(r => new Ec2Route(r.Cidr, r.Target))]);

    private static readonly Ec2RouteTable[] Ec2 =
    [
        Table("rtb-a", ("0.0.0.0/0", "igw-1"), ("100.64.0.0/24", "eni-a2"), ("100.64.0.64/26", "eni-a2"), ("100.64.0.128/26", "eni-a1"),
            ("192.168.0.0/16", "eni-a2")), // the last is someone else's, though it goes to the failed node's ENI
        Table("rtb-b", ("100.64.0.0/24", "eni-a2")),
    ];

    private static StandbyRepair.Decision Decide(IEnumerable<Ec2RouteTable> tables, ImmutableSortedSet<NodeName> failed,
        params NodeName[] watched) => StandbyRepair.Decide(Routes, tables, A2, failed, watched);

    [Fact]
    public void Only_romanas_routes_that_ec2_still_sends_to_the_failed_node_move_to_the_first_healthy_peer_by_name()
    {
        var decision = Decide(Ec2, [A2], A3, A2, A1);
        Assert.Equal(A1, decision.To);
        Assert.Equal("eni-a1", decision.ToEni);
        Assert.Equal([("rtb-a", S1), ("rtb-a", A2Block), ("rtb-b", S1)], decision.Moves.Select(m => (m.Table, m.Cidr)).Order());
        Assert.All(decision.Moves, m => Assert.Equal(("eni-a2", "eni-a1"), (m.FromEni, m.ToEni)));
        // Someone else's route to the same ENI, Romana's route through a1 and the foreign default route are not in it.
        Assert.DoesNotContain(decision.Moves, m => m.Cidr == Ipv4Cidr.Parse("192.168.0.0/16"));
        Assert.DoesNotContain(decision.Moves, m => m.Cidr == Ipv4Cidr.Parse("100.64.0.128/26"));
    }

    [Fact]
    public void A_route_of_romanas_that_ec2_already_sends_elsewhere_is_left_as_it_is()
    {
        var moved = new[] { Table("rtb-a", ("100.64.0.0/24", "eni-a3"), ("100.64.0.64/26", "eni-someone")), Table("rtb-b") };
        Assert.Empty(Decide(moved, [A2], A1, A2, A3).Moves);
    }

    [Fact]
    public void The_peer_is_a_watched_node_not_judged_failed_with_an_eni()
    {
        Assert.Equal(A3, Decide(Ec2, [A1, A2], A1, A2, A3).To); // a1 failed too
        Assert.Equal(A3, Decide(Ec2, [A2], A2, A3).To);         // a1 not watched: its health is unknown here
        var withoutEni = Routes with { Enis = Routes.Enis.SetItem(A1, "") };
        Assert.Equal(A3, StandbyRepair.Decide(withoutEni, Ec2, A2, [A2], [A1, A2, A3]).To);
    }

    [Fact]
    public void Without_a_healthy_peer_nothing_moves()
    {
        var decision = Decide(Ec2, [A1, A2, A3], A1, A2, A3);
        Assert.True(decision.NoPeer);
        Assert.Null(decision.To);
        Assert.Equal(3, decision.Moves.Length); // what would have moved, for the error log
    }

    [Fact]
    public void A_failed_node_whose_eni_the_list_does_not_give_moves_nothing()
    {
        var unknown = Routes with { Enis = Routes.Enis.Remove(A2) };
        Assert.Equal(StandbyRepair.Decision.Nothing, StandbyRepair.Decide(unknown, Ec2, A2, [A2], [A1, A2, A3]));
    }

    [Fact]
    public void A_route_lists_version_follows_its_content_whatever_the_order_and_is_never_zero()
    {
        var reordered = RoutesThrough.Of(new SubnetId("s1"), Routes.Routes.Reverse(), Routes.Enis.Reverse());
        Assert.Equal(Routes.Version, reordered.Version);
        Assert.Equal(Routes.Routes.AsEnumerable(), reordered.Routes);
        Assert.NotEqual(0, Routes.Version);
        var moved = RoutesThrough.Of(new SubnetId("s1"), [.. Routes.Routes.Select(r => r.Node == A2 ? r with { Node = A1 } : r)],
            Routes.Enis);
        Assert.NotEqual(Routes.Version, moved.Version);
        Assert.NotEqual(Routes.Version, RoutesThrough.Of(new SubnetId("s1"), Routes.Routes, Routes.Enis.SetItem(A3, "eni-new")).Version);
    }
}
