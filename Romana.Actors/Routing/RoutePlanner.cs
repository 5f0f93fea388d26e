using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>
/// Plans the pod routes of every managed route table (DESIGN.md sections 1 and 2), as pure functions.
///
/// Every table routes every subnet that has blocks, its own subnets included: the VPC's other instances (a load
/// balancer with IP targets, a bastion, a NAT or VPN path, a peered VPC) use the table too, and have no host routes.
/// One route per subnet with blocks is the minimum; a table whose budget cannot hold it is refused, naming how many
/// routes it needs and may hold. The rest of a table's own budget buys more specific routes, greedily, where they turn
/// the most pods (then blocks) from forwarded into direct, down to one route per block (the kubenet equivalent). Which
/// prefixes to route (<see cref="Layout"/>) depends only on blocks, pods and budgets; targets (<see cref="AssignTargets"/>)
/// depend on health and on the current routes, so a change of health re-plans without re-laying out.
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
        var tables = input.Tables.OrderBy(t => t.Id, StringComparer.Ordinal).ToList();
        shortfalls = [.. tables.Where(t => withBlocks.Count > t.Budget).Select(t => new BudgetShortfall(t.Id, withBlocks.Count, t.Budget))];
        if (!shortfalls.IsEmpty) return null;

        var refiners = withBlocks.Select(s => new SubnetRefiner(s, blocksBySubnet[s.Id])).ToList();
        return new RouteLayout([.. tables.Select(table =>
        {
            var steps = SpendBudget(refiners, table.Budget - refiners.Count);
            return new TableLayout(table.Id, table.Budget, [.. refiners.SelectMany((r, i) => r.Routes(steps[i])).OrderBy(r => r.Cidr)]);
        })]);
    }

    /// <summary>
    /// Hands out <paramref name="spare"/> routes to the subnets' refinement sequences, the largest next gain first; a step
    /// that takes out routes it makes useless costs less than one route.
    /// </summary>
    private static int[] SpendBudget(IReadOnlyList<SubnetRefiner> subnets, int spare)
    {
        var steps = new int[subnets.Count];
        while (true)
        {
            var best = -1;
            var bestGain = default(RouteGain);
            for (var i = 0; i < subnets.Count; i++)
                if (subnets[i].Gain(steps[i]) is { } gain && gain > bestGain && subnets[i].Cost(steps[i]) <= spare)
                {
                    best = i;
                    bestGain = gain;
                }
            if (best < 0) return steps;
            spare -= subnets[best].Cost(steps[best]);
            steps[best]++;
        }
    }

    /// <summary>
    /// A target for every route, a table's covering routes before the routes they cover: the current target while it is
    /// healthy (no churn, and a node that recovers does not pull routes back), else the preferred node if healthy, else a
    /// rendezvous choice among the healthy owners of the route's blocks, else among the healthy nodes of its subnet. A
    /// subnet with no healthy node keeps its routes and is reported.
    /// A route gains only where it leads elsewhere than the route covering it, so: the current target is not kept where
    /// it is the covering route's, or where it is the preferred node of a route this one covers (that route would gain
    /// nothing), which brings a route back to a recovered node where that is what makes the routes under it pay; and a
    /// route not in place yet that would lead where its covering route leads is left out (its blocks follow the covering
    /// route to the same node). A route in place whose target failed is moved, not taken out, also where it then gains
    /// nothing: taking it out costs the same call, frees nothing this layout would spend, and it pays again once its
    /// node is back.
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
            var routes = table.Routes;
            var covering = CoveringRoutes(routes);
            var targets = new NodeName[routes.Length];
            var planned = ImmutableArray.CreateBuilder<PlannedRoute>(routes.Length);
            for (var i = 0; i < routes.Length; i++)
            {
                var route = routes[i];
                NodeName? previous = was is not null && was.TryGetValue(route.Cidr, out var p) ? p : null;
                NodeName? above = covering[i] >= 0 ? targets[covering[i]] : null;
                // The layout never gives a route under this one the same preferred node, so only a moved route asks.
                var previousFeedsCovered = previous is { } moved && moved != route.Preferred && CoveredPrefers(routes, covering, i, moved);
                var target = targets[i] = Target(route, previous, above, previousFeedsCovered, nodes, healthyBySubnet, withoutHealthy);
                forwarded += route.Pods - route.PodsByOwner.GetValueOrDefault(target);
                pods += route.Pods;
                if (above == target && previous is null) continue;
                planned.Add(new PlannedRoute(route.Cidr, target, nodes.TryGetValue(target, out var node) ? node.Eni : ""));
            }
            return new TablePlan(table.Table, table.Budget, planned.ToImmutable());
        }).ToImmutableArray();
        return new RoutePlan(tables, pods == 0 ? 0 : (double)forwarded / pods, [.. withoutHealthy]);
    }

    /// <summary>
    /// For each route (sorted by prefix, so a covering route comes first), the index of the nearest route covering it; -1: none.
    /// </summary>
    private static int[] CoveringRoutes(ImmutableArray<LayoutRoute> routes)
    {
        var covering = new int[routes.Length];
        var open = new Stack<int>();
        for (var i = 0; i < routes.Length; i++)
        {
            while (open.Count > 0 && !routes[open.Peek()].Cidr.Contains(routes[i].Cidr)) open.Pop();
            covering[i] = open.Count > 0 ? open.Peek() : -1;
            open.Push(i);
        }
        return covering;
    }

    /// <summary>Whether a route that route <paramref name="i"/> covers directly prefers <paramref name="node"/>.</summary>
    private static bool CoveredPrefers(ImmutableArray<LayoutRoute> routes, int[] covering, int i, NodeName node)
    {
        for (var j = i + 1; j < routes.Length && routes[i].Cidr.Contains(routes[j].Cidr); j++)
            if (covering[j] == i && routes[j].Preferred == node) return true;
        return false;
    }

    /// <param name="previousFeedsCovered">The current target is the preferred node of a route this one covers.</param>
    private static NodeName Target(LayoutRoute route, NodeName? previous, NodeName? above, bool previousFeedsCovered,
        Dictionary<NodeName, PlanNode> nodes, Lazy<ILookup<SubnetId, NodeName>> healthyBySubnet, SortedSet<SubnetId> withoutHealthy)
    {
        bool Usable(NodeName? n) => n is { } name && nodes.TryGetValue(name, out var node) && node.Healthy && node.Subnet == route.Subnet;

        if (Usable(previous) && previous != above && !previousFeedsCovered) return previous!.Value;
        if (Usable(route.Preferred)) return route.Preferred;
        var healthyOwners = route.Owners.Where(o => Usable(o) && o != above).ToList();
        if (healthyOwners.Count > 0) return Rendezvous.Choose(route.Cidr, healthyOwners);
        // No owner can take it: wherever it leads, the route forwards, so it stays where it is, or follows its covering route.
        if (Usable(previous)) return previous!.Value;
        if (Usable(above)) return above!.Value;
        if (healthyBySubnet.Value[route.Subnet].Any()) return Rendezvous.Choose(route.Cidr, healthyBySubnet.Value[route.Subnet]);
        withoutHealthy.Add(route.Subnet);
        return previous ?? route.Preferred;
    }
}
