using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>
/// Plans the pod routes of every managed route table (DESIGN.md sections 1 and 2), as pure functions.
///
/// A table needs one route for each subnet that has blocks, except the one subnet it serves when it serves only one:
/// a node reaches the pods of its own subnet over host routes and never asks the VPC, but a table shared by several
/// subnets carries their traffic to each other. That is the minimum; a table whose budget cannot hold it is refused,
/// naming how many routes it needs and may hold. The rest of a table's budget buys more
/// specific routes, greedily, where they turn the most pods from forwarded into direct, down to one route per block
/// (the kubenet equivalent). Which prefixes to route (<see cref="Layout"/>) depends only on blocks, pods and budgets;
/// targets (<see cref="AssignTargets"/>) depend on health and on the current routes, so a change of health re-plans
/// without re-laying out.
/// </summary>
public static class RoutePlanner
{
    public static RoutePlan? Plan(RoutingInput input, RoutePlan? current, out ImmutableArray<BudgetShortfall> shortfalls)
    {
        var layout = Layout(input, out shortfalls);
        return layout is null ? null : AssignTargets(layout, input, current);
    }

    public static RouteLayout? Layout(RoutingInput input, out ImmutableArray<BudgetShortfall> shortfalls)
    {
        var subnetOf = input.Nodes.ToDictionary(n => n.Name, n => n.Subnet);
        var blocksBySubnet = input.Blocks.ToLookup(b => subnetOf[b.Owner]);
        var withBlocks = input.Subnets.Where(s => blocksBySubnet[s.Id].Any()).ToList();
        var tables = input.Tables.OrderBy(t => t.Id, StringComparer.Ordinal)
            .Select(table => (Table: table, Reached: withBlocks.Select(s => s.Id).ToHashSet())).ToList();
        shortfalls = [.. tables.Where(t => t.Reached.Count > t.Table.Budget)
            .Select(t => new BudgetShortfall(t.Table.Id, t.Reached.Count, t.Table.Budget))];
        if (!shortfalls.IsEmpty) return null;

        var refiners = withBlocks.Select(s => new SubnetRefiner(s, blocksBySubnet[s.Id])).ToList();
        return new RouteLayout([.. tables.Select(t =>
        {
            var reached = refiners.Where(r => t.Reached.Contains(r.Subnet.Id)).ToList();
            var steps = SpendBudget(reached, t.Table.Budget - reached.Count);
            return new TableLayout(t.Table.Id, t.Table.Budget, [.. reached.SelectMany((r, i) => r.Routes(steps[i])).OrderBy(r => r.Cidr)]);
        })]);
    }

    /// <summary>Hands out <paramref name="spare"/> routes to the subnets' refinement sequences, the largest next gain first.</summary>
    private static int[] SpendBudget(IReadOnlyList<SubnetRefiner> subnets, int spare)
    {
        var steps = new int[subnets.Count];
        for (var spent = 0; spent < spare; spent++)
        {
            var best = -1;
            var bestGain = 0;
            for (var i = 0; i < subnets.Count; i++)
                if (subnets[i].Gain(steps[i]) is { } gain && gain > bestGain)
                {
                    best = i;
                    bestGain = gain;
                }
            if (best < 0) break;
            steps[best]++;
        }
        return steps;
    }

    /// <summary>
    /// A target for every route: the current one while it is healthy (no churn, and a node that recovers does not pull
    /// routes back), else the preferred node if healthy, else a rendezvous choice among the healthy owners of the
    /// route's blocks, else among the healthy nodes of its subnet. A subnet with no healthy node keeps its routes and is
    /// reported.
    /// </summary>
    public static RoutePlan AssignTargets(RouteLayout layout, RoutingInput input, RoutePlan? current)
    {
        var nodes = input.Nodes.ToDictionary(n => n.Name);
        // Needed only when neither the current target, nor the preferred node, nor any owner is healthy: built on demand.
        var healthyBySubnet = new Lazy<ILookup<SubnetId, NodeName>>(() => input.Nodes.Where(n => n.Healthy)
            .ToLookup(n => n.Subnet, n => n.Name));
        var currentTargets = current?.Tables.ToDictionary(t => t.Table, t => t.Routes.ToDictionary(r => r.Cidr, r => r.Target))
            ?? new Dictionary<string, Dictionary<Ipv4Cidr, NodeName>>();
        var withoutHealthy = new SortedSet<SubnetId>();
        long forwarded = 0, pods = 0;

        var tables = layout.Tables.Select(table =>
        {
            var was = currentTargets.GetValueOrDefault(table.Table);
            var routes = table.Routes.Select(route =>
            {
                NodeName? previous = was is not null && was.TryGetValue(route.Cidr, out var p) ? p : null;
                var target = Target(route, previous, nodes, healthyBySubnet, withoutHealthy);
                forwarded += route.Pods - route.PodsByOwner.GetValueOrDefault(target);
                pods += route.Pods;
                return new PlannedRoute(route.Cidr, target, nodes.TryGetValue(target, out var node) ? node.Eni : "");
            });
            return new TablePlan(table.Table, table.Budget, [.. routes]);
        }).ToImmutableArray();
        return new RoutePlan(tables, pods == 0 ? 0 : (double)forwarded / pods, [.. withoutHealthy]);
    }

    private static NodeName Target(LayoutRoute route, NodeName? previous, Dictionary<NodeName, PlanNode> nodes,
        Lazy<ILookup<SubnetId, NodeName>> healthyBySubnet, SortedSet<SubnetId> withoutHealthy)
    {
        bool Usable(NodeName? n) => n is { } name && nodes.TryGetValue(name, out var node) && node.Healthy && node.Subnet == route.Subnet;

        if (Usable(previous)) return previous!.Value;
        if (Usable(route.Preferred)) return route.Preferred;
        var healthyOwners = route.Owners.Where(o => Usable(o)).ToList();
        if (healthyOwners.Count > 0) return Rendezvous.Choose(route.Cidr, healthyOwners);
        if (healthyBySubnet.Value[route.Subnet].Any()) return Rendezvous.Choose(route.Cidr, healthyBySubnet.Value[route.Subnet]);
        withoutHealthy.Add(route.Subnet);
        return previous ?? route.Preferred;
    }
}
