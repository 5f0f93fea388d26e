using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using static Romana.Actors.Tests.Routing.PlanCases;

namespace Romana.Actors.Tests.Routing;

/// <summary>
/// Issue 13, part 1 (DESIGN.md section 2): every table routes every subnet's pods, its own included, so that instances
/// that are not nodes (a load balancer, a bastion, a NAT or VPN path) reach every pod; spare budget buys more specific
/// routes down to one per block; a spare route is never spent where it gains nothing.
/// </summary>
public class VpcWideRoutingTests
{
    private static RoutePlan PlanOf(RoutingInput input, RoutePlan? current = null)
    {
        var plan = RoutePlanner.Plan(input, current, out var shortfalls);
        Assert.True(plan is not null, string.Join("; ", shortfalls));
        Assert.Null(ReachabilityChecker.FirstViolation(input, plan!));
        return plan!;
    }

    /// <summary>Every pod of the cluster from a non-node and from every node of every subnet, walked hop by hop.</summary>
    private static List<string> Unreached(RoutingInput input, RoutePlan plan) =>
        [.. from source in input.Subnets
            from sender in input.Nodes.Where(n => n.Subnet == source.Id).Select(n => (NodeName?)n.Name).Prepend(null)
            from address in PodAddresses(input)
            let why = Walk(input, plan, source, sender, address)
            where why is not null
            select $"{(sender is null ? "non-node" : sender.Value.Value)} in {source.Id} -> {address}: {why}"];

    /// <summary>The issue's cluster: ten nodes in subnet-0, one table rtb-shared whose budget is 48, a /26 block each.</summary>
    private static RoutingInput TenNodesOneSubnet(int budget) =>
        Cluster([("subnet-0", "100.64.0.0/16", "rtb-shared")],
            [.. Enumerable.Range(1, 10).Select(i => ($"node-{i:00}", "subnet-0"))],
            [.. Enumerable.Range(1, 10).Select(i => ($"100.64.0.{(i - 1) * 64 % 256}/26".Replace("100.64.0.", $"100.64.{(i - 1) / 4}."),
                $"node-{i:00}", 3 + i))],
            ("rtb-shared", budget));

    [Fact]
    public void A_one_subnet_cluster_with_one_table_and_budget_48_gets_one_route_per_block_straight_to_its_owner()
    {
        var input = TenNodesOneSubnet(48);
        var plan = PlanOf(input);
        var table = Assert.Single(plan.Tables);
        // Before issue 13 this table held no route at all: it serves the one subnet, whose nodes use host routes.
        Assert.InRange(table.Routes.Length, 1, input.Blocks.Length);
        foreach (var block in input.Blocks)
            Assert.Equal(block.Owner, Lookup(table, block.Block.Network)!.Target);
        Assert.Equal(0, plan.ForwardedFraction);
        Assert.Equal(0, RouteMetrics.ForwardedFraction(input, plan));
        Assert.Empty(Unreached(input, plan));
    }

    [Fact]
    public void The_one_subnet_cluster_at_a_budget_of_one_gets_its_subnet_route_and_forwards_through_one_node()
    {
        var input = TenNodesOneSubnet(1);
        var plan = PlanOf(input);
        var route = Assert.Single(Assert.Single(plan.Tables).Routes);
        Assert.Equal("100.64.0.0/16", route.Cidr.ToString());
        var pods = input.Blocks.Sum(b => b.Pods);
        Assert.Equal((double)(pods - input.Blocks.Single(b => b.Owner == route.Target).Pods) / pods, plan.ForwardedFraction, 6);
        Assert.Empty(Unreached(input, plan));
        Assert.Null(RoutePlanner.Plan(TenNodesOneSubnet(0), null, out var shortfalls));
        Assert.Equal(new BudgetShortfall("rtb-shared", 1, 0), Assert.Single(shortfalls));
    }

    [Fact]
    public void Non_node_sources_in_every_subnet_reach_every_pod_at_every_budget()
    {
        // Three zones, one table each (rtb-b shared by two subnets), two to four nodes per subnet, several blocks per node.
        var input = Cluster(
            [("a1", "10.0.0.0/22", "rtb-a"), ("b1", "10.0.4.0/22", "rtb-b"), ("b2", "10.0.8.0/22", "rtb-b"),
                ("c1", "10.0.12.0/22", "rtb-c")],
            [("a1-1", "a1"), ("a1-2", "a1"), ("a1-3", "a1"), ("b1-1", "b1"), ("b1-2", "b1"), ("b2-1", "b2"), ("b2-2", "b2"),
                ("b2-3", "b2"), ("b2-4", "b2"), ("c1-1", "c1"), ("c1-2", "c1")],
            [("10.0.0.0/26", "a1-1", 20), ("10.0.0.64/26", "a1-2", 3), ("10.0.0.128/26", "a1-3", 17), ("10.0.0.192/26", "a1-1", 9),
                ("10.0.4.0/26", "b1-1", 11), ("10.0.4.64/26", "b1-2", 30), ("10.0.8.0/26", "b2-1", 5), ("10.0.8.64/26", "b2-2", 6),
                ("10.0.8.128/26", "b2-3", 7), ("10.0.8.192/26", "b2-4", 8), ("10.0.9.0/26", "b2-1", 0), ("10.0.12.0/26", "c1-1", 12),
                ("10.0.12.64/26", "c1-2", 1)],
            ("rtb-a", 4), ("rtb-b", 4), ("rtb-c", 4));
        for (var budget = 4; budget <= 16; budget++)
        {
            var plan = PlanOf(WithBudget(input, budget));
            Assert.All(plan.Tables, t => Assert.InRange(t.Routes.Length, 4, budget));
            var unreached = Unreached(input, plan);
            Assert.True(unreached.Count == 0, $"budget {budget}: {string.Join("\n", unreached.Take(10))}");
        }
    }

    [Fact]
    public void Non_node_sources_reach_every_pod_on_random_clusters_at_any_health()
    {
        Clusters.Sample(input =>
        {
            var plan = RoutePlanner.Plan(input, null, out _);
            if (plan is null) return;
            // Pods of a subnet whose every node is down cannot be reached: left out.
            var reachable = input with
            {
                Blocks = [.. input.Blocks.Where(b => !plan.WithoutHealthyNode.Contains(input.Nodes.First(n => n.Name == b.Owner).Subnet))],
            };
            var unreached = Unreached(reachable, plan);
            Assert.True(unreached.Count == 0, string.Join("\n", unreached.Take(10)));
        }, iter: 200);
    }

    [Fact]
    public void A_budget_equal_to_the_block_count_sends_every_block_straight_to_its_owner_in_every_table()
    {
        Clusters.Sample(generated =>
        {
            var input = WithBudget(WithHealth(generated, _ => true), Math.Max(generated.Blocks.Length, 1));
            var plan = PlanOf(input);
            foreach (var table in plan.Tables)
            {
                Assert.True(table.Routes.Length <= input.Blocks.Length, $"{table.Table}: {table.Routes.Length} routes");
                foreach (var block in input.Blocks)
                {
                    var target = Lookup(table, block.Block.Network)!.Target;
                    Assert.True(target == block.Owner, $"{table.Table} sends {block.Block} ({block.Pods} pods) to {target}");
                }
            }
            Assert.Equal(0, plan.ForwardedFraction);
        }, iter: 500);
    }

    [Fact]
    public void The_checker_finds_a_non_node_source_that_misses_its_own_subnets_pods_when_a_table_lacks_their_route()
    {
        var input = Cluster([("s1", "10.0.0.0/24", "rtb-a"), ("s2", "10.0.1.0/24", "rtb-b")], [("a1", "s1"), ("a2", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 5), ("10.0.0.64/26", "a2", 5), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 3), ("rtb-b", 3));
        var plan = PlanOf(input);
        // rtb-a serves s1 alone: without its routes to s1 (the plan before issue 13), s1's nodes still reach s1's pods over
        // host routes, and rtb-b's subnets reach them, but an instance of s1 that is not a node does not.
        var rtbA = plan.Table("rtb-a")!;
        var without = plan with
        {
            Tables =
            [
                rtbA with { Routes = [.. rtbA.Routes.Where(r => !Ipv4Cidr.Parse("10.0.0.0/24").Contains(r.Cidr))] },
                plan.Table("rtb-b")!,
            ],
        };
        var violation = ReachabilityChecker.FirstViolation(input, without);
        Assert.NotNull(violation);
        Assert.False(violation.FromNode);
        Assert.Equal(ViolationKind.NotRouted, violation.Kind);
        Assert.Equal("s1", violation.Source.Value);
        Assert.Equal("10.0.0.0/26", violation.Block.ToString());
        Assert.Equal("from an instance that is not a node of subnet s1 to block 10.0.0.0/26 of node a1: no route in table rtb-a",
            violation.ToString());
        // The walk agrees: nodes get there, the non-node does not.
        var s1 = input.Subnets[0];
        Assert.Null(Walk(input, without, s1, new NodeName("a2"), Ipv4Cidr.Parse("10.0.0.0/26").Network));
        Assert.Equal("no route to 10.0.0.0 in rtb-a", Walk(input, without, s1, null, Ipv4Cidr.Parse("10.0.0.0/26").Network));
    }

    // ---- no spare route spent where it gains nothing ------------------------------------------------------------------

    /// <summary>No route of any table leads where the nearest route covering it leads.</summary>
    private static void NoRouteLeadsWhereItsCoveringRouteLeads(RoutePlan plan)
    {
        foreach (var table in plan.Tables)
            foreach (var (route, covering) in WithCovering(table))
                Assert.False(covering is not null && covering.Target == route.Target,
                    $"{table.Table}: {route.Cidr} -> {route.Target} under {covering?.Cidr} -> {covering?.Target} gains nothing");
    }

    [Fact]
    public void A_spare_route_is_not_left_under_a_later_route_that_leads_to_the_same_node()
    {
        // Found by a random search: the greedy refinement first buys 10.0.0.128/28 -> n1 (28 pods), and at its eighth step
        // the /26 above it, also to n1 (3 more pods), which leaves the /28 gaining nothing. That step takes the /28 out.
        var input = Cluster([("s", "10.0.0.0/22", "rtb")], [("n0", "s"), ("n1", "s"), ("n2", "s")],
            [("10.0.0.128/28", "n1", 28), ("10.0.0.144/28", "n2", 11), ("10.0.0.176/28", "n1", 3), ("10.0.0.224/28", "n0", 18),
                ("10.0.1.64/28", "n0", 11), ("10.0.1.128/28", "n1", 8), ("10.0.2.240/28", "n2", 12), ("10.0.3.16/28", "n1", 6),
                ("10.0.3.48/28", "n2", 20), ("10.0.3.80/28", "n0", 25), ("10.0.3.160/28", "n2", 8)],
            ("rtb", 8));
        var layout = RoutePlanner.Layout(input, out _)!.Tables[0].Routes;
        Assert.Contains(layout, r => r.Cidr.ToString() == "10.0.0.128/26" && r.Preferred.Value == "n1");
        Assert.DoesNotContain(layout, r => r.Cidr.ToString() == "10.0.0.128/28");
        Assert.Equal(0, PlanOf(input).ForwardedFraction);
        // At every budget: never a layout route to where the route covering it leads, nor such a planned route.
        for (var budget = 1; budget <= 2 * input.Blocks.Length; budget++)
        {
            var routes = RoutePlanner.Layout(WithBudget(input, budget), out _)!.Tables[0].Routes;
            foreach (var route in routes)
            {
                var covering = routes.Where(c => c.Cidr != route.Cidr && c.Cidr.Contains(route.Cidr)).MaxBy(c => c.Cidr.PrefixLength);
                Assert.False(covering?.Preferred == route.Preferred,
                    $"budget {budget}: {route.Cidr} under {covering?.Cidr}, both to {route.Preferred}");
            }
            NoRouteLeadsWhereItsCoveringRouteLeads(PlanOf(WithBudget(input, budget)));
        }
    }

    [Fact]
    public void The_route_a_later_step_makes_useless_is_spent_again_while_pods_are_still_forwarded()
    {
        // Found by a random search: at a budget of 14, a step of the refinement makes an earlier route useless; counted as
        // spent, it left the plan one route short of its budget with pods still forwarded.
        var owners = new[] { 2, 0, 0, 1, 0, 0, 1, 1, 0, 2, 1, 2, 1, 2, 0, 1, 1, 2, 2, 0, 1, 0, 1, 1, 0 };
        var pods = new[] { 12, 4, 25, 23, 9, 25, 23, 0, 3, 22, 3, 29, 4, 17, 12, 26, 4, 12, 23, 16, 18, 20, 5, 15, 8 };
        var slots = new[] { 6, 10, 11, 12, 15, 18, 19, 20, 23, 24, 25, 26, 27, 28, 39, 43, 45, 47, 48, 50, 51, 52, 56, 61, 63 };
        var input = Cluster([("s", "10.0.0.0/22", "rtb")], [("n0", "s"), ("n1", "s"), ("n2", "s")],
            [.. slots.Select((slot, i) => ($"10.0.{slot / 16}.{slot % 16 * 16}/28", $"n{owners[i]}", pods[i]))], ("rtb", 1));
        for (var budget = 1; budget <= input.Blocks.Length; budget++)
        {
            var plan = PlanOf(WithBudget(input, budget));
            Assert.True(plan.Tables[0].Routes.Length == budget || plan.ForwardedFraction == 0,
                $"budget {budget}: {plan.Tables[0].Routes.Length} routes, {plan.ForwardedFraction:P1} of pods forwarded");
        }
    }

    [Fact]
    public void A_table_keeps_budget_unspent_only_when_every_block_goes_straight_to_its_owner()
    {
        Clusters.Sample(generated =>
        {
            var input = WithHealth(generated, _ => true);
            var plan = RoutePlanner.Plan(input, null, out _);
            if (plan is null) return;
            foreach (var table in plan.Tables.Where(t => t.Routes.Length < t.Budget))
                foreach (var block in input.Blocks)
                    Assert.True(Lookup(table, block.Block.Network)!.Target == block.Owner,
                        $"{table.Table}: {table.Routes.Length} of {table.Budget} routes, yet {block.Block} goes to a forwarder");
        }, iter: 1000);
    }

    [Fact]
    public void With_every_node_healthy_no_route_leads_where_its_covering_route_leads_whatever_the_routes_were()
    {
        Clusters.Sample(input =>
        {
            // The routes as some earlier health left them, then every node healthy again.
            var earlier = RoutePlanner.Plan(input, null, out _);
            if (earlier is null) return;
            var healthy = WithHealth(input, _ => true);
            var plan = PlanOf(healthy, earlier);
            NoRouteLeadsWhereItsCoveringRouteLeads(plan);
            NoRouteLeadsWhereItsCoveringRouteLeads(PlanOf(healthy));
        }, iter: 500);
    }

    [Fact]
    public void At_any_health_no_route_is_added_where_its_covering_route_leads()
    {
        Clusters.Sample(input =>
        {
            var healthy = RoutePlanner.Plan(WithHealth(input, _ => true), null, out _);
            if (healthy is null) return;
            var plan = RoutePlanner.Plan(input, healthy, out _)!;
            foreach (var table in plan.Tables)
            {
                var before = healthy.Table(table.Table)!.Routes.ToDictionary(r => r.Cidr, r => r.Target);
                foreach (var (route, covering) in WithCovering(table))
                    if (covering is not null && covering.Target == route.Target)
                    {
                        // Only a route in place may gain nothing: one whose own target failed, moved rather than taken out.
                        Assert.True(before.TryGetValue(route.Cidr, out var was),
                            $"{table.Table}: {route.Cidr} -> {route.Target} under {covering.Cidr} added though it gains nothing");
                        Assert.True(was == route.Target || !input.Nodes.Single(n => n.Name == was).Healthy,
                            $"{table.Table}: {route.Cidr} moved from healthy {was} to {route.Target}, where {covering.Cidr} leads");
                    }
            }
        }, iter: 500);
    }

    /// <summary>Subnet s1 (a1, a2, a /26 block each) and s2 (b1), one table each, with room for a route per block.</summary>
    private static RoutingInput TwoNodes() =>
        Cluster([("s1", "10.0.0.0/24", "rtb-a"), ("s2", "10.0.1.0/24", "rtb-b")], [("a1", "s1"), ("a2", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 5), ("10.0.0.64/26", "a2", 5), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 3), ("rtb-b", 3));

    private static string[] S1(RoutePlan plan, string table) =>
        [.. plan.Table(table)!.Routes.Where(r => Ipv4Cidr.Parse("10.0.0.0/24").Contains(r.Cidr)).Select(r => $"{r.Cidr}->{r.Target}")];

    [Fact]
    public void A_node_that_cannot_be_a_target_gets_no_block_route_that_would_only_lead_to_its_forwarder()
    {
        // The route manager's own host (or a failed node) is no target: a route to its block could only lead to the
        // subnet's other node, where the subnet route already leads. Before issue 13 that route was bought anyway.
        var all = PlanOf(TwoNodes());
        Assert.Equal(2, S1(all, "rtb-a").Length); // the subnet route and one block route: both nodes direct
        foreach (var excluded in new[] { "a1", "a2" })
        {
            var input = WithHealth(TwoNodes(), n => n.Value != excluded);
            var survivor = excluded == "a1" ? "a2" : "a1";
            var plan = PlanOf(input);
            Assert.Equal(["10.0.0.0/24->" + survivor], S1(plan, "rtb-a"));
            Assert.Equal(["10.0.0.0/24->" + survivor], S1(plan, "rtb-b"));
            Assert.Empty(Unreached(input with { Blocks = [.. input.Blocks.Where(b => b.Owner.Value != excluded)] }, plan));
        }
    }

    [Fact]
    public void A_failure_moves_only_what_leads_to_the_failed_node_and_its_recovery_puts_the_gain_back()
    {
        var input = TwoNodes();
        var first = PlanOf(input);
        var subnetRoute = first.Table("rtb-a")!.Routes.Single(r => r.Cidr.ToString() == "10.0.0.0/24");
        var blockRoute = first.Table("rtb-a")!.Routes.Single(r => r.Cidr.PrefixLength == 26 && r.Cidr.ToString().StartsWith("10.0.0."));
        Assert.NotEqual(subnetRoute.Target, blockRoute.Target);

        // The subnet route's node fails: that route moves to the other node; the block route, in place, stays (it gains
        // nothing meanwhile, but taking it out would cost a call and free nothing).
        var failed = subnetRoute.Target;
        var failover = PlanOf(WithHealth(input, n => n != failed), first);
        Assert.Equal([$"10.0.0.0/24->{blockRoute.Target}", $"{blockRoute.Cidr}->{blockRoute.Target}"], S1(failover, "rtb-a"));

        // It recovers: the subnet route goes back to it, since where it is now the block route under it gains nothing.
        var recovered = PlanOf(input, failover);
        Assert.Equal(S1(first, "rtb-a"), S1(recovered, "rtb-a"));
        Assert.Equal(0, recovered.ForwardedFraction);

        // The block route's node fails instead: its route moves to the only other node (where the subnet route leads: it
        // gains nothing meanwhile, but a replace costs what a delete would), and goes back once the node is healthy.
        var blockFailed = PlanOf(WithHealth(input, n => n != blockRoute.Target), first);
        Assert.Equal([$"10.0.0.0/24->{subnetRoute.Target}", $"{blockRoute.Cidr}->{subnetRoute.Target}"], S1(blockFailed, "rtb-a"));
        Assert.Equal(S1(first, "rtb-a"), S1(PlanOf(input, blockFailed), "rtb-a"));
    }
}
