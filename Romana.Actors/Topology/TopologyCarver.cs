using System.Collections.Immutable;
using System.Numerics;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;

namespace Romana.Actors.Topology;

/// <summary>
/// Carves the pod CIDR by zone, then by subnet (DESIGN.md section 2): siblings share their parent in equal
/// power-of-two slots in the order given, padded to the next power of two, unless every sibling names its prefix.
/// </summary>
public static class TopologyCarver
{
    /// <summary>Blocks larger than this would make a node's address bitmap unreasonably large.</summary>
    public const int LargestBlockPrefixLength = 16;

    /// <summary>Subnets of a topology (and so zones, each of which needs one): AWS allows 200 subnets per VPC by default.</summary>
    public const int MostSubnets = 1_000;

    /// <summary>
    /// Ranges no pod may have an address in (RFC 6890 and the Linux host's view of them): packets to these addresses are
    /// never routed to a pod, or never leave the host, or mean something else to every host and to the VPC.
    /// </summary>
    public static readonly IReadOnlyList<(Ipv4Cidr Range, string Why)> Unusable =
    [
        (Ipv4Cidr.Parse("0.0.0.0/8"), "'this network', no host's address"),
        (Ipv4Cidr.Parse("127.0.0.0/8"), "loopback, never routed off a host"),
        (Ipv4Cidr.Parse("169.254.0.0/16"), "link-local: the instance metadata service and the VPC's DNS answer there"),
        (Ipv4Cidr.Parse("224.0.0.0/4"), "multicast, no host's address"),
        (Ipv4Cidr.Parse("240.0.0.0/4"), "reserved, and the broadcast address"),
    ];

    public static ClusterTopology Carve(TopologySpec spec) =>
        TryCarve(spec, out var topology, out var error) ? topology : throw new TopologyException(error);

    public static bool TryCarve(TopologySpec spec, out ClusterTopology topology, out IpamError error)
    {
        topology = null!;
        var failure = Validate(spec, out var carved);
        error = failure!;
        if (failure is not null) return false;
        topology = carved!;
        return true;
    }

    private static IpamError? Validate(TopologySpec spec, out ClusterTopology? topology)
    {
        topology = null;
        if (!Ipv4Cidr.TryParse(spec.PodCidr, out var podCidr))
            return Invalid($"pod-cidr: {Quoting.Quote(spec.PodCidr)} is not an IPv4 CIDR such as 100.64.0.0/10");
        if (podCidr.PrefixLength == 0)
            return Invalid($"pod-cidr: {podCidr} is the default route: every address would be a pod's, the VPC's, the internet's " +
                "and the host's own alike");
        foreach (var (range, why) in Unusable)
            if (podCidr.Overlaps(range)) return Invalid($"pod-cidr: {podCidr} overlaps {range} ({why})");
        var block = spec.BlockPrefixLength;
        if (block is < 0 or > 32)
            return Invalid($"block-prefix-length: {block} is not a prefix length (0 to 32)");
        if (block < podCidr.PrefixLength)
            return Invalid($"block-prefix-length: /{block} is larger than pod-cidr {podCidr}");
        if (block < LargestBlockPrefixLength)
            return Invalid($"block-prefix-length: /{block} is larger than /{LargestBlockPrefixLength}, the largest node block supported");
        if (spec.Zones.Count == 0)
            return Invalid("zones: at least one zone is needed");
        if (spec.Zones.Sum(z => (long)Math.Max(1, z.Subnets.Count)) > MostSubnets)
            return Invalid($"zones: more than {MostSubnets:N0} subnets (each zone needs one), the most a topology may have");

        var zoneNames = new HashSet<string>();
        var subnetIds = new Dictionary<string, string>();
        var vpcCidrs = new List<(Ipv4Cidr Cidr, string Path)>();
        for (var z = 0; z < spec.Zones.Count; z++)
        {
            var zone = spec.Zones[z];
            if (string.IsNullOrWhiteSpace(zone.Name)) return Invalid($"zones[{z}].name: a zone needs a name");
            if (!zoneNames.Add(zone.Name)) return Invalid($"zones[{z}].name: zone {Quoting.Quote(zone.Name)} appears twice");
            if (zone.Subnets.Count == 0) return Invalid($"{ZonePath(z, zone)}.subnets: a zone needs at least one subnet");
            for (var s = 0; s < zone.Subnets.Count; s++)
            {
                var subnet = zone.Subnets[s];
                var at = $"{ZonePath(z, zone)}.subnets[{s}]";
                if (string.IsNullOrWhiteSpace(subnet.Id)) return Invalid($"{at}.id: a subnet needs an id");
                if (!subnetIds.TryAdd(subnet.Id, zone.Name))
                    return Invalid($"{at}.id: subnet {Quoting.Quote(subnet.Id)} is already in zone " +
                        $"{Quoting.Quote(subnetIds[subnet.Id])}; a subnet belongs to one zone");
                if (subnet.VpcCidr is null) continue;
                var path = $"{at} ({Quoting.Bounded(subnet.Id)})";
                if (!Ipv4Cidr.TryParse(subnet.VpcCidr, out var vpc))
                    return Invalid($"{path}.vpc-cidr: {Quoting.Quote(subnet.VpcCidr)} is not an IPv4 CIDR");
                var clash = vpcCidrs.FindIndex(v => v.Cidr.Overlaps(vpc));
                if (clash >= 0)
                    return Invalid($"{path}.vpc-cidr: {vpc} overlaps {vpcCidrs[clash].Path}'s {vpcCidrs[clash].Cidr}: " +
                        "VPC subnets never overlap");
                vpcCidrs.Add((vpc, path));
            }
        }
        // A pod's address is routed to its node: one that is also a VPC address (an instance's, the subnet's router's or
        // DNS server's) would be reached two ways.
        foreach (var (vpc, path) in vpcCidrs)
            if (podCidr.Overlaps(vpc))
                return Invalid($"pod-cidr: {podCidr} overlaps {path}.vpc-cidr {vpc}: a pod's address would be an address of the VPC");

        var zonePrefixes = CarveSiblings(podCidr, "pod-cidr",
            spec.Zones.Select((zone, z) => (Path: ZonePath(z, zone), zone.PodPrefix)).ToList(), out var zoneError);
        if (zoneError is not null) return zoneError;

        var zones = ImmutableArray.CreateBuilder<ZoneLayout>();
        for (var z = 0; z < spec.Zones.Count; z++)
        {
            var zone = spec.Zones[z];
            var zoneName = new ZoneName(zone.Name);
            var subnetPrefixes = CarveSiblings(zonePrefixes![z], $"{ZonePath(z, zone)}.pod-prefix",
                zone.Subnets.Select((subnet, s) => (Path: $"{ZonePath(z, zone)}.subnets[{s}] ({Quoting.Bounded(subnet.Id)})",
                    subnet.PodPrefix)).ToList(),
                out var subnetError);
            if (subnetError is not null) return subnetError;

            var subnets = ImmutableArray.CreateBuilder<SubnetLayout>();
            for (var s = 0; s < zone.Subnets.Count; s++)
            {
                var subnet = zone.Subnets[s];
                var prefix = subnetPrefixes![s];
                if (prefix.PrefixLength > block)
                    return Invalid($"{ZonePath(z, zone)}.subnets[{s}] ({Quoting.Bounded(subnet.Id)}): " +
                        $"its pod prefix {prefix} is smaller than one block (/{block})");
                Ipv4Cidr? vpc = subnet.VpcCidr is null ? null : Ipv4Cidr.Parse(subnet.VpcCidr);
                subnets.Add(new SubnetLayout(new SubnetId(subnet.Id), zoneName, prefix, vpc, subnet.RouteTable));
            }
            zones.Add(new ZoneLayout(zoneName, zonePrefixes[z], subnets.ToImmutable()));
        }

        topology = new ClusterTopology(podCidr, block, zones.ToImmutable());
        return null;
    }

    /// <summary>Either every sibling names its prefix (inside the parent, overlapping no sibling) or none does.</summary>
    private static List<Ipv4Cidr>? CarveSiblings(Ipv4Cidr parent, string parentPath,
        IReadOnlyList<(string Path, string? PodPrefix)> siblings, out IpamError? error)
    {
        error = null;
        var named = siblings.Count(s => s.PodPrefix is not null);
        if (named == 0)
        {
            var slots = BitOperations.RoundUpToPowerOf2((uint)siblings.Count);
            var slotPrefixLength = parent.PrefixLength + BitOperations.Log2(slots);
            if (slotPrefixLength > 32)
            {
                error = Invalid($"{parentPath}: {parent} cannot be split into {slots} slots for {siblings.Count} siblings");
                return null;
            }
            return Enumerable.Range(0, siblings.Count).Select(i => parent.Slot((ulong)i, slotPrefixLength)).ToList();
        }
        if (named != siblings.Count)
        {
            var unnamed = siblings.First(s => s.PodPrefix is null);
            error = Invalid($"{unnamed.Path}.pod-prefix: missing, while a sibling names its own; " +
                $"either every sibling names its pod-prefix or none does");
            return null;
        }

        var prefixes = new List<Ipv4Cidr>();
        foreach (var (path, text) in siblings)
        {
            if (!Ipv4Cidr.TryParse(text, out var prefix))
            {
                error = Invalid($"{path}.pod-prefix: {Quoting.Quote(text)} is not an IPv4 CIDR");
                return null;
            }
            if (!parent.Contains(prefix))
            {
                error = Invalid($"{path}.pod-prefix: {prefix} is not inside its parent {parent}");
                return null;
            }
            var clash = prefixes.FindIndex(p => p.Overlaps(prefix));
            if (clash >= 0)
            {
                error = Invalid($"{path}.pod-prefix: {prefix} overlaps its sibling {siblings[clash].Path} ({prefixes[clash]})");
                return null;
            }
            prefixes.Add(prefix);
        }
        return prefixes;
    }

    private static string ZonePath(int z, ZoneSpec zone) => $"zones[{z}] ({Quoting.Bounded(zone.Name)})";

    private static IpamError Invalid(string message) => IpamError.Invalid("topology " + message);
}

public sealed class TopologyException(IpamError error) : Exception(error.Message)
{
    public IpamError Error { get; } = error;
}
