using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>What kind of fault a violation is.</summary>
public enum ViolationKind
{
    /// <summary>A route that should never exist: outside its subnet's prefix, to another subnet's node, a loop.</summary>
    Wrong,
    /// <summary>A pod not reached because its route still leads to a node that is not healthy: a failover not done yet.</summary>
    Unreachable,
    /// <summary>A pod not reached because no route covers it yet: a plan not carried out yet (a first convergence, a new block).</summary>
    NotRouted,
}

/// <param name="FromNode">The source: a node of the subnet (true), or another instance of it, which has no host routes (false).</param>
public sealed record Violation(SubnetId Source, Ipv4Cidr Block, NodeName Owner, string Reason, ViolationKind Kind = ViolationKind.Wrong,
    bool FromNode = true)
{
    public override string ToString() => $"from {(FromNode ? "a node" : "an instance that is not a node")} of subnet {Source} " +
        $"to block {Block} of node {Owner}: {Reason}";
}

/// <summary>
/// Walks every (source, destination block) pair, as packets would. Two sources in every subnet: a node (within its
/// subnet, host routes reach every block) and an instance that is not a node (a load balancer, a bastion: no host routes,
/// so even its own subnet's pods go through the VPC). Through the VPC, one lookup in the source subnet's route table
/// must lead to the owner or to a healthy node of the owner's subnet, whose host route hands the packet on; needing a
/// second VPC lookup is a loop, and a violation. Also checks that every route is valid: its target a node of the subnet
/// whose prefix holds the route. Each table's lookups are done once, whatever the number of subnets it serves.
/// </summary>
public static class ReachabilityChecker
{
    /// <param name="routedOnly">
    /// Pods that no route covers yet are not reported (a failover's repair is judged on the routes there are).
    /// </param>
    public static Violation? FirstViolation(RoutingInput input, RoutePlan plan, bool routedOnly = false)
    {
        var nodes = input.Nodes.ToDictionary(n => n.Name);

        foreach (var table in plan.Tables)
            foreach (var route in table.Routes)
            {
                var holder = input.Subnets.Where(s => s.PodPrefix.Contains(route.Cidr)).ToList();
                if (holder.Count != 1)
                    return new Violation(default, route.Cidr, route.Target,
                        $"route {route.Cidr} in table {table.Table} lies in no single subnet's pod prefix");
                if (!nodes.TryGetValue(route.Target, out var target) || target.Subnet != holder[0].Id)
                    return new Violation(holder[0].Id, route.Cidr, route.Target,
                        $"route {route.Cidr} in table {table.Table} targets {route.Target}, not a node of subnet {holder[0].Id}");
            }

        // What a source finds depends only on its subnet's table: each table's first problem is found once.
        var firstProblems = new Dictionary<string, Violation?>();
        foreach (var source in input.Subnets)
        {
            if (plan.Table(source.RouteTable) is not { } table)
            {
                if (input.Blocks.FirstOrDefault() is { } any)
                    return new Violation(source.Id, any.Block, any.Owner, $"the subnet's route table {source.RouteTable} is not managed",
                        FromNode: false);
                continue;
            }
            if (!firstProblems.TryGetValue(table.Table, out var problem))
                firstProblems[table.Table] = problem = FirstProblem(input, table, nodes, routedOnly);
            // A node of the owner's subnet has a host route; any other instance (and a node of another subnet) asks the VPC.
            if (problem is not null)
                return problem with
                {
                    Source = source.Id,
                    FromNode = nodes.TryGetValue(problem.Owner, out var owner) && owner.Subnet != source.Id,
                };
        }
        return null;
    }

    private static Violation? FirstProblem(RoutingInput input, TablePlan table, Dictionary<NodeName, PlanNode> nodes, bool routedOnly)
    {
        var lookup = new TableLookup(table, nodes);
        foreach (var block in input.Blocks)
        {
            if (!nodes.TryGetValue(block.Owner, out var owner))
                return new Violation(default, block.Block, block.Owner, "the owner is not a known node");
            if (lookup.Problem(block, owner) is { } problem && !(routedOnly && problem.Kind == ViolationKind.NotRouted))
                return new Violation(default, block.Block, block.Owner, problem.Reason, problem.Kind);
        }
        return null;
    }

    /// <summary>One table's longest-prefix lookups, by prefix length (longest first).</summary>
    private sealed class TableLookup
    {
        private readonly string _table;
        private readonly Dictionary<NodeName, PlanNode> _nodes;
        private readonly List<(int Length, Dictionary<uint, PlannedRoute> Routes)> _byLength;

        public TableLookup(TablePlan table, Dictionary<NodeName, PlanNode> nodes)
        {
            _table = table.Table;
            _nodes = nodes;
            _byLength = [.. table.Routes.GroupBy(r => r.Cidr.PrefixLength).OrderByDescending(g => g.Key)
                .Select(g => (g.Key, g.GroupBy(r => r.Cidr.Network.Value).ToDictionary(r => r.Key, r => r.First())))];
        }

        /// <summary>Why a packet to the block does not reach its owner through this table, or null when it does.</summary>
        public (string Reason, ViolationKind Kind)? Problem(PlanBlock block, PlanNode owner)
        {
            var route = Longest(block.Block.Network);
            if (route is null) return ($"no route in table {_table}", ViolationKind.NotRouted);
            if (route.Cidr.PrefixLength > block.Block.PrefixLength)
                return ($"route {route.Cidr} is more specific than the block", ViolationKind.Wrong);
            var target = _nodes[route.Target];
            if (target.Subnet != owner.Subnet)
                return ($"route {route.Cidr} leads to {target.Name} in subnet {target.Subnet}, "
                    + "which would need a second VPC lookup (a loop)",
                    ViolationKind.Wrong);
            if (!target.Healthy) return ($"route {route.Cidr} targets {target.Name}, which is not healthy", ViolationKind.Unreachable);
            // Same subnet: the target is the owner, or its host route to the owner's block hands the packet on.
            return null;
        }

        private PlannedRoute? Longest(Ipv4 address)
        {
            foreach (var (length, routes) in _byLength)
                if (routes.TryGetValue(Ipv4Cidr.Containing(address, length).Network.Value, out var route)) return route;
            return null;
        }
    }
}

public static class RouteMetrics
{
    /// <summary>
    /// The share of pods reached through a forwarder, over every table and every pod it routes (every subnet's, its own
    /// included; a pod no route covers is reached neither way and not counted): the longest-prefix route of the pod's
    /// block targets another node than the owner. Computed from routes alone, so it serves replays as well as plans.
    /// </summary>
    public static double ForwardedFraction(RoutingInput input, RoutePlan plan)
    {
        var known = input.Nodes.Select(n => n.Name).ToHashSet();
        long forwarded = 0, pods = 0;
        foreach (var table in plan.Tables)
        {
            var routes = table.Routes.GroupBy(r => r.Cidr.PrefixLength).OrderByDescending(g => g.Key)
                .Select(g => (Length: g.Key, Routes: g.ToDictionary(r => r.Cidr.Network, r => r.Target))).ToList();
            foreach (var block in input.Blocks)
            {
                if (!known.Contains(block.Owner)) continue;
                foreach (var (length, byNetwork) in routes)
                {
                    if (length > block.Block.PrefixLength
                        || !byNetwork.TryGetValue(Addressing.Ipv4Cidr.Containing(block.Block.Network, length).Network, out var target))
                        continue;
                    pods += block.Pods;
                    if (target != block.Owner) forwarded += block.Pods;
                    break;
                }
            }
        }
        return pods == 0 ? 0 : (double)forwarded / pods;
    }
}
