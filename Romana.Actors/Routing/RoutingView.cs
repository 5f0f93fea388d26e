using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;

namespace Romana.Actors.Routing;

/// <summary>One subnet's part of the route manager's view: its nodes and their blocks.</summary>
public sealed record SubnetPart(ImmutableArray<PlanNode> Nodes, ImmutableArray<PlanBlock> Blocks);

/// <summary>
/// The cluster as the route manager keeps it between reads: each subnet's nodes and blocks, replaced one subnet at a
/// time as the subnets publish their ownership (<see cref="OwnershipFeed.OwnershipChanged"/>), so that a change costs the
/// size of its subnet, not of the cluster. A block the view has not seen before is weighed as full until the next read
/// brings its pod count (pod counts only weigh which node a route should prefer).
/// </summary>
public sealed record RoutingView(ImmutableArray<PlanSubnet> Subnets, ImmutableDictionary<SubnetId, SubnetPart> Parts)
{
    public static RoutingView Of(RoutingSnapshot snapshot)
    {
        var subnetOf = snapshot.Nodes.ToDictionary(n => n.Name, n => n.Subnet);
        var blocks = snapshot.Blocks.Where(b => subnetOf.ContainsKey(b.Owner)).ToLookup(b => subnetOf[b.Owner]);
        var nodes = snapshot.Nodes.ToLookup(n => n.Subnet);
        return new(snapshot.Subnets, snapshot.Subnets.ToImmutableDictionary(s => s.Id,
            s => new SubnetPart([.. nodes[s.Id]], [.. blocks[s.Id]])));
    }

    /// <summary>The view with <paramref name="subnet"/>'s members and owners as published; a subnet not routed is ignored.</summary>
    public RoutingView With(SubnetSnapshot subnet)
    {
        if (!Parts.TryGetValue(subnet.Subnet, out var part)) return this;
        var known = part.Blocks.ToDictionary(b => (b.Block, b.Owner), b => b.Pods);
        return this with
        {
            Parts = Parts.SetItem(subnet.Subnet, new SubnetPart(
                [.. subnet.Members.Select(m => new PlanNode(m.Node, subnet.Subnet, m.Ip, m.Eni ?? "", m.Eni is not null))],
                [.. subnet.Owners.Select(o => new PlanBlock(o.Block, o.Node,
                    known.TryGetValue((o.Block, o.Node), out var pods) ? pods : (int)Math.Min(o.Block.Size, int.MaxValue)))])),
        };
    }

    public RoutingSnapshot Snapshot() => new(Subnets, [.. Subnets.SelectMany(s => Parts[s.Id].Nodes)],
        [.. Subnets.SelectMany(s => Parts[s.Id].Blocks)]);
}
