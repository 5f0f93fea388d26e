using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Persistence;

namespace Romana.Actors.Ipam;

/// <summary>The reservation ledger's language (<see cref="ReservationLedger"/>): one ledger for the whole pod CIDR.</summary>
public static class ReservationMessages
{
    // Commands from the IPAM front doors; replies Succeeded or Failed
    public sealed record Reserve(Ipv4Cidr Range) : IRomanaMessage;
    public sealed record Unreserve(Ipv4Cidr Range) : IRomanaMessage;

    // Queries
    /// <summary>Replies <see cref="Ledger"/> at once, whatever the ledger is doing.</summary>
    public sealed record GetLedger : IRomanaMessage;
    /// <summary>Replies <see cref="Ledger"/> once the ledger has recovered and brought every subnet in line with it.</summary>
    public sealed record AwaitLedger : IRomanaMessage;

    // Replies
    /// <summary>Every reservation of the pod CIDR, ascending: inside subnets, across them, in padding slots.</summary>
    public sealed record Ledger(ImmutableArray<Ipv4Cidr> Reservations) : IRomanaMessage;

    // Events
    /// <summary>
    /// A reservation is decided: every subnet in <paramref name="Subnets"/> held it (none of its addresses was allocated),
    /// and each records it next. <paramref name="Absorbed"/>: the smaller reservations it replaces. No subnet: it lies in
    /// padding slots, where nothing is ever handed out.
    /// </summary>
    public sealed record ReservationMade(Ipv4Cidr Range, ImmutableArray<Ipv4Cidr> Absorbed, ImmutableArray<SubnetId> Subnets,
        DateTimeOffset At, string Reason) : IIpamEvent;
    /// <summary>A reservation is gone: unreserved, or refused as a whole after it was decided (the reason says which).</summary>
    public sealed record ReservationLifted(Ipv4Cidr Range, ImmutableArray<SubnetId> Subnets, DateTimeOffset At, string Reason)
        : IIpamEvent;
}
