using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;

namespace Romana.Actors.Dataplane;

/// <summary>A route of this host to another node's block: <c>Block via NodeIp</c>, in Romana's own routing table.</summary>
public sealed record HostRoute(Ipv4Cidr Block, Ipv4 Via)
{
    public override string ToString() => $"{Block} via {Via}";
}

/// <summary>What to change in the kernel: routes to put (added or re-pointed) and blocks whose route goes.</summary>
public sealed record HostRouteChanges(ImmutableArray<HostRoute> Put, ImmutableArray<Ipv4Cidr> Remove)
{
    public static readonly HostRouteChanges None = new([], []);
    public bool IsEmpty => Put.IsEmpty && Remove.IsEmpty;
    public override string ToString() => $"{Put.Length} to put, {Remove.Length} to remove";
}

/// <summary>
/// The host routes of a node (DESIGN.md section 2): for every other node of its subnet, each of that node's blocks via
/// that node's IP; nothing else, the rest follows the default route. Pure, so the agent's decisions are tested without a kernel.
/// </summary>
public static class HostRoutes
{
    public static ImmutableSortedDictionary<Ipv4Cidr, Ipv4> Wanted(SubnetSnapshot subnet, NodeName self)
    {
        var ips = subnet.Members.ToDictionary(m => m.Node, m => m.Ip);
        return subnet.Owners
            .Where(o => o.Node != self && ips.ContainsKey(o.Node))
            .ToImmutableSortedDictionary(o => o.Block, o => ips[o.Node]);
    }

    /// <summary>The smallest change from what the kernel holds to what is wanted: new and re-pointed routes, then withdrawn ones.</summary>
    public static HostRouteChanges Diff(IReadOnlyDictionary<Ipv4Cidr, Ipv4> current, IReadOnlyDictionary<Ipv4Cidr, Ipv4> wanted) => new(
        [.. wanted.Where(w => !current.TryGetValue(w.Key, out var via) || via != w.Value).Select(w => new HostRoute(w.Key, w.Value))
            .OrderBy(r => r.Block)],
        [.. current.Keys.Where(block => !wanted.ContainsKey(block)).Order()]);
}
