using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Persistence;

namespace Romana.Actors.Ipam;

public static class NodeMessages
{
    // Commands from the IPAM front door
    /// <summary><paramref name="Netns"/>: the identity of the pod's network namespace, recorded with the address.</summary>
    public sealed record AllocateAddress(NodeName Node, AllocationKey Key, string? Pod = null, string? Netns = null, string? PodUid = null)
        : IRomanaMessage;
    /// <summary>
    /// The address <paramref name="Key"/> was just given is still in use on the node: it moves to its set-aside key
    /// (<see cref="IpamMessages.SetAside.KeyOf"/>), and <paramref name="Key"/> holds nothing. Replies Succeeded.
    /// </summary>
    public sealed record SetAsideAddress(NodeName Node, AllocationKey Key, Ipv4 Address, string Reason) : IRomanaMessage;
    public sealed record ReleaseAddress(NodeName Node, AllocationKey Key, string Reason) : IRomanaMessage;
    /// <summary>Releases every address and returns every block; replies <see cref="NodeRetired"/>.</summary>
    public sealed record RetireNode(NodeName Node, string Reason) : IRomanaMessage;

    // The subnet's side of the reclaim and reservation protocols (handled in every behaviour of the node)
    public sealed record SurrenderBlock(Ipv4Cidr Block, NodeName ForNode) : IRomanaMessage;
    public sealed record FenceRange(Ipv4Cidr Range) : IRomanaMessage;
    /// <summary>Lifts a fence; <paramref name="Restore"/> are smaller reservations the fence had absorbed and that still hold.</summary>
    public sealed record UnfenceRange(Ipv4Cidr Range, ImmutableArray<Ipv4Cidr> Restore) : IRomanaMessage;

    // Queries
    /// <summary>Replies the <see cref="NodeSnapshot"/> of what the journal holds, after the writes under way.</summary>
    public sealed record GetNodeState(NodeName Node) : IRomanaMessage;

    // Replies
    public sealed record NodeRetired(NodeName Node, ImmutableArray<AllocationKey> Released) : IRomanaMessage;
    public sealed record BlockSurrendered(NodeName Node, Ipv4Cidr Block) : IRomanaMessage;
    public sealed record BlockInUse(NodeName Node, Ipv4Cidr Block, int Addresses) : IRomanaMessage;
    public sealed record RangeFenceResult(NodeName Node, Ipv4Cidr Range, IpamError? Conflict) : IRomanaMessage;
    public sealed record RangeUnfencedAck(NodeName Node, Ipv4Cidr Range) : IRomanaMessage;

    // Events
    public abstract record NodeEvent(NodeName Node, DateTimeOffset At, string Reason) : IIpamEvent;
    public sealed record BlockAdopted(NodeName Node, Ipv4Cidr Block, ImmutableArray<Ipv4Cidr> Reserved, DateTimeOffset At, string Reason)
        : NodeEvent(Node, At, Reason);
    /// <summary>
    /// One or more addresses handed out together: allocations decided while a journal write is under way are stored as
    /// one event, because the tag table of Akka.Persistence.Sql costs one round trip per row.
    /// </summary>
    public sealed record AddressesAllocated(NodeName Node, ImmutableArray<AllocatedAddress> Addresses, DateTimeOffset At, string Reason)
        : NodeEvent(Node, At, Reason);
    /// <summary>One or more addresses given back together, each with its own reason; batched like allocations.</summary>
    public sealed record AddressesReleased(NodeName Node, ImmutableArray<ReleasedAddress> Addresses, DateTimeOffset At, string Reason)
        : NodeEvent(Node, At, Reason);
    public sealed record BlockReturned(NodeName Node, Ipv4Cidr Block, DateTimeOffset At, string Reason) : NodeEvent(Node, At, Reason);
    public sealed record RangeFenced(NodeName Node, Ipv4Cidr Range, DateTimeOffset At, string Reason) : NodeEvent(Node, At, Reason);
    public sealed record RangeUnfenced(NodeName Node, Ipv4Cidr Range, DateTimeOffset At, string Reason) : NodeEvent(Node, At, Reason);
}

/// <summary>
/// One address of an <see cref="NodeMessages.AddressesAllocated"/> event: the key, the pod when the caller said which, and
/// the identity of the pod's network namespace ("MAJOR:MINOR:INODE" of its file) when the caller gave it. Netns is an
/// optional field added in issue 11: events written before it read as null. PodUid (K8S_POD_UID from CNI_ARGS) is an optional
/// field added in issue 14 the same way: the JSON shape only gains a member that is left out when null, so every journal
/// before it reads unchanged (null) and no new version of the event is needed.
/// </summary>
public sealed record AllocatedAddress(AllocationKey Key, Ipv4 Address, string? Pod, string? Netns = null, string? PodUid = null);

/// <summary>One address of an <see cref="NodeMessages.AddressesReleased"/> event, and why it was released.</summary>
public sealed record ReleasedAddress(AllocationKey Key, Ipv4 Address, string Reason);

/// <summary>
/// An address held by a key on a node, since a time, for a pod when the caller said which, in the network namespace whose
/// identity the caller gave (null when it gave none, and for every allocation of a journal older than issue 11).
/// </summary>
public sealed record Allocation(AllocationKey Key, Ipv4 Address, string? Pod, DateTimeOffset Since, string? Netns = null,
    string? PodUid = null);
