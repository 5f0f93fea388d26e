using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Health;

/// <summary>A route the standby repair moved: in which table, and from which ENI to which.</summary>
public sealed record StandbyMovedRoute(string Table, Ipv4Cidr Cidr, string FromEni, string ToEni);

/// <summary>
/// What a subnet's supervisor replaces when the route manager does not move the routes of a node it judged failed: a pure
/// decision from the manager's last <see cref="RoutesThrough"/> (Romana's routes, from its journal), the tables as EC2
/// describes them now, and the supervisor's own judgements.
/// </summary>
public static class StandbyRepair
{
    /// <summary>
    /// The replaces to make: <paramref name="To"/> null with moves listed means no other node of the subnet can take them.
    /// </summary>
    public sealed record Decision(NodeName? To, string? ToEni, ImmutableArray<StandbyMovedRoute> Moves)
    {
        public static readonly Decision Nothing = new(null, null, []);
        public bool NoPeer => To is null && !Moves.IsEmpty;
    }

    /// <summary>
    /// Every route of <paramref name="routes"/> whose EC2 target is still <paramref name="failed"/>'s ENI goes to one other
    /// node of the subnet that is watched, not judged failed and has an ENI: the first by name, so that any incarnation of
    /// any supervisor chooses the same. A route not in the list (not Romana's), or whose EC2 target is another ENI (already
    /// moved, or changed by someone else), is never touched.
    /// </summary>
    public static Decision Decide(RoutesThrough routes, IEnumerable<Ec2RouteTable> tables, NodeName failed,
        IEnumerable<NodeName> judgedFailed, IEnumerable<NodeName> watched)
    {
        var failedNow = judgedFailed.ToHashSet();
        if (!routes.Enis.TryGetValue(failed, out var failedEni) || failedEni.Length == 0) return Decision.Nothing;
        var inEc2 = new Dictionary<(string Table, Ipv4Cidr Cidr), string>();
        foreach (var table in tables)
            foreach (var route in table.Routes)
                if (!route.IsLocal && Ipv4Cidr.TryParse(route.Destination, out var cidr)) inEc2[(table.Id, cidr)] = route.Target;
        var stuck = routes.Routes
            .Where(r => inEc2.TryGetValue((r.Table, r.Cidr), out var target) && target == failedEni)
            .Select(r => (r.Table, r.Cidr))
            .Distinct()
            .ToList();
        if (stuck.Count == 0) return Decision.Nothing;
        var peer = watched
            .Where(n => n != failed && !failedNow.Contains(n) && routes.Enis.TryGetValue(n, out var eni) && eni.Length > 0)
            .OrderBy(n => n.Value, StringComparer.Ordinal)
            .Select(n => (NodeName?)n)
            .FirstOrDefault();
        var toEni = peer is { } p ? routes.Enis[p] : null;
        return new Decision(peer, toEni, [.. stuck.Select(r => new StandbyMovedRoute(r.Table, r.Cidr, failedEni, toEni ?? ""))]);
    }
}
