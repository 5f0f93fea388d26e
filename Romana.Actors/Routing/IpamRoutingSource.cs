using Akka.Actor;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Routing;

/// <summary>
/// The cluster as IPAM knows it: subnets with their route tables from the topology, member nodes with their ENIs, and
/// blocks with their pod counts. A node without a known ENI cannot be a route target. Health is the route manager's
/// own knowledge, from the forwarder supervisors.
/// </summary>
public sealed class IpamRoutingSource(IActorRef ipam, ClusterTopology topology, TimeSpan timeout) : IRoutingSource
{
    public async Task<RoutingSnapshot> ReadAsync(CancellationToken cancellation = default)
    {
        var reply = await ipam.Ask<IpamReply>(new GetIpamState(), timeout, cancellation);
        if (reply is not IpamStateView state) throw new InvalidOperationException($"IPAM answered {reply}");
        var subnets = topology.Subnets.Where(s => s.RouteTable is not null).Select(s => new PlanSubnet(s.Id, s.PodPrefix, s.RouteTable!));
        var nodes = state.Subnets.SelectMany(s => s.Members.Select(m =>
            new PlanNode(m.Node, s.Subnet, m.Ip, m.Eni ?? "", m.Eni is not null)));
        var blocks = state.Nodes.SelectMany(n => n.Blocks.Select(b => new PlanBlock(b, n.Node,
            n.Allocations.Count(a => b.Contains(a.Address)))));
        return new RoutingSnapshot([.. subnets], [.. nodes], [.. blocks]);
    }
}
