using System.Collections.Immutable;
using Akka.Actor;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Persistence;

namespace Romana.Actors.Ipam;

public static class SubnetMessages
{
    // Commands from the IPAM front door
    /// <summary>
    /// A node joins (persisted once) or announces itself again. With <paramref name="Holder"/> (a cluster's daemon: the
    /// IPAM front door that runs the node's actor) it also claims the node: the subnet speaks to the node through the holder,
    /// and refuses a second live holder of the same node. Without it, the subnet runs the node's actor itself (one process).
    /// </summary>
    /// <remarks>In a cluster, an AddNode without a holder (the Kubernetes Node watch, from any daemon) records the membership
    /// only; the node's daemon claims it.</remarks>
    public sealed record AddNode(NodeName Node, NodeEndpoint Endpoint, IActorRef? Holder = null, string Reason = "node added")
        : IRomanaMessage;
    public sealed record RemoveNode(NodeName Node, string Reason) : IRomanaMessage;

    // Commands from the reservation ledger (ReservationLedger), which decides every reservation of the pod CIDR
    /// <summary>
    /// Records <paramref name="Range"/> (it may reach beyond this subnet's prefix): the owners of the blocks it touches fence
    /// it first, and a held address refuses it. Replies Succeeded once RangeReserved is stored. The ledger's second phase.
    /// </summary>
    public sealed record Reserve(Ipv4Cidr Range, string Reason = "reserved by operator") : IRomanaMessage;
    /// <summary>Lifts a recorded reservation (exact match, or not-found), then its fences.</summary>
    public sealed record Unreserve(Ipv4Cidr Range, string Reason = "unreserved by operator") : IRomanaMessage;
    /// <summary>
    /// The ledger's first phase: the owners fence <paramref name="Range"/> as for <see cref="Reserve"/>, but nothing is
    /// recorded; the subnet keeps the range from its grants in memory until it is recorded, released, or held too long.
    /// Replies <see cref="RangeHeld"/>, or Failed (conflict: an address in it is held).
    /// </summary>
    public sealed record HoldRange(Ipv4Cidr Range) : IRomanaMessage;
    /// <summary>Drops a hold that will not be recorded and lifts its fences; replies Succeeded once the owners did so.</summary>
    public sealed record ReleaseHold(Ipv4Cidr Range, string Reason) : IRomanaMessage;
    /// <summary>Replies <see cref="ReservationsRecorded"/>: what the subnet's journal holds, without holds.</summary>
    public sealed record GetRecordedReservations : IRomanaMessage;

    // Commands from a node of the subnet
    /// <summary>The node has no free address left; <paramref name="Held"/> is what it believes it owns.</summary>
    public sealed record RequestBlock(NodeName Node, ImmutableArray<Ipv4Cidr> Held) : IRomanaMessage;
    /// <summary>Sent by a node after recovery, to drop fences whose reservation is gone.</summary>
    public sealed record GetReservations(NodeName Node) : IRomanaMessage;

    // Queries
    public sealed record GetMembers : IRomanaMessage;
    /// <summary>Replies the <see cref="SubnetSnapshot"/> of the subnet's state.</summary>
    public sealed record GetSubnetState : IRomanaMessage;

    // Replies
    public sealed record NodeAdded(NodeName Node, IActorRef NodeActor) : IRomanaMessage;
    public sealed record NodeRemoved(NodeName Node, ImmutableArray<AllocationKey> Released) : IRomanaMessage;
    public sealed record BlockGranted(Ipv4Cidr Block, ImmutableArray<Ipv4Cidr> Reserved) : IRomanaMessage;
    public sealed record NoBlockAvailable(string Why) : IRomanaMessage;
    /// <summary>The ranges a node's fences must match: recorded reservations and holds.</summary>
    public sealed record ReservationsNow(ImmutableArray<Ipv4Cidr> Reservations) : IRomanaMessage;
    public sealed record RangeHeld(SubnetId Subnet, Ipv4Cidr Range) : IRomanaMessage;
    public sealed record ReservationsRecorded(SubnetId Subnet, ImmutableArray<Ipv4Cidr> Reservations) : IRomanaMessage;
    public sealed record Member(NodeName Node, NodeEndpoint Endpoint, IActorRef NodeActor) : IRomanaMessage;
    public sealed record Members(SubnetId Subnet, ImmutableArray<Member> Nodes) : IRomanaMessage;

    // Events
    public sealed record NodeJoined(SubnetId Subnet, NodeName Node, Ipv4 Ip, DateTimeOffset At, string Reason,
        string? Eni = null, string? InstanceId = null) : IIpamEvent
    {
        public NodeEndpoint Endpoint => new(Ip, Eni, InstanceId);
    }
    public sealed record NodeLeft(SubnetId Subnet, NodeName Node, DateTimeOffset At, string Reason) : IIpamEvent;
    public sealed record BlockAssigned(SubnetId Subnet, Ipv4Cidr Block, NodeName Node, DateTimeOffset At, string Reason) : IIpamEvent;
    public sealed record BlockReclaimed(SubnetId Subnet, Ipv4Cidr Block, NodeName From, DateTimeOffset At, string Reason) : IIpamEvent;
    /// <summary>
    /// A reservation recorded by this subnet; <paramref name="Range"/> may reach beyond its prefix (one that spans subnets).
    /// </summary>
    public sealed record RangeReserved(SubnetId Subnet, Ipv4Cidr Range, ImmutableArray<Ipv4Cidr> Absorbed, DateTimeOffset At, string Reason)
        : IIpamEvent;
    public sealed record RangeUnreserved(SubnetId Subnet, Ipv4Cidr Range, DateTimeOffset At, string Reason) : IIpamEvent;
}

/// <summary>
/// Where a node is in the VPC:
/// its IP in the subnet and, when known, its network interface and instance (VPC routes target the ENI).
/// </summary>
public sealed record NodeEndpoint(Ipv4 Ip, string? Eni = null, string? InstanceId = null)
{
    /// <summary>The same node announced again: what it says agrees with what is known (an absent ENI or instance says nothing).</summary>
    public bool AgreesWith(NodeEndpoint other) =>
        Ip == other.Ip && (Eni is null || other.Eni is null || Eni == other.Eni)
            && (InstanceId is null || other.InstanceId is null || InstanceId == other.InstanceId);

    /// <summary>What an agreeing announcement adds: an ENI or instance this endpoint does not know yet; null when nothing.</summary>
    public NodeEndpoint? CompletedBy(NodeEndpoint other) =>
        (Eni is null && other.Eni is not null) || (InstanceId is null && other.InstanceId is not null)
            ? this with { Eni = Eni ?? other.Eni, InstanceId = InstanceId ?? other.InstanceId }
            : null;
}
