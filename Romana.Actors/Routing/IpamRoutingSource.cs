using Akka.Actor;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Routing;

/// <summary>
/// The cluster as IPAM knows it: subnets with their route tables from the topology, member nodes with their ENIs, and
/// blocks with their pod counts. A node without a known ENI cannot be a route target. Health is the route manager's
/// own knowledge, from the forwarder supervisors.
///
/// Blocks come from the subnets (which node owns which block); their pod counts from the nodes' own views where the IPAM
/// has them. In a cluster a daemon's IPAM holds only its own node's view (addresses are decided on each node), so a block
/// of another node is weighed as if full: the planner uses pod counts only to prefer targets that forward fewer pods.
/// </summary>
public sealed class IpamRoutingSource(IActorRef ipam, ClusterTopology topology, TimeSpan timeout) : IRoutingSource
{
    public async Task<RoutingSnapshot> ReadAsync(CancellationToken cancellation = default)
    {
        var reply = await ipam.Ask<IpamReply>(new GetIpamState(), timeout, cancellation);
        if (reply is not IpamStateView state) throw new InvalidOperationException($"IPAM answered {reply}");
        return Snapshot(state, topology);
    }

    /// <summary>The subnets publish their changes on the actor system's event stream.</summary>
    public void Subscribe(IActorContext context) =>
        context.System.EventStream.Subscribe(context.Self, typeof(OwnershipFeed.OwnershipChanged));

    public static RoutingSnapshot Snapshot(IpamStateView state, ClusterTopology topology)
    {
        var subnets = topology.Subnets.Where(s => s.RouteTable is not null).Select(s => new PlanSubnet(s.Id, s.PodPrefix, s.RouteTable!));
        var nodes = state.Subnets.SelectMany(s => s.Members.Select(m =>
            new PlanNode(m.Node, s.Subnet, m.Ip, m.Eni ?? "", m.Eni is not null)));
        var known = state.Nodes.ToDictionary(n => n.Node);
        var blocks = state.Nodes.SelectMany(n => n.Blocks.Select(b => new PlanBlock(b, n.Node,
                n.Allocations.Count(a => b.Contains(a.Address)))))
            .Concat(state.Subnets.SelectMany(s => s.Owners).Where(o => !known.ContainsKey(o.Node))
                .Select(o => new PlanBlock(o.Block, o.Node, (int)Math.Min(o.Block.Size, int.MaxValue))));
        return new RoutingSnapshot([.. subnets], [.. nodes], [.. blocks]);
    }
}
