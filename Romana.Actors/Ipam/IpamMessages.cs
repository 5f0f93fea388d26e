using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Ipam;

/// <summary>The IPAM front door's language: what a daemon, the CLI or the vector runner asks.</summary>
public static class IpamMessages
{
    // Commands
    /// <summary>A node joins a subnet; its ENI (what VPC routes target) and instance are optional until routes are managed.</summary>
    public sealed record AddNode(NodeName Node, SubnetId Subnet, string Ip, string? Eni = null, string? InstanceId = null);
    public sealed record RemoveNode(NodeName Node, string Reason = "node removed");
    public sealed record Allocate(NodeName Node, AllocationKey Key, string? Pod = null);
    /// <summary>Release by key or by address (exactly one of them).</summary>
    public sealed record Release(AllocationKey? Key, string? Address, string Reason = "released");
    public sealed record Reserve(string Cidr);
    public sealed record Unreserve(string Cidr);

    // Queries
    public sealed record GetBlocks(NodeName Node);
    public sealed record GetPrefixes;
    /// <summary>The address a key holds: AddressAssigned, or Failed not-found.</summary>
    public sealed record GetAddress(AllocationKey Key);
    /// <summary>Every address a node holds: <see cref="AllocationsOf"/>.</summary>
    public sealed record GetAllocations(NodeName Node);
    /// <summary>One subnet's members and block owners (what a host agent routes by): a <see cref="SubnetSnapshot"/>.</summary>
    public sealed record GetSubnet(SubnetId Subnet);
    /// <summary>Replies once the front door has recovered its zones, subnets and nodes: Succeeded or Failed.</summary>
    public sealed record AwaitReady;
    /// <summary>Every subnet's and node's state, for tests and invariants.</summary>
    public sealed record GetIpamState;

    // Replies
    public abstract record IpamReply;
    public sealed record Succeeded : IpamReply
    {
        public static readonly Succeeded Instance = new();
    }
    public sealed record Failed(IpamError Error) : IpamReply;
    public sealed record AddressAssigned(NodeName Node, AllocationKey Key, Ipv4 Address) : IpamReply;
    public sealed record BlocksOf(NodeName Node, ImmutableArray<Ipv4Cidr> Blocks) : IpamReply;
    public sealed record SubnetView(SubnetSnapshot Subnet) : IpamReply;
    public sealed record AllocationsOf(NodeName Node, ImmutableArray<Allocation> Allocations) : IpamReply;
    public sealed record PrefixList(ImmutableArray<(string Name, Ipv4Cidr Prefix)> Prefixes) : IpamReply;
    public sealed record IpamStateView(ImmutableArray<SubnetSnapshot> Subnets, ImmutableArray<NodeSnapshot> Nodes) : IpamReply;
}
