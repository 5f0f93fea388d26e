using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

public sealed record Violation(SubnetId Source, Ipv4Cidr Block, NodeName Owner, string Reason)
{
    public override string ToString() => $"from subnet {Source} to block {Block} of node {Owner}: {Reason}";
}

/// <summary>
/// Walks every (source subnet, destination block) pair, as packets would: within a subnet, host routes reach every
/// block; across subnets, one lookup in the source subnet's route table must lead to the owner or to a healthy node of
/// the owner's subnet, whose host route hands the packet on. Needing a second VPC lookup is a loop, and a violation.
/// Also checks that every route is valid: its target a healthy node of the subnet whose prefix holds the route.
/// </summary>
public static class ReachabilityChecker
{
    public static Violation? FirstViolation(RoutingInput input, RoutePlan plan)
    {
        var nodes = input.Nodes.ToDictionary(n => n.Name);
        var subnets = input.Subnets.ToDictionary(s => s.Id);

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

        foreach (var source in input.Subnets)
        {
            var table = plan.Table(source.RouteTable);
            foreach (var block in input.Blocks)
            {
                if (!nodes.TryGetValue(block.Owner, out var owner))
                    return new Violation(source.Id, block.Block, block.Owner, "the owner is not a known node");
                if (owner.Subnet == source.Id) continue; // host routes
                if (table is null)
                    return new Violation(source.Id, block.Block, block.Owner,
                        $"the subnet's route table {source.RouteTable} is not managed");
                var route = table.Routes.Where(r => r.Cidr.Contains(block.Block.Network)).MaxBy(r => r.Cidr.PrefixLength);
                if (route is null)
                    return new Violation(source.Id, block.Block, block.Owner, $"no route in table {table.Table}");
                if (route.Cidr.PrefixLength > block.Block.PrefixLength)
                    return new Violation(source.Id, block.Block, block.Owner, $"route {route.Cidr} is more specific than the block");
                var target = nodes[route.Target];
                if (!target.Healthy)
                    return new Violation(source.Id, block.Block, block.Owner,
                        $"route {route.Cidr} targets {target.Name}, which is not healthy");
                if (target.Subnet != owner.Subnet)
                    return new Violation(source.Id, block.Block, block.Owner,
                        $"route {route.Cidr} leads to {target.Name} in subnet {target.Subnet}, " +
                        $"which would need a second VPC lookup (a loop)");
                // Same subnet: the target is the owner, or its host route to the owner's block hands the packet on.
            }
        }
        return null;
    }
}

public static class RouteMetrics
{
    /// <summary>
    /// The share of pods reached through a forwarder, over every table and every pod of the subnets it routes to: the
    /// longest-prefix route of the pod's block targets another node than the owner. Computed from routes alone, so it
    /// serves replays as well as plans.
    /// </summary>
    public static double ForwardedFraction(RoutingInput input, RoutePlan plan)
    {
        var subnetOf = input.Nodes.ToDictionary(n => n.Name, n => n.Subnet);
        long forwarded = 0, pods = 0;
        foreach (var table in plan.Tables)
        {
            var own = input.Subnets.Where(s => s.RouteTable == table.Table).Select(s => s.Id).ToList();
            var routes = table.Routes.GroupBy(r => r.Cidr.PrefixLength).OrderByDescending(g => g.Key)
                .Select(g => (Length: g.Key, Routes: g.ToDictionary(r => r.Cidr.Network, r => r.Target))).ToList();
            foreach (var block in input.Blocks)
            {
                if (!subnetOf.TryGetValue(block.Owner, out var subnet) || (own.Count == 1 && own[0] == subnet)) continue;
                pods += block.Pods;
                foreach (var (length, byNetwork) in routes)
                {
                    if (length > block.Block.PrefixLength
                        || !byNetwork.TryGetValue(Addressing.Ipv4Cidr.Containing(block.Block.Network, length).Network, out var target))
                        continue;
                    if (target != block.Owner) forwarded += block.Pods;
                    break;
                }
            }
        }
        return pods == 0 ? 0 : (double)forwarded / pods;
    }
}
