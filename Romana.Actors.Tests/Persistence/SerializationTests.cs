using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Microsoft.Data.Sqlite;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Ipam;
using Romana.Actors.Persistence;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Persistence;

public class SerializationTests
{
    private static readonly DateTimeOffset At = DateTimeOffset.Parse("2026-11-28T05:00:00Z");
    private static readonly ImmutableArray<Ipv4Cidr> Ranges = [Ipv4Cidr.Parse("10.0.0.0/31")];

    private static readonly object[] AllEvents =
    [
        new ZoneMessages.ZoneDeclared(new("z"), Ipv4Cidr.Parse("10.0.0.0/9"), At, "zone configured"),
        new ZoneMessages.SubnetPrefixAssigned(new("z"), new("s"), Ipv4Cidr.Parse("10.0.0.0/10"), At, "subnet configured"),
        new SubnetMessages.NodeJoined(new("s"), new("n"), Ipv4.Parse("192.168.0.1"), At, "node added"),
        new SubnetMessages.NodeLeft(new("s"), new("n"), At, "node removed"),
        new SubnetMessages.BlockAssigned(new("s"), Ipv4Cidr.Parse("10.0.0.0/26"), new("n"), At, "node out of addresses"),
        new SubnetMessages.BlockReclaimed(new("s"), Ipv4Cidr.Parse("10.0.0.0/26"), new("n"), At, "empty block reclaimed"),
        new SubnetMessages.RangeReserved(new("s"), Ipv4Cidr.Parse("10.0.0.0/30"), Ranges, At, "reserved by operator"),
        new SubnetMessages.RangeUnreserved(new("s"), Ipv4Cidr.Parse("10.0.0.0/30"), At, "unreserved by operator"),
        new ReservationMessages.ReservationMade(Ipv4Cidr.Parse("10.0.0.0/25"), Ranges, [new("s"), new("t")], At,
            "reserved by operator, across subnets s, t"),
        new ReservationMessages.ReservationLifted(Ipv4Cidr.Parse("10.0.0.0/25"), [new("s"), new("t")], At, "unreserved by operator"),
        new NodeMessages.BlockAdopted(new("n"), Ipv4Cidr.Parse("10.0.0.0/26"), Ranges, At, "granted"),
        new NodeMessages.AddressesAllocated(new("n"), [new AllocatedAddress(new("c1/eth0"), Ipv4.Parse("10.0.0.1"), "default/web-1"),
            new AllocatedAddress(new("c2/eth0"), Ipv4.Parse("10.0.0.2"), null),
            new AllocatedAddress(new("c3/eth0"), Ipv4.Parse("10.0.0.3"), "default/web-3", "0:4:4026532301")], At, "allocated"),
        new NodeMessages.AddressesReleased(new("n"), [new ReleasedAddress(new("c1/eth0"), Ipv4.Parse("10.0.0.1"), "CNI DEL")], At,
            "released"),
        new NodeMessages.BlockReturned(new("n"), Ipv4Cidr.Parse("10.0.0.0/26"), At, "reclaimed for node m"),
        new NodeMessages.RangeFenced(new("n"), Ipv4Cidr.Parse("10.0.0.0/30"), At, "reservation"),
        new NodeMessages.RangeUnfenced(new("n"), Ipv4Cidr.Parse("10.0.0.0/30"), At, "reservation lifted"),
        new RouteManagerMessages.RouteTableAdopted("rtb-1", At, "selected by tag"),
        new RouteManagerMessages.RouteClaimed("rtb-1", Ipv4Cidr.Parse("100.64.0.0/24"), new("n"), "eni-1", At, "plan"),
        new RouteManagerMessages.RouteCreated("rtb-1", Ipv4Cidr.Parse("100.64.0.0/24"), new("n"), "eni-1", At, "plan"),
        new RouteManagerMessages.RouteReplaced("rtb-1", Ipv4Cidr.Parse("100.64.0.0/24"), new("n"), new("m"), "eni-2", At, "failover"),
        new RouteManagerMessages.RouteDeleted("rtb-1", Ipv4Cidr.Parse("100.64.0.0/24"), new("m"), At, "plan"),
        new RouteManagerMessages.RouteClaimDropped("rtb-1", Ipv4Cidr.Parse("100.64.0.0/24"), At, "exists with target pcx-1"),
        new RouteManagerMessages.RouteLimitLearned("rtb-1", 40, At, "budget"),
        new RouteManagerMessages.Ec2CallFailed("CreateRoute", "rtb-1", "InvalidParameterValue", "bad", At, "retried on the next pass"),
        new RouteManagerMessages.PlanRefused("route table rtb-1 needs 3 routes", At, "budget"),
        new RouteManagerMessages.SourceDestCheckDisabled(new("n"), "eni-1", At, "forwarding"),
        new RouteManagerMessages.NoHealthyForwarder(new("s"), [new("n")], At, "every node of the subnet is judged failed"),
        new RouteManagerMessages.RouteBudgetsObserved(ImmutableDictionary<string, int>.Empty.Add("rtb-1", 50), At, "route tables read",
            ImmutableDictionary<string, ImmutableArray<SubnetId>>.Empty.Add("rtb-1", [new SubnetId("s")])),
        new Romana.Actors.Health.HealthMessages.ForwarderFailed(new("s"), new("n"), At, "3 probes in a row unanswered"),
        new Romana.Actors.Health.HealthMessages.ForwarderRecovered(new("s"), new("n"), At, "3 probes in a row answered"),
        new Romana.Actors.Health.HealthMessages.ForwarderRoutesMovedByStandby(new("s"), new("n"), new("m"),
            [new Romana.Actors.Health.StandbyMovedRoute("rtb-1", Ipv4Cidr.Parse("100.64.0.0/24"), "eni-1", "eni-2")], At,
            "the route manager did not answer within 300 ms"),
    ];

    public static TheoryData<object> Events() => new(AllEvents);

    [Theory]
    [MemberData(nameof(Events))]
    public void Every_event_round_trips_and_reads_as_text(object e)
    {
        var serializer = new RomanaSerializer(null!);
        var bytes = serializer.ToBinary(e);
        var back = serializer.FromBinary(bytes, serializer.Manifest(e));
        Assert.Equal(e.GetType().Name, serializer.Manifest(e));
        Assert.Equal(System.Text.Encoding.UTF8.GetString(bytes), System.Text.Encoding.UTF8.GetString(serializer.ToBinary(back)));
        Assert.DoesNotContain("\"value\"", System.Text.Encoding.UTF8.GetString(bytes)); // addresses and names are plain strings
        Assert.True(e is IIpamEvent or IRouteEvent or Romana.Actors.Health.IHealthEvent);
    }

    /// <summary>
    /// Netns is an optional field added to AddressesAllocated in issue 11: a row written before it (no "netns") reads with
    /// none, under the same manifest, and a row that has one keeps it.
    /// </summary>
    [Fact]
    public void An_allocation_written_before_the_namespace_identity_reads_with_none()
    {
        var serializer = new RomanaSerializer(null!);
        const string before = """
            {"node":"n","addresses":[{"key":"c1/eth0","address":"10.0.0.1","pod":"default/web-1"}],
             "at":"2026-11-28T05:00:00+00:00","reason":"allocated"}
            """;
        var old = Assert.IsType<NodeMessages.AddressesAllocated>(
            serializer.FromBinary(System.Text.Encoding.UTF8.GetBytes(before), "AddressesAllocated"));
        Assert.Null(old.Addresses[0].Netns);
        Assert.Equal("AddressesAllocated", serializer.Manifest(old));
        var now = old with { Addresses = [old.Addresses[0] with { Netns = "0:4:4026532301" }] };
        Assert.Contains("\"netns\":\"0:4:4026532301\"", System.Text.Encoding.UTF8.GetString(serializer.ToBinary(now)));
    }

    [Fact]
    public void Every_event_type_of_the_assembly_is_covered_here()
    {
        var covered = AllEvents.Select(e => e.GetType()).ToHashSet();
        var all = typeof(IRomanaEvent).Assembly.GetTypes().Where(t => !t.IsAbstract && typeof(IRomanaEvent).IsAssignableFrom(t));
        Assert.All(all, t => Assert.Contains(t, covered));
    }

    [Fact]
    public void A_state_handed_to_save_snapshot_is_stored_as_its_snapshot_record()
    {
        var serializer = new RomanaSerializer(null!);
        var state = NodeState.Empty(new("n"), 30)
            .Apply(new NodeMessages.BlockAdopted(new("n"), Ipv4Cidr.Parse("10.0.0.0/30"), [], At, "x"));
        Assert.Equal(nameof(NodeSnapshot), serializer.Manifest(state));
        var back = Assert.IsType<NodeSnapshot>(serializer.FromBinary(serializer.ToBinary(state), nameof(NodeSnapshot)));
        Assert.Equal(["10.0.0.0/30"], back.Blocks.Select(b => b.ToString()));
    }

    [Fact]
    public async Task Every_journal_row_is_tagged_ipam()
    {
        using var journal = new TempJournal();
        await using (var ipam = await journal.StartAsync(Topologies.TwoZones()))
        {
            Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new("a"), new("s1"), "10.1.0.1")));
            Assert.IsType<AddressAssigned>(await ipam.AskAsync(new Allocate(new("a"), new("k"))));
            Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(new AllocationKey("k"), null)));
        }
        using var connection = new SqliteConnection($"Data Source={journal.Settings.SqlitePath}");
        connection.Open();
        using var query = connection.CreateCommand();
        // Tags are kept in the row, between separators (tag-write-mode = Csv).
        query.CommandText = "SELECT (SELECT COUNT(*) FROM journal), (SELECT COUNT(*) FROM journal WHERE tags = ';ipam;')";
        using var reader = query.ExecuteReader();
        reader.Read();
        Assert.True(reader.GetInt64(0) >= 8);
        Assert.Equal(reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>
    /// What the route manager and a subnet's supervisor tell each other for the standby repair crosses the network: each
    /// round-trips through Romana's serializer under its protocol's name, and a status from a build before the route list
    /// (no version) reads as holding none.
    /// </summary>
    [Fact]
    public void The_standby_repairs_messages_round_trip_and_an_older_status_holds_no_route_list()
    {
        var serializer = new RomanaSerializer(null!);
        var routes = Romana.Actors.Health.HealthMessages.RoutesThrough.Of(new("s"),
            [new Romana.Actors.Health.HealthMessages.RouteThrough("rtb-1", Ipv4Cidr.Parse("100.64.0.0/24"), new("n"))],
            new Dictionary<NodeName, string> { [new("n")] = "eni-1", [new("m")] = "eni-2" });
        var back = Assert.IsType<Romana.Actors.Health.HealthMessages.RoutesThrough>(
            serializer.FromBinary(serializer.ToBinary(routes), serializer.Manifest(routes)));
        Assert.Equal("HealthMessages.RoutesThrough", serializer.Manifest(routes));
        Assert.Equal((routes.Subnet, routes.Version), (back.Subnet, back.Version));
        Assert.Equal(routes.Routes.AsEnumerable(), back.Routes);
        Assert.Equal(routes.Enis.OrderBy(e => e.Key), back.Enis.OrderBy(e => e.Key));
        var noted = new Romana.Actors.Health.HealthMessages.FailoverNoted(new("s"), new("n"));
        Assert.Equal(noted, serializer.FromBinary(serializer.ToBinary(noted), serializer.Manifest(noted)));

        var older = System.Text.Encoding.UTF8.GetBytes("""{"subnet":"s","watched":["n","m"],"failed":["n"]}""");
        var status = Assert.IsType<Romana.Actors.Health.HealthMessages.SubnetHealth>(
            serializer.FromBinary(older, "HealthMessages.SubnetHealth"));
        Assert.Equal(0, status.RoutesThroughVersion);
        Assert.Equal(["n"], status.Failed.Select(n => n.Value));
    }
}
