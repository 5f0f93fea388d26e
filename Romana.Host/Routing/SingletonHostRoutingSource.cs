using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Host.Routing;

/// <summary>
/// The cluster as the route singleton sees it from the node that hosts it: that node is not offered as a route target
/// (so never a forwarder for other nodes' blocks) while its subnet has another healthy node. Killing the singleton's
/// host then takes no VPC route with it: its own pods are reached through a peer of its subnet, by host routes, and
/// the routes stay right while the singleton moves (which waits for the split-brain resolver to down the member).
/// </summary>
public sealed class SingletonHostRoutingSource(IRoutingSource inner, NodeName host) : IRoutingSource
{
    public async Task<RoutingSnapshot> ReadAsync(CancellationToken cancellation = default) =>
        WithoutHost(await inner.ReadAsync(cancellation), host);

    public static RoutingSnapshot WithoutHost(RoutingSnapshot snapshot, NodeName host)
    {
        var self = snapshot.Nodes.FirstOrDefault(n => n.Name == host);
        if (self is null || !self.Healthy
            || !snapshot.Nodes.Any(n => n.Subnet == self.Subnet && n.Name != host && n.Healthy)) return snapshot;
        return snapshot with { Nodes = [.. snapshot.Nodes.Select(n => n.Name == host ? n with { Healthy = false } : n)] };
    }
}
