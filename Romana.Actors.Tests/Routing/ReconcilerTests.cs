using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Tests.Routing;

public class ReconcilerTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;
    private static readonly Ipv4Cidr S1 = Ipv4Cidr.Parse("100.64.0.0/24");

    private static readonly RoutingInput Input = new(
        [new PlanSubnet(new("s1"), S1, "rtb-a")],
        [new PlanNode(new("a1"), new("s1"), Ipv4.Parse("10.0.0.1"), "eni-a1", true),
            new PlanNode(new("a2"), new("s1"), Ipv4.Parse("10.0.0.2"), "eni-a2", false)],
        [new PlanBlock(Ipv4Cidr.Parse("100.64.0.0/26"), new("a1"), 3)], []);

    private static RoutePlan Wanted(string target) =>
        new([new TablePlan("rtb-x", 5, [new PlannedRoute(S1, new(target), $"eni-{target}")])], 0, []);

    private static Ec2RouteTable Table(params (string Cidr, string Target)[] routes) =>
        new("rtb-x", [], [new Ec2Route("10.0.0.0/16", "local"), .. routes.Select(r => new Ec2Route(r.Cidr, r.Target))]);

    private static RouteManagerState Owning(params IRouteEvent[] events) =>
        events.Aggregate(RouteManagerState.Empty with { CheckedEnis = ["eni-a1", "eni-a2"] }, (s, e) => s.Apply(e));

    private static ImmutableArray<RouteOperation> Diff(RouteManagerState state, Ec2RouteTable table, RoutePlan wanted) =>
        Reconciler.Diff(state, [table], wanted, Input, "plan");

    [Fact]
    public void A_free_destination_is_created_and_claimed_first()
    {
        var op = Assert.IsType<RouteOperation.Create>(Assert.Single(Diff(Owning(), Table(), Wanted("a1"))));
        Assert.False(op.Claimed);
        Assert.Equal("plan", op.Reason);
    }

    [Fact]
    public void Nothing_is_sent_when_ec2_already_matches()
    {
        var state = Owning(new RouteCreated("rtb-x", S1, new("a1"), "eni-a1", Now, "plan"));
        Assert.Empty(Diff(state, Table(("100.64.0.0/24", "eni-a1")), Wanted("a1")));
    }

    [Fact]
    public void A_destination_held_by_a_route_romana_does_not_own_is_left_alone()
    {
        Assert.Empty(Diff(Owning(), Table(("100.64.0.0/24", "pcx-1")), Wanted("a1")));
    }

    [Fact]
    public void A_claim_found_in_ec2_with_its_target_is_confirmed_without_a_call()
    {
        var state = Owning(new RouteClaimed("rtb-x", S1, new("a1"), "eni-a1", Now, "plan"));
        var op = Assert.IsType<RouteOperation.Confirm>(Assert.Single(Diff(state, Table(("100.64.0.0/24", "eni-a1")), Wanted("a1"))));
        Assert.Equal(new NodeName("a1"), op.Target);
    }

    [Fact]
    public void A_claim_found_in_ec2_with_another_target_is_dropped_and_never_touched()
    {
        var state = Owning(new RouteClaimed("rtb-x", S1, new("a1"), "eni-a1", Now, "plan"));
        Assert.IsType<RouteOperation.DropClaim>(Assert.Single(Diff(state, Table(("100.64.0.0/24", "pcx-1")), Wanted("a1"))));
    }

    [Fact]
    public void A_claim_missing_from_ec2_is_created_again_without_a_new_claim()
    {
        var state = Owning(new RouteClaimed("rtb-x", S1, new("a1"), "eni-a1", Now, "plan"));
        Assert.True(Assert.IsType<RouteOperation.Create>(Assert.Single(Diff(state, Table(), Wanted("a1")))).Claimed);
    }

    [Theory]
    [InlineData("eni-a1", "a1", "drift repair")]   // Romana set a1, someone changed it
    [InlineData("eni-a2", "a1", "failover")]       // Romana's target a2 is down
    public void A_differing_target_is_replaced_with_the_reason(string inEc2, string wanted, string reason)
    {
        var owner = inEc2 == "eni-a2" ? "a2" : "a1";
        var state = Owning(new RouteCreated("rtb-x", S1, new(owner), $"eni-{owner}", Now, "plan"));
        var ec2 = inEc2 == "eni-a1" ? "eni-someone" : inEc2;
        var op = Assert.IsType<RouteOperation.Replace>(Assert.Single(Diff(state, Table(("100.64.0.0/24", ec2)), Wanted(wanted))));
        Assert.Equal(reason, op.Reason);
    }

    [Fact]
    public void An_owned_route_deleted_by_hand_is_created_again_as_drift_repair()
    {
        var state = Owning(new RouteCreated("rtb-x", S1, new("a1"), "eni-a1", Now, "plan"));
        var op = Assert.IsType<RouteOperation.Create>(Assert.Single(Diff(state, Table(), Wanted("a1"))));
        Assert.Equal("drift repair", op.Reason);
    }

    [Fact]
    public void An_owned_route_no_longer_wanted_is_deleted_and_one_already_gone_is_only_recorded()
    {
        var state = Owning(new RouteCreated("rtb-x", S1, new("a1"), "eni-a1", Now, "plan"));
        var empty = new RoutePlan([new TablePlan("rtb-x", 5, [])], 0, []);
        Assert.True(Assert.IsType<RouteOperation.Delete>(Assert.Single(Diff(state, Table(("100.64.0.0/24", "eni-a1")), empty))).Call);
        Assert.False(Assert.IsType<RouteOperation.Delete>(Assert.Single(Diff(state, Table(), empty))).Call);
    }

    [Fact]
    public void The_budget_counts_every_route_romana_does_not_own_and_the_smaller_of_the_limits()
    {
        var state = Owning(new RouteCreated("rtb-x", S1, new("a1"), "eni-a1", Now, "plan"),
            new RouteLimitLearned("rtb-x", 8, Now, "budget"));
        var snapshot = new RoutingSnapshot(Input.Subnets, Input.Nodes, Input.Blocks);
        var table = Table(("100.64.0.0/24", "eni-a1"), ("0.0.0.0/0", "igw-1"), ("192.168.0.0/16", "pcx-1"));
        Assert.Equal(6, Reconciler.Input(snapshot, [table], state, 50).Tables.Single().Budget);
        Assert.Equal(3, Reconciler.Input(snapshot, [table], state, 5).Tables.Single().Budget);
    }

    [Fact]
    public void Every_node_eni_not_yet_checked_gets_its_source_dest_check_turned_off_after_the_routes_route_targets_first()
    {
        var bothHealthy = Input with { Nodes = [.. Input.Nodes.Select(n => n with { Healthy = true })] };
        var ops = Reconciler.Diff(RouteManagerState.Empty, [Table()], Wanted("a2"), bothHealthy, "plan");
        Assert.Equal(["eni-a2", "eni-a1"], ops.OfType<RouteOperation.DisableSourceDestCheck>().Select(o => o.Eni));
        Assert.IsType<RouteOperation.Create>(ops[0]);
    }

    [Fact]
    public void No_route_is_created_or_replaced_toward_a_node_judged_failed()
    {
        // a2 is judged failed; a plan can name it only when its subnet has no healthy node (it keeps its routes then).
        Assert.Empty(Diff(Owning(), Table(), Wanted("a2")));
        var state = Owning(new RouteCreated("rtb-x", S1, new("a1"), "eni-a1", Now, "plan"));
        Assert.Empty(Diff(state, Table(("100.64.0.0/24", "eni-a1")), Wanted("a2")));
    }

    [Fact]
    public void New_routes_are_created_the_least_specific_first_so_that_every_subnet_is_reached_early()
    {
        var wanted = new RoutePlan([new TablePlan("rtb-x", 5, [
            new PlannedRoute(Ipv4Cidr.Parse("100.64.0.0/26"), new("a1"), "eni-a1"),
            new PlannedRoute(S1, new("a1"), "eni-a1")])], 0, []);
        var creates = Diff(Owning(), Table(), wanted).OfType<RouteOperation.Create>().Select(c => c.Cidr.PrefixLength);
        Assert.Equal([24, 26], creates);
    }

    // ---- routes a forwarder supervisor's standby repair moved while the route manager was away -----------------------

    [Fact]
    public void A_route_the_standby_moved_where_the_plan_wants_it_is_recorded_as_found_without_a_call()
    {
        var state = Owning(new RouteCreated("rtb-x", S1, new("a2"), "eni-a2", Now, "plan"));
        var op = Assert.IsType<RouteOperation.TakeAsFound>(Assert.Single(Diff(state, Table(("100.64.0.0/24", "eni-a1")), Wanted("a1"))));
        Assert.Equal((new NodeName("a2"), new NodeName("a1"), "eni-a1"), (op.Previous, op.Target, op.Eni));
        Assert.Equal("moved by the supervisor of subnet s1 while the route manager was away", op.Reason);

        // It is recorded without an EC2 call, and the journal's state then says what EC2 says.
        Assert.False(RouteCalls.NeedsCall(op));
        var replaced = Assert.IsType<RouteReplaced>(RouteCalls.Found(op, Now));
        Assert.Equal(op.Reason, replaced.Reason);
        Assert.Equal(new OwnedRoute(S1, new("a1"), "eni-a1", true), state.Apply(replaced).OwnedIn("rtb-x")[S1]);
    }

    [Fact]
    public void A_route_the_standby_moved_to_a_node_the_plan_does_not_want_is_replaced_as_a_failover()
    {
        var input = Input with { Nodes = [.. Input.Nodes, new PlanNode(new("a3"), new("s1"), Ipv4.Parse("10.0.0.3"), "eni-a3", true)] };
        var state = Owning(new RouteCreated("rtb-x", S1, new("a2"), "eni-a2", Now, "plan")) with
        {
            CheckedEnis = ["eni-a1", "eni-a2", "eni-a3"],
        };
        var op = Assert.IsType<RouteOperation.Replace>(Assert.Single(
            Reconciler.Diff(state, [Table(("100.64.0.0/24", "eni-a1"))], Wanted("a3"), input, "plan")));
        Assert.Equal((new NodeName("a2"), new NodeName("a3"), "eni-a3", "failover"), (op.Previous, op.Target, op.Eni, op.Reason));
    }
}
