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
    ImmutableDictionary<NodeName, int> PodsByOwner)
{
    public int Pods => PodsByOwner.Values.Sum();
}

/// <summary>Rendezvous (highest random weight) hashing: every chooser picks the same node for a key, and removing one node moves only its keys.</summary>
public static class Rendezvous
{
    public static NodeName Choose(string key, IEnumerable<NodeName> nodes) => nodes.MaxBy(n => Score(key, n.Value));

    /// <summary>FNV-1a over the UTF-8 bytes: stable across processes, unlike string.GetHashCode.</summary>
    private static ulong Score(string key, string node)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes($"{key}|{node}")) hash = (hash ^ b) * 1099511628211UL;
        // A final mix so that keys differing in one character do not rank nodes alike.
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        return hash;
    }
}
