using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.ReservationMessages;

namespace Romana.Actors.Ipam;

/// <summary>What the ledger must do with a reservation asked for.</summary>
public abstract record ReservationDecision
{
    public sealed record Refuse(IpamError Error) : ReservationDecision;
    /// <summary>A reservation already covers the range: nothing to do.</summary>
    public sealed record AlreadyReserved(Ipv4Cidr By) : ReservationDecision;
    /// <summary>Every subnet in <paramref name="Subnets"/> holds the range, then the ledger records it (none: at once).</summary>
    public sealed record Hold(Ipv4Cidr Range, ImmutableArray<SubnetId> Subnets) : ReservationDecision;
}

/// <summary>
/// What a recovering ledger must do to bring the subnets in line with it: adopt what subnets recorded before there was a
/// ledger, record in a subnet a reservation the ledger holds and the subnet does not (a record phase or an unreserve cut
/// short), and lift from a subnet a reservation the ledger does not hold (its journal is the truth). Lifts go first.
/// </summary>
public sealed record Reconciliation(ImmutableArray<ReservationMade> Adopt, ImmutableArray<(Ipv4Cidr Range, SubnetId Subnet)> Record,
    ImmutableArray<(Ipv4Cidr Range, SubnetId Subnet)> Lift)
{
    public bool Nothing => Adopt.IsEmpty && Record.IsEmpty && Lift.IsEmpty;
}

/// <summary>
/// Every reservation of the pod CIDR, as an immutable value: inside one subnet, across subnets or zones, or in padding
/// slots. A larger reservation absorbs the smaller ones it contains, so none lies inside another. Decide functions are
/// pure; <see cref="Apply"/> folds an event.
/// </summary>
public sealed record ReservationLedgerState(ImmutableSortedSet<Ipv4Cidr> Reservations)
{
    public static readonly ReservationLedgerState Empty = new(ImmutableSortedSet<Ipv4Cidr>.Empty);

    /// <summary>The subnets whose pod prefix a range touches, in configured order.</summary>
    public static ImmutableArray<SubnetId> Touched(ClusterTopology topology, Ipv4Cidr range) =>
        [.. topology.SubnetsOverlapping(range).Select(s => s.Id)];

    // ---- decisions -------------------------------------------------------------------------------------------

    /// <summary>Any range strictly inside the pod CIDR; one already covered is a no-op.</summary>
    public ReservationDecision DecideReserve(ClusterTopology topology, Ipv4Cidr range)
    {
        var pod = topology.PodCidr;
        if (!pod.Contains(range))
            return new ReservationDecision.Refuse(IpamError.Invalid($"cidr: {range} is not inside the pod CIDR {pod}"));
        if (range == pod)
            return new ReservationDecision.Refuse(IpamError.Invalid(
                $"cidr: {range} is the whole pod CIDR; a reservation lies strictly inside it"));
        return Covering(range) is { } by
            ? new ReservationDecision.AlreadyReserved(by)
            : new ReservationDecision.Hold(range, Touched(topology, range));
    }

    public ReservationMade Made(Ipv4Cidr range, ImmutableArray<SubnetId> subnets, DateTimeOffset now, string reason) =>
        new(range, [.. Reservations.Where(range.Contains)], subnets, now, reason);

    /// <summary>Only an exact match is lifted; the subnets it touches lift it too.</summary>
    public (ImmutableArray<SubnetId> Subnets, IpamError? Error) DecideUnreserve(ClusterTopology topology, Ipv4Cidr range)
    {
        if (Reservations.Contains(range)) return (Touched(topology, range), null);
        var inside = Covering(range) is { } by ? $" ({range} lies inside reservation {by})" : "";
        return ([], IpamError.NotFound($"cidr: no reservation is exactly {range}{inside}"));
    }

    /// <param name="recorded">What each subnet's journal holds (every subnet of the topology).</param>
    /// <param name="fresh">The ledger's journal is empty: whatever the subnets recorded came before the ledger.</param>
    public Reconciliation DecideReconcile(ClusterTopology topology, IReadOnlyDictionary<SubnetId, ImmutableArray<Ipv4Cidr>> recorded,
        bool fresh, DateTimeOffset now)
    {
        var adopt = new List<ReservationMade>();
        var state = this;
        if (fresh)
            foreach (var found in recorded.SelectMany(s => s.Value.Select(r => (Range: r, Subnet: s.Key)))
                         .GroupBy(x => x.Range).OrderBy(g => g.Key.PrefixLength).ThenBy(g => g.Key))
            {
                if (state.Covering(found.Key) is not null) continue;
                var subnets = string.Join(", ", found.Select(x => x.Subnet).Distinct());
                var made = state.Made(found.Key, Touched(topology, found.Key), now,
                    $"adopted: recorded by subnet {subnets} before reservations had a ledger");
                adopt.Add(made);
                state = state.Apply(made);
            }
        var lift = recorded.SelectMany(s => s.Value.Where(r => state.Covering(r) is null).Select(r => (r, s.Key))).ToImmutableArray();
        var record = new List<(Ipv4Cidr, SubnetId)>();
        foreach (var range in state.Reservations)
            foreach (var subnet in Touched(topology, range))
                if (recorded.TryGetValue(subnet, out var held) && !held.Any(r => r.Contains(range) && state.Covering(r) is not null))
                    record.Add((range, subnet));
        return new([.. adopt], [.. record], lift);
    }

    // ---- events ----------------------------------------------------------------------------------------------

    public ReservationLedgerState Apply(object e) => e switch
    {
        ReservationMade made => this with { Reservations = Reservations.Except(made.Absorbed).Add(made.Range) },
        ReservationLifted lifted => this with { Reservations = Reservations.Remove(lifted.Range) },
        _ => throw new ArgumentException($"not a reservation ledger event: {e.GetType().Name}", nameof(e)),
    };

    private Ipv4Cidr? Covering(Ipv4Cidr range) => Reservations.Where(r => r.Contains(range)).Select(r => (Ipv4Cidr?)r).FirstOrDefault();
}
