using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using static Romana.Actors.Tests.Routing.PlanCases;

namespace Romana.Actors.Tests.Routing;

public class RoutePlannerTests
{
    private static readonly (string, string, string)[] TwoSubnets = [("s1", "10.0.0.0/24", "rtb-a"), ("s2", "10.0.1.0/24", "rtb-b")];

    private static RoutePlan PlanOf(RoutingInput input, RoutePlan? current = null)
    {
        var plan = RoutePlanner.Plan(input, current, out var shortfalls);
        Assert.True(plan is not null, string.Join("; ", shortfalls));
        Assert.Null(ReachabilityChecker.FirstViolation(input, plan!));
        return plan!;
    }

    private static string[] Routes(RoutePlan plan, string table) =>
        [.. plan.Table(table)!.Routes.Select(r => $"{r.Cidr}->{r.Target}")];

    /// <summary>The routes of a table inside one subnet's pod prefix.</summary>
    private static PlannedRoute[] RoutesTo(RoutePlan plan, string table, string prefix) =>
        [.. plan.Table(table)!.Routes.Where(r => Ipv4Cidr.Parse(prefix).Contains(r.Cidr))];

    [Fact]
    public void Every_table_routes_every_subnet_its_own_included_one_route_each_at_the_minimum()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("a2", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 10), ("10.0.0.64/26", "a2", 10), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 2), ("rtb-b", 2));
        var plan = PlanOf(input);
        foreach (var table in new[] { "rtb-a", "rtb-b" })
        {
            Assert.Equal(2, plan.Table(table)!.Routes.Length);
            Assert.Contains("10.0.1.0/24->b1", Routes(plan, table));
            var route = Assert.Single(RoutesTo(plan, table, "10.0.0.0/24"));
            Assert.Equal("10.0.0.0/24", route.Cidr.ToString());
            Assert.Contains(route.Target.Value, new[] { "a1", "a2" });
            Assert.Equal("eni-" + route.Target, route.Eni);
        }
        // Half of s1's pods go through the forwarder, in both tables (its own included): 2 x 10 of 2 x 25.
        Assert.Equal(20.0 / 50, plan.ForwardedFraction, 6);
        Assert.Equal(plan.ForwardedFraction, RouteMetrics.ForwardedFraction(input, plan), 6);
    }

    [Fact]
    public void With_room_each_node_gets_its_own_route_down_to_one_per_block()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("a2", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 10), ("10.0.0.64/26", "a2", 7), ("10.0.0.128/26", "a1", 3), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 10),
            ("rtb-b", 10));
        var plan = PlanOf(input);
        Assert.Equal(0, plan.ForwardedFraction);
        foreach (var table in new[] { "rtb-a", "rtb-b" })
        {
            var routes = plan.Table(table)!.Routes;
            Assert.True(routes.Length <= 4, string.Join(", ", routes));
            foreach (var block in input.Blocks)
                Assert.Equal(block.Owner, Lookup(plan.Table(table)!, block.Block.Network)!.Target);
        }
    }

    [Fact]
    public void The_budget_is_spent_where_most_pods_turn_direct()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("a2", "s1"), ("a3", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 1), ("10.0.0.64/26", "a2", 40), ("10.0.0.128/26", "a3", 2), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 2),
            ("rtb-b", 3));
        var plan = PlanOf(input);
        Assert.Equal(2, plan.Table("rtb-a")!.Routes.Length);
        var routes = RoutesTo(plan, "rtb-b", "10.0.0.0/24");
        Assert.Equal(2, routes.Length);
        // Whatever the subnet route's forwarder, the one extra route goes where most pods become direct.
        var refinement = routes.Single(r => r.Cidr.PrefixLength > 24);
        var root = routes.Single(r => r.Cidr.PrefixLength == 24);
        Assert.True(root.Target.Value == "a2" ? refinement.Target.Value == "a3" : refinement.Target.Value == "a2");
    }

    [Fact]
    public void A_budget_too_small_for_one_route_per_subnet_is_refused_naming_table_need_and_budget()
    {
        var input = Cluster([("s1", "10.0.0.0/24", "rtb-a"), ("s2", "10.0.1.0/24", "rtb-a"), ("s3", "10.0.2.0/24", "rtb-c")],
            [("a", "s1"), ("b", "s2"), ("c", "s3")], [("10.0.0.0/26", "a", 1), ("10.0.1.0/26", "b", 1), ("10.0.2.0/26", "c", 1)],
            ("rtb-a", 5), ("rtb-c", 2));
        Assert.Null(RoutePlanner.Plan(input, null, out var shortfalls));
        var shortfall = Assert.Single(shortfalls);
        // rtb-c serves s3 alone, and still routes all three subnets.
        Assert.Equal(new BudgetShortfall("rtb-c", 3, 2), shortfall);
        Assert.Contains("needs 3 routes", shortfall.ToString());
    }

    [Fact]
    public void An_unhealthy_node_is_never_a_target_and_a_healthy_current_target_is_kept()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("a2", "s1"), ("a3", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 5), ("10.0.0.64/26", "a2", 5), ("10.0.0.128/26", "a3", 5), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 2),
            ("rtb-b", 2));
        var first = PlanOf(input);
        var forwarder = Assert.Single(RoutesTo(first, "rtb-b", "10.0.0.0/24")).Target;
        Assert.Equal(Routes(first, "rtb-b"), Routes(PlanOf(input, first), "rtb-b")); // nothing changed: nothing moves

        var down = WithHealth(input, n => n != forwarder);
        var failover = PlanOf(down, first);
        var survivor = Assert.Single(RoutesTo(failover, "rtb-b", "10.0.0.0/24")).Target;
        Assert.NotEqual(forwarder, survivor);

        // The failed node recovers: the survivor keeps the route (no flapping).
        Assert.Equal(survivor, Assert.Single(RoutesTo(PlanOf(input, failover), "rtb-b", "10.0.0.0/24")).Target);
    }

    [Fact]
    public void A_subnet_without_a_healthy_node_keeps_its_routes_and_is_reported()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("b1", "s2")], [("10.0.0.0/26", "a1", 5), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 2),
            ("rtb-b", 2));
        var first = PlanOf(input);
        var down = WithHealth(input, n => n.Value != "a1");
        var plan = RoutePlanner.Plan(down, first, out _)!;
        Assert.Equal(["s1"], plan.WithoutHealthyNode.Select(s => s.Value));
        Assert.Equal(Routes(first, "rtb-b"), Routes(plan, "rtb-b"));
        Assert.Contains("not healthy", ReachabilityChecker.FirstViolation(down, plan)!.Reason);
    }

    [Fact]
    public void The_checker_finds_a_missing_route_an_invalid_target_and_a_route_across_subnets()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("b1", "s2")], [("10.0.0.0/26", "a1", 5), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 2),
            ("rtb-b", 2));
        var good = PlanOf(input);
        PlannedRoute Route(string cidr, string target) => new(Ipv4Cidr.Parse(cidr), new NodeName(target), "");
        RoutePlan With(params PlannedRoute[] rtbB) => good with { Tables = [good.Table("rtb-a")!, new TablePlan("rtb-b", 2, [.. rtbB])] };

        var missing = ReachabilityChecker.FirstViolation(input, With(Route("10.0.1.0/24", "b1")))!;
        Assert.Contains("no route in table rtb-b", missing.Reason);
        Assert.Equal(ViolationKind.NotRouted, missing.Kind);
        Assert.True(missing.FromNode); // s2's nodes miss s1's pods (and so do s2's other instances)
        Assert.StartsWith("from a node of subnet s2 to block 10.0.0.0/26", missing.ToString());
        Assert.Contains("not a node of subnet s1", ReachabilityChecker.FirstViolation(input, With(Route("10.0.0.0/24", "b1")))!.Reason);
        Assert.Contains("lies in no single subnet", ReachabilityChecker.FirstViolation(input, With(Route("10.0.0.0/23", "a1")))!.Reason);
    }

    // ---- properties --------------------------------------------------------------------------------------------

    [Fact]
    public void Every_plan_within_budget_reaches_every_block_with_one_lookup_over_valid_targets()
    {
        Clusters.Sample(input =>
        {
            var plan = RoutePlanner.Plan(input, null, out var shortfalls);
            if (plan is null)
            {
                Assert.NotEmpty(shortfalls);
                return;
            }
            foreach (var table in plan.Tables) Assert.True(table.Routes.Length <= table.Budget, $"{table.Table} over budget");
            // Subnets whose every node is down cannot be reached; everything else must be, from nodes and non-nodes alike.
            var reachable = input with
            {
                Blocks = [.. input.Blocks.Where(b => !plan.WithoutHealthyNode.Contains(input.Nodes.First(n => n.Name == b.Owner).Subnet))]
            };
            var violation = ReachabilityChecker.FirstViolation(reachable, plan with
            {
                Tables = [.. plan.Tables.Select(t => t with
                {
                    Routes = [.. t.Routes.Where(r =>
                        !plan.WithoutHealthyNode.Any(s => input.Subnets.First(x => x.Id == s).PodPrefix.Contains(r.Cidr)))]
                })]
            });
            Assert.True(violation is null, violation?.ToString());
            // Every table routes every block, also a table that serves no subnet of the cluster.
            foreach (var table in plan.Tables)
                foreach (var block in input.Blocks)
                    Assert.True(Lookup(table, block.Block.Network) is not null, $"{table.Table} has no route to {block.Block}");
            Assert.InRange(plan.ForwardedFraction, 0, 1);
            // Re-planning what did not change moves nothing.
            Assert.Equal(Describe(plan), Describe(RoutePlanner.Plan(input, plan, out _)!));
        }, iter: 500);
    }

    [Fact]
    public void A_larger_budget_never_forwards_more()
    {
        Clusters.Sample(input =>
        {
            var all = WithHealth(input, _ => true);
            var small = RoutePlanner.Plan(all, null, out _);
            var large = RoutePlanner.Plan(all with { Tables = [.. all.Tables.Select(t => t with { Budget = t.Budget + 10 })] }, null,
                out _);
            if (small is null) return;
            Assert.NotNull(large);
            Assert.True(large!.ForwardedFraction <= small.ForwardedFraction + 1e-9,
                $"{large.ForwardedFraction} > {small.ForwardedFraction}");
        }, iter: 300);
    }
}
