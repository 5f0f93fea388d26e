using System.Collections.Immutable;
using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Actors.Tests.Routing;

public class RoutePlannerTests
{
    /// <summary>A cluster: subnets (id, prefix, table), nodes as (name, subnet), blocks as (block, owner, pods).</summary>
    private static RoutingInput Cluster((string Id, string Prefix, string Table)[] subnets, (string Name, string Subnet)[] nodes,
        (string Block, string Owner, int Pods)[] blocks, params (string Id, int Budget)[] tables) =>
        new([.. subnets.Select(s => new PlanSubnet(new SubnetId(s.Id), Ipv4Cidr.Parse(s.Prefix), s.Table))],
            [.. nodes.Select((n, i) => new PlanNode(new NodeName(n.Name), new SubnetId(n.Subnet), new Ipv4(0xC0A80000u + (uint)i + 1),
                $"eni-{n.Name}", true))],
            [.. blocks.Select(b => new PlanBlock(Ipv4Cidr.Parse(b.Block), new NodeName(b.Owner), b.Pods))],
            [.. tables.Select(t => new PlanTable(t.Id, t.Budget))]);

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

    [Fact]
    public void A_table_routes_only_the_subnets_it_does_not_hold_one_route_each_at_the_minimum()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("a2", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 10), ("10.0.0.64/26", "a2", 10), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 1), ("rtb-b", 1));
        var plan = PlanOf(input);
        Assert.Equal(["10.0.1.0/24->b1"], Routes(plan, "rtb-a"));
        var route = Assert.Single(plan.Table("rtb-b")!.Routes);
        Assert.Equal("10.0.0.0/24", route.Cidr.ToString());
        Assert.Contains(route.Target.Value, new[] { "a1", "a2" });
        Assert.Equal("eni-" + route.Target, route.Eni);
        Assert.Equal(10.0 / 25, plan.ForwardedFraction, 6); // half of s1's pods go through the forwarder, from table rtb-b
    }

    [Fact]
    public void With_room_each_node_gets_its_own_route_down_to_one_per_block()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("a2", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 10), ("10.0.0.64/26", "a2", 7), ("10.0.0.128/26", "a1", 3), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 10),
            ("rtb-b", 10));
        var plan = PlanOf(input);
        var rtbB = plan.Table("rtb-b")!.Routes;
        Assert.Equal(0, plan.ForwardedFraction);
        Assert.True(rtbB.Length <= 4, string.Join(", ", rtbB));
        foreach (var (block, owner, _) in new[] { ("10.0.0.0/26", "a1", 0), ("10.0.0.64/26", "a2", 0), ("10.0.0.128/26", "a1", 0) })
            Assert.Equal(owner, rtbB.Where(r => r.Cidr.Contains(Ipv4Cidr.Parse(block))).MaxBy(r => r.Cidr.PrefixLength)!.Target.Value);
    }

    [Fact]
    public void The_budget_is_spent_where_most_pods_turn_direct()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("a2", "s1"), ("a3", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 1), ("10.0.0.64/26", "a2", 40), ("10.0.0.128/26", "a3", 2), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 1),
            ("rtb-b", 2));
        var plan = PlanOf(input);
        var routes = plan.Table("rtb-b")!.Routes;
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
            ("rtb-a", 5), ("rtb-c", 1));
        Assert.Null(RoutePlanner.Plan(input, null, out var shortfalls));
        var shortfall = Assert.Single(shortfalls);
        Assert.Equal(new BudgetShortfall("rtb-c", 2, 1), shortfall);
        Assert.Contains("needs 2 routes", shortfall.ToString());
    }

    [Fact]
    public void An_unhealthy_node_is_never_a_target_and_a_healthy_current_target_is_kept()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("a2", "s1"), ("a3", "s1"), ("b1", "s2")],
            [("10.0.0.0/26", "a1", 5), ("10.0.0.64/26", "a2", 5), ("10.0.0.128/26", "a3", 5), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 1),
            ("rtb-b", 1));
        var first = PlanOf(input);
        var forwarder = first.Table("rtb-b")!.Routes.Single().Target;
        Assert.Equal(Routes(first, "rtb-b"), Routes(PlanOf(input, first), "rtb-b")); // nothing changed: nothing moves

        var down = input with { Nodes = [.. input.Nodes.Select(n => n.Name == forwarder ? n with { Healthy = false } : n)] };
        var failover = PlanOf(down, first);
        var survivor = failover.Table("rtb-b")!.Routes.Single().Target;
        Assert.NotEqual(forwarder, survivor);

        // The failed node recovers: the survivor keeps the route (no flapping).
        Assert.Equal(survivor, PlanOf(input, failover).Table("rtb-b")!.Routes.Single().Target);
    }

    [Fact]
    public void A_subnet_without_a_healthy_node_keeps_its_routes_and_is_reported()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("b1", "s2")], [("10.0.0.0/26", "a1", 5), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 1),
            ("rtb-b", 1));
        var first = PlanOf(input);
        var down = input with { Nodes = [.. input.Nodes.Select(n => n.Name.Value == "a1" ? n with { Healthy = false } : n)] };
        var plan = RoutePlanner.Plan(down, first, out _)!;
        Assert.Equal(["s1"], plan.WithoutHealthyNode.Select(s => s.Value));
        Assert.Equal(Routes(first, "rtb-b"), Routes(plan, "rtb-b"));
        Assert.Contains("not healthy", ReachabilityChecker.FirstViolation(down, plan)!.Reason);
    }

    [Fact]
    public void The_checker_finds_a_loop_a_missing_route_and_an_invalid_target()
    {
        var input = Cluster(TwoSubnets, [("a1", "s1"), ("b1", "s2")], [("10.0.0.0/26", "a1", 5), ("10.0.1.0/26", "b1", 5)], ("rtb-a", 2),
            ("rtb-b", 2));
        var good = PlanOf(input);
        PlannedRoute Route(string cidr, string target) => new(Ipv4Cidr.Parse(cidr), new NodeName(target), "");
        RoutePlan With(params PlannedRoute[] rtbB) => good with { Tables = [good.Table("rtb-a")!, new TablePlan("rtb-b", 2, [.. rtbB])] };

        Assert.Contains("no route", ReachabilityChecker.FirstViolation(input, With())!.Reason);
        Assert.Contains("not a node of subnet s1", ReachabilityChecker.FirstViolation(input, With(Route("10.0.0.0/24", "b1")))!.Reason);
        Assert.Contains("lies in no single subnet", ReachabilityChecker.FirstViolation(input, With(Route("10.0.0.0/23", "a1")))!.Reason);
    }

    // ---- properties --------------------------------------------------------------------------------------------

    private static readonly Gen<RoutingInput> Clusters =
        from subnetCount in Gen.Int[1, 5]
        from tableOfSubnet in Gen.Int[0, 2].Array[subnetCount]
        from nodeSubnets in Gen.Int[0, subnetCount - 1].Array[1, 25]
        from blockOwners in Gen.Int[0, 24].Array[0, 60]
        from pods in Gen.Int[0, 64].Array[60]
        from health in Gen.Bool.Array[25]
        from budgets in Gen.Int[0, 40].Array[3]
        select Build(subnetCount, tableOfSubnet, nodeSubnets, blockOwners, pods, health, budgets);

    /// <summary>Subnet i has pod prefix 10.i.0.0/24 with /28 blocks, handed to owners in order, lowest first.</summary>
    private static RoutingInput Build(int subnetCount, int[] tableOfSubnet, int[] nodeSubnets, int[] blockOwners, int[] pods, bool[] health,
        int[] budgets)
    {
        var nodes = nodeSubnets.Select((s, i) => new PlanNode(new NodeName($"n{i}"), new SubnetId($"s{s}"), new Ipv4(0xC0A80000u + (uint)i),
            $"eni-{i}", health[i] || i == 0)).ToList();
        var nextBlock = new int[subnetCount];
        var blocks = new List<PlanBlock>();
        foreach (var (owner, i) in blockOwners.Select((o, i) => (o % nodes.Count, i)))
        {
            var subnet = nodeSubnets[owner];
            if (nextBlock[subnet] == 16) continue;
            blocks.Add(new PlanBlock(new Ipv4Cidr(new Ipv4((10u << 24) | ((uint)subnet << 16) | (uint)(nextBlock[subnet]++ * 16)), 28),
                nodes[owner].Name, pods[i]));
        }
        return new RoutingInput(
            [.. Enumerable.Range(0, subnetCount).Select(i => new PlanSubnet(new SubnetId($"s{i}"),
                new Ipv4Cidr(new Ipv4((10u << 24) | ((uint)i << 16)), 24), $"rtb-{tableOfSubnet[i]}"))],
            [.. nodes], [.. blocks],
            [.. Enumerable.Range(0, 3).Select(t => new PlanTable($"rtb-{t}", budgets[t]))]);
    }

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
            // Subnets whose every node is down cannot be reached; everything else must be.
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
            var all = input with { Nodes = [.. input.Nodes.Select(n => n with { Healthy = true })] };
            var small = RoutePlanner.Plan(all, null, out _);
            var large = RoutePlanner.Plan(all with { Tables = [.. all.Tables.Select(t => t with { Budget = t.Budget + 10 })] }, null,
                out _);
            if (small is null) return;
            Assert.NotNull(large);
            Assert.True(large!.ForwardedFraction <= small.ForwardedFraction + 1e-9,
                $"{large.ForwardedFraction} > {small.ForwardedFraction}");
        }, iter: 300);
    }

    private static string Describe(RoutePlan plan) =>
        string.Join("|", plan.Tables.Select(t => t.Table + ":" + string.Join(",", t.Routes.Select(r => $"{r.Cidr}>{r.Target}"))));
}
