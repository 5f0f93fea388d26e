using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>
/// Which prefixes each table routes, independent of node health: the part of a plan that changes only when blocks,
/// pods or budgets change. <see cref="RoutePlanner.AssignTargets"/> then picks a healthy target for each.
/// </summary>
public sealed record RouteLayout(ImmutableArray<TableLayout> Tables);

public sealed record TableLayout(string Table, int Budget, ImmutableArray<LayoutRoute> Routes);

/// <summary>
/// A route to be: its prefix, the subnet whose prefix holds it, the node it should go to when healthy, the owners of
/// the blocks it is the most specific route for, and how many pods each of them has there (for the forwarded share).
/// </summary>
public sealed record LayoutRoute(Ipv4Cidr Cidr, SubnetId Subnet, NodeName Preferred, ImmutableArray<NodeName> Owners,
    ImmutableDictionary<NodeName, int> PodsByOwner, int Pods);

/// <summary>
/// Rendezvous (highest random weight) hashing:
/// every chooser picks the same node for a key, and removing one node moves only its keys.
/// </summary>
public static class Rendezvous
{
    /// <summary>The node that ranks first for this prefix.</summary>
    public static NodeName Choose(Ipv4Cidr prefix, IEnumerable<NodeName> nodes)
    {
        var key = ((ulong)prefix.Network.Value << 8) | (uint)prefix.PrefixLength;
        return nodes.MaxBy(n => Score(key, n.Value));
    }

    /// <summary>FNV-1a over the key's bytes and the node's characters: stable across processes, unlike string.GetHashCode.</summary>
    private static ulong Score(ulong key, string node)
    {
        var hash = 14695981039346656037UL;
        for (var shift = 0; shift < 64; shift += 8) hash = (hash ^ ((key >> shift) & 0xff)) * 1099511628211UL;
        foreach (var c in node) hash = (hash ^ c) * 1099511628211UL;
        // A final mix so that keys differing in one character do not rank nodes alike.
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        return hash;
    }
}
