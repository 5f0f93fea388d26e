using Romana.Actors.Addressing;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Kubernetes;

/// <summary>
/// Where a Kubernetes Node goes in Romana's IPAM: the subnet whose <c>vpc-cidr</c> holds one of its InternalIPs (one in the
/// zone of its zone label first), the instance from <c>spec.providerID</c> (<c>aws:///us-east-1a/i-0abc…</c>). The ENI is left
/// to the node's daemon, which reads it from the instance metadata service: both joins agree (an unset ENI or instance
/// agrees with any), so whichever comes first, the second changes nothing.
/// </summary>
public static class NodePlacement
{
    public abstract record Decision;
    public sealed record Join(AddNode Command, string Cause) : Decision;
    /// <summary>A Node Romana cannot place: logged once, skipped.</summary>
    public sealed record Skip(string Why) : Decision;

    public static Decision Decide(KubeNode node, ClusterTopology topology)
    {
        if (node.InternalIps.IsDefaultOrEmpty) return new Skip($"Node {node.Name} has no InternalIP address");
        var candidates = (
            from text in node.InternalIps
            let parsed = Ipv4.TryParse(text, out var ip) ? ip : (Ipv4?)null
            where parsed is not null
            from subnet in topology.Subnets
            where subnet.VpcCidr is { } vpc && vpc.Contains(parsed.Value)
            orderby subnet.Zone.Value == node.Zone ? 0 : 1
            select (Ip: parsed.Value, Subnet: subnet)).ToList();
        if (candidates.Count == 0)
            return new Skip($"Node {node.Name}: no InternalIP of {string.Join(", ", node.InternalIps)} is inside the vpc-cidr " +
                "of a subnet of romana.topology");
        var (address, layout) = candidates[0];
        var instance = InstanceOf(node.ProviderId);
        var zone = node.Zone is { Length: > 0 } z ? $"zone {z}" : "no zone label";
        return new Join(new AddNode(new NodeName(node.Name), layout.Id, address.ToString(), null, instance,
                $"Kubernetes Node {node.Name} (uid {node.Uid}) added: InternalIP {address} in subnet {layout.Id}'s " +
                $"vpc-cidr {layout.VpcCidr}, " +
                $"{zone}{(instance is null ? "" : $", instance {instance}")}", MembershipOnly: true),
            $"InternalIP {address} in {layout.VpcCidr}");
    }

    /// <summary>The EC2 instance of <c>aws:///ZONE/i-…</c> (or <c>aws:///i-…</c>); null for any other provider.</summary>
    public static string? InstanceOf(string? providerId)
    {
        if (providerId is null || !providerId.StartsWith("aws://", StringComparison.Ordinal)) return null;
        var last = providerId[(providerId.LastIndexOf('/') + 1)..];
        return last.StartsWith("i-", StringComparison.Ordinal) && last.Length > 2 && last.All(c => char.IsAsciiLetterOrDigit(c) || c == '-')
            ? last
            : null;
    }
}
