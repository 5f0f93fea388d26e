using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.ReservationMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>The reservation ledger's decide functions, without actors (topology: <see cref="Topologies.Padded"/>).</summary>
public class ReservationLedgerStateTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;
    private static readonly ClusterTopology Topology = Topologies.Padded();

    private static Ipv4Cidr C(string text) => Ipv4Cidr.Parse(text);

    private static ReservationLedgerState With(params string[] ranges) => ranges.Aggregate(ReservationLedgerState.Empty,
        (state, r) => state.Apply(state.Made(C(r), ReservationLedgerState.Touched(Topology, C(r)), Now, "test")));

    private static IReadOnlyDictionary<SubnetId, ImmutableArray<Ipv4Cidr>> Recorded(params (string Subnet, string[] Ranges)[] found) =>
        Topology.Subnets.ToDictionary(s => s.Id,
            s => found.Where(f => f.Subnet == s.Id.Value).SelectMany(f => f.Ranges).Select(C).ToImmutableArray());

    [Theory]
    [InlineData("10.100.100.0/24", "cidr: 10.100.100.0/24 is not inside the pod CIDR 10.0.0.0/24")]
    [InlineData("10.0.0.0/23", "cidr: 10.0.0.0/23 is not inside the pod CIDR 10.0.0.0/24")]
    [InlineData("10.0.0.0/24", "cidr: 10.0.0.0/24 is the whole pod CIDR; a reservation lies strictly inside it")]
    public void Outside_or_the_whole_pod_cidr_is_invalid_naming_the_field_and_the_value(string cidr, string message)
    {
        var refuse = Assert.IsType<ReservationDecision.Refuse>(ReservationLedgerState.Empty.DecideReserve(Topology, C(cidr)));
        Assert.Equal((IpamErrorCode.Invalid, message), (refuse.Error.Code, refuse.Error.Message));
    }

    [Theory]
    [InlineData("10.0.0.8/29", "s1")] // inside one subnet
    [InlineData("10.0.0.0/27", "s1,s2")] // across two subnets of a zone
    [InlineData("10.0.0.0/26", "s1,s2,s3")] // a whole zone and its padding slot
    [InlineData("10.0.0.0/25", "s1,s2,s3,s4")] // across zones
    [InlineData("10.0.0.32/27", "s3")] // a subnet and the zone's padding slot
    [InlineData("10.0.0.48/28", "")] // the zone's padding slot
    [InlineData("10.0.0.192/26", "")] // the pod CIDR's padding slot
    [InlineData("10.0.0.200/30", "")]
    public void Any_range_strictly_inside_the_pod_cidr_is_held_in_every_subnet_it_touches(string cidr, string subnets)
    {
        var hold = Assert.IsType<ReservationDecision.Hold>(ReservationLedgerState.Empty.DecideReserve(Topology, C(cidr)));
        Assert.Equal(subnets, string.Join(",", hold.Subnets));
    }

    [Fact]
    public void A_range_inside_a_reservation_is_already_reserved_and_a_larger_one_absorbs_the_smaller()
    {
        var state = With("10.0.0.0/27", "10.0.0.200/30");
        Assert.Equal(C("10.0.0.0/27"),
            Assert.IsType<ReservationDecision.AlreadyReserved>(state.DecideReserve(Topology, C("10.0.0.16/29"))).By);
        var larger = state.Made(C("10.0.0.0/26"), ReservationLedgerState.Touched(Topology, C("10.0.0.0/26")), Now, "test");
        Assert.Equal([C("10.0.0.0/27")], larger.Absorbed.AsEnumerable());
        Assert.Equal(["10.0.0.0/26", "10.0.0.200/30"], state.Apply(larger).Reservations.Select(r => r.ToString()));
    }

    [Fact]
    public void Only_an_exact_match_is_unreserved_and_a_miss_says_why()
    {
        var state = With("10.0.0.0/27", "10.0.0.192/26");
        var (subnets, error) = state.DecideUnreserve(Topology, C("10.0.0.0/27"));
        Assert.Null(error);
        Assert.Equal("s1,s2", string.Join(",", subnets));
        Assert.Empty(state.DecideUnreserve(Topology, C("10.0.0.192/26")).Subnets);
        var inside = state.DecideUnreserve(Topology, C("10.0.0.0/28")).Error!;
        Assert.Equal((IpamErrorCode.NotFound,
                "cidr: no reservation is exactly 10.0.0.0/28 (10.0.0.0/28 lies inside reservation 10.0.0.0/27)"),
            (inside.Code, inside.Message));
        Assert.Equal("cidr: no reservation is exactly 10.0.0.0/24", state.DecideUnreserve(Topology, C("10.0.0.0/24")).Error!.Message);
        Assert.Empty(state.Apply(new ReservationLifted(C("10.0.0.0/27"), [], Now, "test"))
            .Apply(new ReservationLifted(C("10.0.0.192/26"), [], Now, "test")).Reservations);
    }

    [Fact]
    public void A_ledger_in_line_with_its_subnets_has_nothing_to_reconcile()
    {
        var state = With("10.0.0.0/27", "10.0.0.192/26", "10.0.0.64/29");
        var plan = state.DecideReconcile(Topology,
            Recorded(("s1", ["10.0.0.0/27"]), ("s2", ["10.0.0.0/27"]), ("s4", ["10.0.0.64/29"])), fresh: false, Now);
        Assert.True(plan.Nothing);
    }

    [Fact]
    public void A_record_cut_short_is_completed_and_what_the_ledger_does_not_hold_is_lifted()
    {
        // 10.0.0.0/27 was decided, s1 recorded it, s2 did not; s4 records 10.0.0.64/29, which the ledger does not hold.
        var state = With("10.0.0.0/27");
        var plan = state.DecideReconcile(Topology, Recorded(("s1", ["10.0.0.0/27"]), ("s4", ["10.0.0.64/29"])), fresh: false, Now);
        Assert.Empty(plan.Adopt);
        Assert.Equal([(C("10.0.0.0/27"), new SubnetId("s2"))], plan.Record.AsEnumerable());
        Assert.Equal([(C("10.0.0.64/29"), new SubnetId("s4"))], plan.Lift.AsEnumerable());
    }

    [Fact]
    public void A_subnet_holding_a_smaller_range_inside_a_decided_reservation_records_the_larger_one()
    {
        var state = With("10.0.0.0/27");
        var plan = state.DecideReconcile(Topology, Recorded(("s1", ["10.0.0.0/27"]), ("s2", ["10.0.0.16/30"])), fresh: false, Now);
        Assert.Equal([(C("10.0.0.0/27"), new SubnetId("s2"))], plan.Record.AsEnumerable());
        Assert.Empty(plan.Lift);
    }

    [Fact]
    public void A_subnet_holding_a_larger_range_than_the_ledger_lifts_it_and_records_the_ledgers()
    {
        var state = With("10.0.0.8/29");
        var plan = state.DecideReconcile(Topology, Recorded(("s1", ["10.0.0.0/28"])), fresh: false, Now);
        Assert.Equal([(C("10.0.0.0/28"), new SubnetId("s1"))], plan.Lift.AsEnumerable());
        Assert.Equal([(C("10.0.0.8/29"), new SubnetId("s1"))], plan.Record.AsEnumerable());
    }

    [Fact]
    public void A_fresh_ledger_adopts_what_the_subnets_recorded_before_it_once_each()
    {
        var recorded = Recorded(("s1", ["10.0.0.0/27"]), ("s2", ["10.0.0.0/27", "10.0.0.16/30"]), ("s4", ["10.0.0.64/30", "10.0.0.72/29"]));
        var plan = ReservationLedgerState.Empty.DecideReconcile(Topology, recorded, fresh: true, Now);
        Assert.Equal(["10.0.0.0/27", "10.0.0.72/29", "10.0.0.64/30"], plan.Adopt.Select(a => a.Range.ToString()));
        Assert.Equal("adopted: recorded by subnet s1, s2 before reservations had a ledger", plan.Adopt[0].Reason);
        Assert.Equal("s1,s2", string.Join(",", plan.Adopt[0].Subnets));
        Assert.True(plan.Record.IsEmpty && plan.Lift.IsEmpty, $"{plan}");
        // The same subnets before a ledger that has events: what the ledger does not hold is lifted instead.
        Assert.Equal(5, ReservationLedgerState.Empty.DecideReconcile(Topology, recorded, fresh: false, Now).Lift.Length);
    }
}
