using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using static Romana.Actors.Topology.ZoneMessages;

namespace Romana.Actors.Topology;

/// <summary>A zone's prefix and its subnets' prefixes, as persisted. Once carved, a prefix never moves.</summary>
public sealed record ZoneState(ZoneName Zone, Ipv4Cidr? PodPrefix, ImmutableSortedDictionary<SubnetId, Ipv4Cidr> SubnetPrefixes)
{
    public static ZoneState Empty(ZoneName zone) => new(zone, null, ImmutableSortedDictionary<SubnetId, Ipv4Cidr>.Empty);

    /// <summary>
    /// Compares the configured layout with what the journal holds: a new zone or subnet is recorded; a prefix that
    /// moved, or a subnet that disappeared, is refused, because addresses may already be handed out from it.
    /// </summary>
    public (ImmutableArray<object> Events, IpamError? Error) DecideDeclare(ZoneLayout layout, DateTimeOffset now)
    {
        if (PodPrefix is { } known && known != layout.PodPrefix)
            return ([], Changed($"zone {Zone} was carved as {known}; the configuration now gives {layout.PodPrefix}"));
        var configured = layout.Subnets.Select(s => s.Id).ToHashSet();
        var gone = SubnetPrefixes.Keys.FirstOrDefault(id => !configured.Contains(id));
        if (gone.Value is not null)
            return ([], Changed($"subnet {gone} of zone {Zone} ({SubnetPrefixes[gone]}) is in the journal but not in the configuration"));

        var events = new List<object>();
        if (PodPrefix is null) events.Add(new ZoneDeclared(Zone, layout.PodPrefix, now, "zone configured"));
        foreach (var subnet in layout.Subnets)
        {
            if (SubnetPrefixes.TryGetValue(subnet.Id, out var prefix))
            {
                if (prefix != subnet.PodPrefix)
                    return ([], Changed($"subnet {subnet.Id} of zone {Zone} was carved as {prefix}; " +
                        $"the configuration now gives {subnet.PodPrefix}"));
                continue;
            }
            var clash = SubnetPrefixes.FirstOrDefault(p => p.Value.Overlaps(subnet.PodPrefix));
            if (clash.Key.Value is not null)
                return ([], Changed($"new subnet {subnet.Id} ({subnet.PodPrefix}) overlaps subnet {clash.Key} ({clash.Value})"));
            events.Add(new SubnetPrefixAssigned(Zone, subnet.Id, subnet.PodPrefix, now, "subnet configured"));
        }
        return ([.. events], null);
    }

    public ZoneState Apply(object e) => e switch
    {
        ZoneDeclared declared => this with { PodPrefix = declared.PodPrefix },
        SubnetPrefixAssigned assigned => this with { SubnetPrefixes = SubnetPrefixes.SetItem(assigned.Subnet, assigned.PodPrefix) },
        _ => throw new ArgumentException($"not a zone event: {e.GetType().Name}", nameof(e)),
    };

    private static IpamError Changed(string what) =>
        IpamError.Invalid($"topology changed: {what}; carved prefixes cannot move while they may hold addresses");
}
