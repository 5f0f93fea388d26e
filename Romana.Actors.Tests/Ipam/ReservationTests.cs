using System.Collections.Concurrent;
using System.Diagnostics;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Support;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>
/// Reservations through the IPAM front door, on the production composition and a real SQLite journal: across subnets and
/// zones, in padding slots, all or nothing. Topology <see cref="Topologies.Padded"/>: s1 10.0.0.0/28, s2 .16/28, s3 .32/28,
/// the zone's padding .48/28, s4 .64/26, s5 .128/26, the pod CIDR's padding .192/26; blocks /29.
/// </summary>
public class ReservationTests
{
    private static async Task<StartedIpam> StartAsync(TempJournal journal, params (string Node, string Subnet)[] nodes)
    {
        var ipam = await journal.StartAsync(Topologies.Padded());
        for (var i = 0; i < nodes.Length; i++)
            Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new(nodes[i].Node), new(nodes[i].Subnet), $"10.1.0.{i + 1}")));
        return ipam;
    }

    private static async Task<IpamReply> AllocateAsync(StartedIpam ipam, string node, string key) =>
        await ipam.AskAsync(new Allocate(new NodeName(node), new AllocationKey(key)));

    private static async Task<string> AddressAsync(StartedIpam ipam, string node, string key) =>
        Assert.IsType<AddressAssigned>(await AllocateAsync(ipam, node, key)).Address.ToString();

    private static async Task<IpamError> FailsAsync(StartedIpam ipam, object command) =>
        Assert.IsType<Failed>(await ipam.AskAsync(command)).Error;

    private static async Task<IpamStateView> StateAsync(StartedIpam ipam) =>
        Assert.IsType<IpamStateView>(await ipam.AskAsync(new GetIpamState()));

    private static string Recorded(IpamStateView state, string subnet) =>
        string.Join(",", state.Subnets.Single(s => s.Subnet.Value == subnet).Reservations);

    private static string Fences(IpamStateView state, string node) =>
        string.Join(",", state.Nodes.Single(n => n.Node.Value == node).Fences);

    [Fact]
    public async Task A_reservation_spanning_two_subnets_is_recorded_by_both_and_neither_hands_out_its_addresses()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal, ("a", "s1"), ("b", "s2"), ("d", "s4"));
        Assert.Equal("10.0.0.0", await AddressAsync(ipam, "a", "pa"));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(new AllocationKey("pa"), null))); // a keeps its empty block

        Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.0/27")));

        // A spanning range covers each subnet it touches whole: neither s1's node (which fenced its block) nor s2's gets an
        // address, from its blocks or a new one; s4 is untouched.
        Assert.Equal(IpamErrorCode.Exhausted, (await FailsAsync(ipam, new Allocate(new("a"), new("pa2")))).Code);
        Assert.Equal(IpamErrorCode.Exhausted, (await FailsAsync(ipam, new Allocate(new("b"), new("pb")))).Code);
        Assert.Equal("10.0.0.64", await AddressAsync(ipam, "d", "pd"));
        var state = await StateAsync(ipam);
        IpamInvariants.Check(state);
        Assert.Equal(["10.0.0.0/27"], state.Reservations.Select(r => r.ToString()));
        Assert.Equal(("10.0.0.0/27", "10.0.0.0/27", "", ""), (Recorded(state, "s1"), Recorded(state, "s2"), Recorded(state, "s3"),
            Recorded(state, "s4")));
        Assert.Equal("10.0.0.0/27", Fences(state, "a"));
        Assert.Empty(state.Nodes.Single(n => n.Node.Value == "b").Blocks);
        Assert.Equal(1, journal.CountEventsWhere("manifest = 'ReservationMade' AND payload LIKE '%across subnets s1, s2%'"));
        Assert.Equal(2, journal.CountEventsWhere("manifest = 'RangeReserved' AND payload LIKE '%across subnets s1, s2%'"));
    }

    [Fact]
    public async Task One_allocated_address_in_the_second_subnet_refuses_the_whole_reservation_and_neither_subnet_records_any_of_it()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal, ("a", "s1"), ("b", "s2"));
        Assert.Equal("10.0.0.0", await AddressAsync(ipam, "a", "pa"));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(new AllocationKey("pa"), null))); // a must fence its block
        Assert.Equal("10.0.0.16", await AddressAsync(ipam, "b", "pb"));

        var refused = await FailsAsync(ipam, new Reserve("10.0.0.0/27"));
        Assert.Equal(IpamErrorCode.Conflict, refused.Code);
        Assert.Equal("cidr: 10.0.0.0/27 refused as a whole (subnets s1, s2), nothing reserved: subnet s2: " +
            "reservation 10.0.0.0/27 would cover 10.0.0.16, held by key 'pb' on node b", refused.Message);

        Assert.Equal(0, journal.CountEvents("ReservationMade"));
        Assert.Equal(0, journal.CountEvents("RangeReserved"));
        // The refusal is answered once s1's owner lifted its fence: nothing of the range is withheld after it.
        var state = await StateAsync(ipam);
        Assert.Equal("", Fences(state, "a"));
        Assert.Empty(state.Reservations);
        Assert.Equal(("", ""), (Recorded(state, "s1"), Recorded(state, "s2")));
        // s1 held it and let it go: a hands out its block's addresses again, and s2 goes on.
        Assert.Equal("10.0.0.0", await AddressAsync(ipam, "a", "pa2"));
        Assert.Equal("10.0.0.17", await AddressAsync(ipam, "b", "pb2"));
    }

    [Fact]
    public async Task Reservations_in_padding_slots_are_accepted_recorded_and_shown_in_the_state()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal, ("c", "s3"));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.48/28"))); // the zone's padding slot
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.192/26"))); // the pod CIDR's padding slot
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.32/27"))); // s3 and the zone's padding: absorbs .48/28

        var state = await StateAsync(ipam);
        Assert.Equal(["10.0.0.32/27", "10.0.0.192/26"], state.Reservations.Select(r => r.ToString()));
        Assert.Equal("10.0.0.32/27", Recorded(state, "s3"));
        Assert.All(new[] { "s1", "s2", "s4", "s5" }, s => Assert.Equal("", Recorded(state, s)));
        Assert.Equal(3, journal.CountEvents("ReservationMade"));
        Assert.Equal(1, journal.CountEventsWhere("manifest = 'ReservationMade' AND payload LIKE '%padding slots that no subnet uses%' " +
            "AND payload LIKE '%10.0.0.192/26%'"));
        Assert.Equal(1, journal.CountEvents("RangeReserved"));
        Assert.Equal(IpamErrorCode.Exhausted, (await FailsAsync(ipam, new Allocate(new("c"), new("pc")))).Code);

        Assert.Equal("cidr: no reservation is exactly 10.0.0.48/28 (10.0.0.48/28 lies inside reservation 10.0.0.32/27)",
            (await FailsAsync(ipam, new Unreserve("10.0.0.48/28"))).Message);
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Unreserve("10.0.0.192/26")));
        Assert.Equal(["10.0.0.32/27"], (await StateAsync(ipam)).Reservations.Select(r => r.ToString()));
    }

    [Theory]
    [InlineData("10.0.0.0/24", "cidr: 10.0.0.0/24 is the whole pod CIDR; a reservation lies strictly inside it")]
    [InlineData("10.1.0.0/24", "cidr: 10.1.0.0/24 is not inside the pod CIDR 10.0.0.0/24")]
    [InlineData("10.0.0.0/16", "cidr: 10.0.0.0/16 is not inside the pod CIDR 10.0.0.0/24")]
    [InlineData("10.0.0.0/33", "cidr: '10.0.0.0/33' is not an IPv4 CIDR")]
    public async Task The_whole_pod_cidr_or_a_range_outside_it_is_invalid_and_records_nothing(string cidr, string message)
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal, ("a", "s1"));
        var error = await FailsAsync(ipam, new Reserve(cidr));
        Assert.Equal((IpamErrorCode.Invalid, message), (error.Code, error.Message));
        Assert.Equal(0, journal.CountEvents("ReservationMade"));
        Assert.Empty((await StateAsync(ipam)).Reservations);
    }

    [Fact]
    public async Task Unreserving_a_spanning_reservation_needs_the_exact_range_and_frees_it_in_every_subnet()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal, ("a", "s1"), ("b", "s2"));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.8/29")));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.0/27"))); // absorbs 10.0.0.8/29

        Assert.Equal(IpamErrorCode.NotFound, (await FailsAsync(ipam, new Unreserve("10.0.0.8/29"))).Code);
        Assert.Equal(IpamErrorCode.NotFound, (await FailsAsync(ipam, new Unreserve("10.0.0.0/28"))).Code);
        Assert.Equal(IpamErrorCode.Exhausted, (await FailsAsync(ipam, new Allocate(new("a"), new("pa")))).Code);

        Assert.IsType<Succeeded>(await ipam.AskAsync(new Unreserve("10.0.0.0/27")));
        Assert.Equal("10.0.0.0", await AddressAsync(ipam, "a", "pa"));
        Assert.Equal("10.0.0.16", await AddressAsync(ipam, "b", "pb"));
        var state = await StateAsync(ipam);
        Assert.Empty(state.Reservations);
        Assert.Equal(("", "", "", ""), (Recorded(state, "s1"), Recorded(state, "s2"), Fences(state, "a"), Fences(state, "b")));
        Assert.Equal(2, journal.CountEvents("RangeUnreserved"));
        Assert.Equal(1, journal.CountEvents("ReservationLifted"));
        Assert.Equal(IpamErrorCode.NotFound, (await FailsAsync(ipam, new Unreserve("10.0.0.0/27"))).Code);
    }

    [Fact]
    public async Task Spanning_and_padding_reservations_survive_a_restart_from_the_journal()
    {
        using var journal = new TempJournal();
        var ipam = await StartAsync(journal, ("a", "s1"), ("b", "s2"), ("d", "s4"));
        try
        {
            Assert.Equal("10.0.0.64", await AddressAsync(ipam, "d", "pd"));
            Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.0/27")));
            Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.192/26")));
            var before = await StateAsync(ipam);
            await ipam.DisposeAsync();

            ipam = await journal.StartAsync(Topologies.Padded());
            var after = await StateAsync(ipam);
            Assert.Equal(IpamInvariants.Json(before), IpamInvariants.Json(after));
            Assert.Equal(["10.0.0.0/27", "10.0.0.192/26"], after.Reservations.Select(r => r.ToString()));
            Assert.Equal(IpamErrorCode.Exhausted, (await FailsAsync(ipam, new Allocate(new("b"), new("pb")))).Code);
            // The ledger found every subnet in line with it: nothing was adopted, recorded again or lifted.
            Assert.Equal((2, 2), (journal.CountEvents("ReservationMade"), journal.CountEvents("RangeReserved")));

            Assert.IsType<Succeeded>(await ipam.AskAsync(new Unreserve("10.0.0.0/27")));
            Assert.Equal("10.0.0.16", await AddressAsync(ipam, "b", "pb"));
        }
        finally
        {
            await ipam.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_audit_replays_the_ledger_and_the_subnets_records_to_any_time()
    {
        using var journal = new TempJournal();
        DateTimeOffset between;
        IpamStateView live;
        await using (var ipam = await StartAsync(journal, ("a", "s1"), ("b", "s2")))
        {
            Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.0/27")));
            Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.192/26")));
            await Task.Delay(50);
            between = DateTimeOffset.UtcNow;
            await Task.Delay(50);
            Assert.IsType<Succeeded>(await ipam.AskAsync(new Unreserve("10.0.0.0/27")));
            live = await StateAsync(ipam);
        }
        await using var audit = await Romana.Host.Composition.RomanaHost.StartAuditAsync(journal.Settings);
        var atEnd = (await Romana.Actors.Audit.AuditQueries.ReplayAsync(audit.Audit, null)).Ipam();
        Assert.Equal(["10.0.0.192/26"], atEnd.Reservations.Select(r => r.ToString()));
        Assert.Equal(live.Reservations.AsEnumerable(), atEnd.Reservations.AsEnumerable());
        Assert.All(atEnd.Subnets, s => Assert.Empty(s.Reservations));
        var before = (await Romana.Actors.Audit.AuditQueries.ReplayAsync(audit.Audit, between)).Ipam();
        Assert.Equal(["10.0.0.0/27", "10.0.0.192/26"], before.Reservations.Select(r => r.ToString()));
        Assert.Equal(("10.0.0.0/27", "10.0.0.0/27"), (Recorded(before, "s1"), Recorded(before, "s2")));
    }

    [Fact]
    public async Task A_reservation_racing_allocations_never_ends_with_an_allocated_address_inside_it()
    {
        using var journal = new TempJournal();
        await using var ipam = await StartAsync(journal, ("a1", "s1"), ("a2", "s1"), ("b1", "s2"), ("b2", "s2"));
        var clock = Stopwatch.StartNew();
        var allocations = new ConcurrentQueue<(long SentAt, Ipv4 Address, string Key)>();
        var accepted = new List<(Ipv4Cidr Range, long From, long Until)>();
        var refused = 0;
        var stop = false;

        var allocators = new[] { "a1", "a2", "b1", "b2" }.Select((node, n) => Task.Run(async () =>
        {
            var random = new Random(n);
            var mine = new List<string>();
            for (var i = 0; !stop || mine.Count > 0; i++)
            {
                if (mine.Count > 0 && (stop || mine.Count >= 6 || random.Next(3) == 0))
                {
                    var key = mine[random.Next(mine.Count)];
                    mine.Remove(key);
                    Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(new AllocationKey(key), null)));
                    continue;
                }
                var newKey = $"{node}-{i}";
                var sentAt = clock.ElapsedTicks;
                switch (await AllocateAsync(ipam, node, newKey))
                {
                    case AddressAssigned assigned:
                        allocations.Enqueue((sentAt, assigned.Address, newKey));
                        mine.Add(newKey);
                        break;
                    case Failed { Error.Code: IpamErrorCode.Exhausted }:
                        break;
                    case var other:
                        Assert.Fail($"{newKey}: {other}");
                        break;
                }
            }
        })).ToList();

        // One reservation at a time: an accepted one holds from its answer until its unreserve is sent.
        string[] ranges = ["10.0.0.0/27", "10.0.0.0/28", "10.0.0.16/29", "10.0.0.12/30", "10.0.0.14/31", "10.0.0.30/31"];
        var picker = new Random(7);
        for (var round = 0; round < 80; round++)
        {
            var range = Ipv4Cidr.Parse(ranges[picker.Next(ranges.Length)]);
            var reply = await ipam.AskAsync(new Reserve(range.ToString()));
            if (reply is Failed { Error.Code: IpamErrorCode.Conflict })
            {
                refused++;
                continue;
            }
            Assert.IsType<Succeeded>(reply);
            var from = clock.ElapsedTicks;
            await Task.Delay(picker.Next(0, 4));
            accepted.Add((range, from, clock.ElapsedTicks));
            Assert.IsType<Succeeded>(await ipam.AskAsync(new Unreserve(range.ToString())));
        }
        stop = true;
        await Task.WhenAll(allocators);

        var inside = allocations.Where(a => accepted.Any(r => r.Range.Contains(a.Address) && a.SentAt >= r.From && a.SentAt < r.Until))
            .Select(a => $"{a.Key} got {a.Address}").ToList();
        Assert.True(inside.Count == 0, $"handed out inside an accepted reservation: {string.Join("; ", inside)}");
        Assert.True(accepted.Count > 0 && refused > 0, $"{accepted.Count} reservations accepted, {refused} refused: the race was not run");
        Assert.True(allocations.Count > 100, $"only {allocations.Count} allocations");
        var state = await StateAsync(ipam);
        IpamInvariants.Check(state);
        Assert.Empty(state.Reservations);
        Assert.All(state.Nodes, n => Assert.Empty(n.Fences));
    }
}
