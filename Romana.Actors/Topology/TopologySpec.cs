using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Topology;

// What the operator writes (HOCON, a vector, a cluster file): plain strings, validated by TopologyCarver.

public sealed record SubnetSpec(string Id, string? PodPrefix = null, string? VpcCidr = null, string? RouteTable = null);

public sealed record ZoneSpec(string Name, IReadOnlyList<SubnetSpec> Subnets, string? PodPrefix = null);

public sealed record TopologySpec(string PodCidr, int BlockPrefixLength, IReadOnlyList<ZoneSpec> Zones);

// What the carver makes of it: every zone and subnet with its pod prefix.

public sealed record SubnetLayout(SubnetId Id, ZoneName Zone, Ipv4Cidr PodPrefix, Ipv4Cidr? VpcCidr, string? RouteTable);

public sealed record ZoneLayout(ZoneName Name, Ipv4Cidr PodPrefix, ImmutableArray<SubnetLayout> Subnets);

public sealed record ClusterTopology(Ipv4Cidr PodCidr, int BlockPrefixLength, ImmutableArray<ZoneLayout> Zones)
{
    public IEnumerable<SubnetLayout> Subnets => Zones.SelectMany(z => z.Subnets);

    public SubnetLayout? FindSubnet(SubnetId id) => Subnets.FirstOrDefault(s => s.Id == id);

    public SubnetLayout? SubnetContaining(Ipv4 address) => Subnets.FirstOrDefault(s => s.PodPrefix.Contains(address));

    public IReadOnlyList<SubnetLayout> SubnetsOverlapping(Ipv4Cidr range) => Subnets.Where(s => s.PodPrefix.Overlaps(range)).ToList();

    /// <summary>Every zone and subnet with its prefix, zones first in configured order, each followed by its subnets.</summary>
    public IEnumerable<(string Name, Ipv4Cidr Prefix)> Prefixes()
    {
        foreach (var zone in Zones)
        {
            yield return (zone.Name.Value, zone.PodPrefix);
            foreach (var subnet in zone.Subnets) yield return (subnet.Id.Value, subnet.PodPrefix);
        }
    }
}
