using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Persistence;

namespace Romana.Actors.Ipam;

/// <summary>The IPAM front door's language: what a daemon, the CLI or the vector runner asks.</summary>
public static class IpamMessages
{
    // Commands
    /// <summary>
    /// A node joins a subnet; its ENI (what VPC routes target) and instance are optional until routes are managed. Joining
    /// again as the node is known changes nothing (an ENI or instance not known yet is recorded); <paramref name="Reason"/> is
    /// the cause its NodeJoined event carries. In a cluster, a daemon's front door asked for another node (the Kubernetes
    /// Node watch) records the membership only: the node's actor runs in that node's daemon, which claims it. So does one with
    /// <paramref name="MembershipOnly"/> for its own node (the watch runs in some daemon, perhaps the node's own).
    /// </summary>
    public sealed record AddNode(NodeName Node, SubnetId Subnet, string Ip, string? Eni = null, string? InstanceId = null,
        string Reason = "node added", bool MembershipOnly = false) : IRomanaMessage;
    /// <summary>The node leaves Romana: its addresses are released and its blocks returned; replies <see cref="NodeRemoved"/>.</summary>
    public sealed record RemoveNode(NodeName Node, string Reason = "node removed") : IRomanaMessage;
    /// <summary>
    /// An address for the key: the same again for a key the node holds, unless it was handed to another network namespace
    /// (<paramref name="Netns"/>, an identity of the caller's choosing, compared as text): that is a conflict.
    /// </summary>
    /// <param name="PodUid">
    /// The pod's uid (K8S_POD_UID), recorded with the address: the Pod watch releases it once that pod is gone.
    /// </param>
    public sealed record Allocate(NodeName Node, AllocationKey Key, string? Pod = null, string? Netns = null, string? PodUid = null)
        : IRomanaMessage;
    /// <summary>
    /// The address just given to <paramref name="Key"/> is in use on the node after all (<paramref name="Reason"/> says by
    /// what): the node keeps it under <see cref="KeyOf"/>(address), where no allocation finds it, and the key holds nothing;
    /// allocating again gives it another address. Replies Succeeded.
    /// </summary>
    public sealed record SetAside(NodeName Node, AllocationKey Key, Ipv4 Address, string Reason) : IRomanaMessage
    {
        public const string KeyPrefix = "in-use:";

        /// <summary>"in-use:ADDRESS": ':' is in no CNI container id or interface name, so no attachment's key is ever one.</summary>
        public static AllocationKey KeyOf(Ipv4 address) => new($"{KeyPrefix}{address}");

        public static bool IsSetAsideKey(AllocationKey key) => key.Value.StartsWith(KeyPrefix, StringComparison.Ordinal);
    }
    /// <summary>Release by key or by address (exactly one of them).</summary>
    public sealed record Release(AllocationKey? Key, string? Address, string Reason = "released") : IRomanaMessage;
    /// <summary>Any CIDR strictly inside the pod CIDR: inside a subnet, across subnets or zones, or in padding slots.</summary>
    public sealed record Reserve(string Cidr) : IRomanaMessage;
    /// <summary>Lifts exactly the reservation <paramref name="Cidr"/>, wherever it lies.</summary>
    public sealed record Unreserve(string Cidr) : IRomanaMessage;

    // Queries
    public sealed record GetBlocks(NodeName Node) : IRomanaMessage;
    public sealed record GetPrefixes : IRomanaMessage;
    /// <summary>The address a key holds: AddressAssigned, or Failed not-found.</summary>
    public sealed record GetAddress(AllocationKey Key) : IRomanaMessage;
    /// <summary>Every address a node holds: <see cref="AllocationsOf"/>.</summary>
    public sealed record GetAllocations(NodeName Node) : IRomanaMessage;
    /// <summary>One subnet's members and block owners (what a host agent routes by): a <see cref="SubnetSnapshot"/>.</summary>
    public sealed record GetSubnet(SubnetId Subnet) : IRomanaMessage;
    /// <summary>Replies once the front door has recovered its zones, subnets and nodes: Succeeded or Failed.</summary>
    public sealed record AwaitReady : IRomanaMessage;
    /// <summary>Every subnet's and node's state, for tests and invariants.</summary>
    public sealed record GetIpamState : IRomanaMessage;

    // Replies
    public abstract record IpamReply : IRomanaMessage;
    public sealed record Succeeded : IpamReply
    {
        public static readonly Succeeded Instance = new();
    }
    public sealed record Failed(IpamError Error) : IpamReply;
    /// <summary>
    /// <see cref="RemoveNode"/>'s answer, once the node's journal holds the release of every address it had and the return
    /// of its blocks, and the subnet's that it left: <paramref name="Released"/> are the keys of the addresses released.
    /// </summary>
    public sealed record NodeRemoved(NodeName Node, SubnetId Subnet, ImmutableArray<AllocationKey> Released) : IpamReply;
    /// <param name="Netns">The identity of the namespace the address was handed to, when the allocating caller gave one.</param>
    /// <param name="Fresh">True when this answer handed the address out (an Allocate that was not already held).</param>
    public sealed record AddressAssigned(NodeName Node, AllocationKey Key, Ipv4 Address, string? Netns = null, bool Fresh = false)
        : IpamReply;
    public sealed record BlocksOf(NodeName Node, ImmutableArray<Ipv4Cidr> Blocks) : IpamReply;
    public sealed record SubnetView(SubnetSnapshot Subnet) : IpamReply;
    public sealed record AllocationsOf(NodeName Node, ImmutableArray<Allocation> Allocations) : IpamReply;
    public sealed record PrefixList(ImmutableArray<(string Name, Ipv4Cidr Prefix)> Prefixes) : IpamReply;
    public sealed record IpamStateView(ImmutableArray<SubnetSnapshot> Subnets, ImmutableArray<NodeSnapshot> Nodes) : IpamReply
    {
        /// <summary>The reservation ledger's list: every reservation of the pod CIDR, padding slots included.</summary>
        public ImmutableArray<Ipv4Cidr> Reservations { get; init; } = [];
    }
}
