using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>
/// The reservation ledger's two phases and its reconciliation, with the subnets played by test actors that answer as told
/// and record what they were asked, on Akka.Persistence.TestKit's journal (a "restart" is a new ledger on the same journal).
/// </summary>
public class ReservationLedgerTests() : Akka.TestKit.Xunit2.TestKit(InMemoryJournal.Config)
{
    private static readonly ClusterTopology Topology = Topologies.Padded();
    private static readonly Ipv4Cidr Across = Ipv4Cidr.Parse("10.0.0.0/27"); // s1 and s2
    private static readonly SubnetId S1 = new("s1"), S2 = new("s2"), S4 = new("s4");
    private static readonly IpamSettings Settings = IpamSettings.Default with
    {
        AskTimeout = TimeSpan.FromSeconds(1),
        RestartMinBackoff = TimeSpan.FromMilliseconds(50),
        RestartMaxBackoff = TimeSpan.FromMilliseconds(200),
    };

    /// <summary>What every subnet was asked, in order.</summary>
    private readonly ConcurrentDictionary<SubnetId, ConcurrentQueue<object>> _asked = new();

    /// <summary>A ledger whose subnets answer <paramref name="answer"/> (null: no answer), and that has reconciled.</summary>
    private async Task<IActorRef> StartLedgerAsync(Func<SubnetId, object, object?> answer)
    {
        _asked.Clear();
        var subnets = Topology.Subnets.ToDictionary(s => s.Id, s =>
        {
            var probe = CreateTestProbe();
            probe.SetAutoPilot(new DelegateAutoPilot((sender, message) =>
            {
                _asked.GetOrAdd(s.Id, _ => new()).Enqueue(message);
                if (answer(s.Id, message) is { } reply) sender.Tell(reply, probe.Ref);
                return AutoPilot.KeepRunning;
            }));
            return probe.Ref;
        });
        var ledger = Sys.ActorOf(ReservationLedger.Props(Topology, subnets, Settings, SystemClock.Instance));
        await ledger.Ask<ReservationMessages.Ledger>(new ReservationMessages.AwaitLedger(), TimeSpan.FromSeconds(10));
        return ledger;
    }

    private async Task StopAsync(IActorRef ledger)
    {
        Watch(ledger);
        Sys.Stop(ledger);
        ExpectTerminated(ledger);
        await Task.Yield();
    }

    private IEnumerable<T> Asked<T>(SubnetId subnet) => _asked.GetValueOrDefault(subnet)?.OfType<T>() ?? [];

    /// <summary>Whatever a subnet was asked besides what it recorded (the ledger's reconciliation).</summary>
    private List<object> AskedBesidesWhatWasRecorded() =>
        [.. _asked.Values.SelectMany(q => q).Where(m => m is not SubnetMessages.GetRecordedReservations)];

    private static async Task<IpamReply> AskAsync(IActorRef ledger, object message) =>
        await ledger.Ask<IpamReply>(message, TimeSpan.FromSeconds(10));

    private static async Task<string> ListAsync(IActorRef ledger) =>
        string.Join(",", (await ledger.Ask<ReservationMessages.Ledger>(new ReservationMessages.GetLedger(), TimeSpan.FromSeconds(3)))
            .Reservations);

    /// <summary>Subnets in line with an empty ledger, holding and recording whatever they are asked.</summary>
    private static object? Agreeing(SubnetId subnet, object message) => message switch
    {
        SubnetMessages.GetRecordedReservations => new SubnetMessages.ReservationsRecorded(subnet, []),
        SubnetMessages.HoldRange hold => new SubnetMessages.RangeHeld(subnet, hold.Range),
        _ => Succeeded.Instance,
    };

    [Fact]
    public async Task A_subnet_refusing_the_hold_makes_every_subnet_release_it_and_nothing_is_recorded()
    {
        var ledger = await StartLedgerAsync((subnet, message) => message is SubnetMessages.HoldRange && subnet == S2
            ? new Failed(IpamError.Conflict("reservation 10.0.0.0/27 would cover 10.0.0.16, held by key 'k' on node b"))
            : Agreeing(subnet, message));

        var refused = Assert.IsType<Failed>(await AskAsync(ledger, new ReservationMessages.Reserve(Across))).Error;
        Assert.Equal((IpamErrorCode.Conflict, "cidr: 10.0.0.0/27 refused as a whole (subnets s1, s2), nothing reserved: subnet s2: " +
            "reservation 10.0.0.0/27 would cover 10.0.0.16, held by key 'k' on node b"), (refused.Code, refused.Message));
        await AwaitAssertAsync(() =>
        {
            Assert.Single(Asked<SubnetMessages.ReleaseHold>(S1), r => r.Range == Across);
            Assert.Single(Asked<SubnetMessages.ReleaseHold>(S2), r => r.Range == Across);
        });
        Assert.Empty(Asked<SubnetMessages.Reserve>(S1).Concat(Asked<SubnetMessages.Reserve>(S2)));
        Assert.Equal("", await ListAsync(ledger));

        // Nothing in the journal: a new ledger finds nothing to record or lift.
        await StopAsync(ledger);
        ledger = await StartLedgerAsync(Agreeing);
        Assert.Equal("", await ListAsync(ledger));
        Assert.Empty(AskedBesidesWhatWasRecorded());
    }

    [Fact]
    public async Task A_record_refused_after_the_decision_is_lifted_from_every_subnet_with_its_cause()
    {
        // s2 restarted between the phases, forgot its hold and handed out 10.0.0.17 meanwhile.
        var ledger = await StartLedgerAsync((subnet, message) => (subnet, message) switch
        {
            (_, SubnetMessages.Reserve) when subnet == S2 =>
                new Failed(IpamError.Conflict("reservation 10.0.0.0/27 would cover 10.0.0.17, held by key 'k' on node b")),
            (_, SubnetMessages.Unreserve) when subnet == S2 => new Failed(IpamError.NotFound("no reservation is exactly 10.0.0.0/27")),
            _ => Agreeing(subnet, message),
        });

        var refused = Assert.IsType<Failed>(await AskAsync(ledger, new ReservationMessages.Reserve(Across))).Error;
        Assert.Equal(IpamErrorCode.Conflict, refused.Code);
        Assert.EndsWith("subnet s2: reservation 10.0.0.0/27 would cover 10.0.0.17, held by key 'k' on node b", refused.Message);
        foreach (var subnet in new[] { S1, S2 })
            Assert.StartsWith("reservation 10.0.0.0/27 refused as a whole after it was decided: cidr: 10.0.0.0/27",
                Assert.Single(Asked<SubnetMessages.Unreserve>(subnet)).Reason);
        Assert.Equal("", await ListAsync(ledger));

        // The lift is in the journal: a new ledger does not record it again.
        await StopAsync(ledger);
        ledger = await StartLedgerAsync(Agreeing);
        Assert.Equal("", await ListAsync(ledger));
        Assert.Empty(Asked<SubnetMessages.Reserve>(S1).Concat(Asked<SubnetMessages.Reserve>(S2)));
    }

    [Fact]
    public async Task A_decision_whose_record_was_cut_short_is_recorded_when_the_ledger_recovers()
    {
        var recording = new TaskCompletionSource();
        var ledger = await StartLedgerAsync((subnet, message) =>
        {
            if (message is not SubnetMessages.Reserve || subnet != S2) return Agreeing(subnet, message);
            recording.TrySetResult();
            return null; // the ledger stops before s2 answers
        });
        ledger.Tell(new ReservationMessages.Reserve(Across));
        await recording.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await StopAsync(ledger);

        // s1 recorded it, s2 did not.
        ledger = await StartLedgerAsync((subnet, message) => message is SubnetMessages.GetRecordedReservations
            ? new SubnetMessages.ReservationsRecorded(subnet, subnet == S1 ? [Across] : [])
            : Agreeing(subnet, message));
        Assert.Equal("10.0.0.0/27", await ListAsync(ledger));
        Assert.Equal("recorded: decided by the reservation ledger before a restart",
            Assert.Single(Asked<SubnetMessages.Reserve>(S2)).Reason);
        Assert.Empty(Asked<SubnetMessages.Reserve>(S1));
        Assert.Empty(Asked<SubnetMessages.HoldRange>(S2));
    }

    [Fact]
    public async Task A_fresh_ledger_adopts_what_subnets_recorded_before_it_and_then_lifts_what_it_does_not_hold()
    {
        ImmutableArray<Ipv4Cidr> legacy = [Ipv4Cidr.Parse("10.0.0.64/29")];
        var ledger = await StartLedgerAsync((subnet, message) => message is SubnetMessages.GetRecordedReservations
            ? new SubnetMessages.ReservationsRecorded(subnet, subnet == S4 ? legacy : [])
            : Agreeing(subnet, message));
        Assert.Equal("10.0.0.64/29", await ListAsync(ledger));
        Assert.Empty(AskedBesidesWhatWasRecorded());

        await StopAsync(ledger);
        ledger = await StartLedgerAsync((subnet, message) => message is SubnetMessages.GetRecordedReservations
            ? new SubnetMessages.ReservationsRecorded(subnet, subnet == S4 ? legacy.Add(Ipv4Cidr.Parse("10.0.0.72/29")) : [])
            : Agreeing(subnet, message));
        Assert.Equal("10.0.0.64/29", await ListAsync(ledger));
        var lifted = Assert.Single(Asked<SubnetMessages.Unreserve>(S4));
        Assert.Equal((Ipv4Cidr.Parse("10.0.0.72/29"), "lifted: the reservation ledger does not hold it"),
            (lifted.Range, lifted.Reason));
    }

    [Fact]
    public async Task A_reservation_in_a_padding_slot_asks_no_subnet_and_an_unreserve_a_subnet_cannot_answer_keeps_it()
    {
        var silent = false;
        var ledger = await StartLedgerAsync((subnet, message) =>
            silent && message is SubnetMessages.Unreserve ? null : Agreeing(subnet, message));
        Assert.IsType<Succeeded>(await AskAsync(ledger, new ReservationMessages.Reserve(Ipv4Cidr.Parse("10.0.0.192/26"))));
        Assert.Empty(AskedBesidesWhatWasRecorded());

        Assert.IsType<Succeeded>(await AskAsync(ledger, new ReservationMessages.Reserve(Across)));
        silent = true;
        var stuck = Assert.IsType<Failed>(await AskAsync(ledger, new ReservationMessages.Unreserve(Across))).Error;
        Assert.Equal(IpamErrorCode.Unavailable, stuck.Code);
        Assert.StartsWith("cidr: 10.0.0.0/27 stays reserved: subnet s1 did not lift it", stuck.Message);
        Assert.Equal("10.0.0.0/27,10.0.0.192/26", await ListAsync(ledger));
    }
}

/// <summary>
/// A subnet's hold keeps its range from every node (the owners fence it, the grants carry it), and one that the ledger
/// never records nor releases ends by itself, its fences with it.
/// </summary>
public class SubnetHoldTests() : Akka.TestKit.Xunit2.TestKit(InMemoryJournal.Config)
{
    [Fact]
    public async Task A_hold_keeps_its_range_from_every_node_and_one_never_recorded_expires_with_its_fences()
    {
        // A hold lasts six ask timeouts: 1.2 s here.
        var settings = IpamSettings.Default with { AskTimeout = TimeSpan.FromMilliseconds(200) };
        var node = new NodeName("n1");
        var layout = Topologies.OneSubnet("10.0.0.0/28", 29).Subnets.Single();
        var subnet = Sys.ActorOf(SubnetActor.Props(layout, 29, settings, SystemClock.Instance));
        var nodeActor = (await subnet.Ask<SubnetMessages.NodeAdded>(new SubnetMessages.AddNode(node,
            new NodeEndpoint(Ipv4.Parse("192.168.0.1"))), TimeSpan.FromSeconds(3))).NodeActor;
        // n2 owns no block when the range is held: only the subnet's grants keep it out.
        var other = new NodeName("n2");
        var otherActor = (await subnet.Ask<SubnetMessages.NodeAdded>(new SubnetMessages.AddNode(other,
            new NodeEndpoint(Ipv4.Parse("192.168.0.2"))), TimeSpan.FromSeconds(3))).NodeActor;
        Task<IpamReply> Allocate(string key) =>
            nodeActor.Ask<IpamReply>(new NodeMessages.AllocateAddress(node, new AllocationKey(key)), TimeSpan.FromSeconds(3));
        Assert.IsType<AddressAssigned>(await Allocate("k1"));
        Assert.IsType<Succeeded>(await nodeActor.Ask<IpamReply>(new NodeMessages.ReleaseAddress(node, new("k1"), "test"),
            TimeSpan.FromSeconds(3)));

        var range = Ipv4Cidr.Parse("10.0.0.0/27"); // the whole subnet and beyond
        Assert.IsType<SubnetMessages.RangeHeld>(await subnet.Ask<object>(new SubnetMessages.HoldRange(range), TimeSpan.FromSeconds(3)));
        var fenced = await nodeActor.Ask<NodeSnapshot>(new NodeMessages.GetNodeState(node), TimeSpan.FromSeconds(3));
        Assert.Equal([range], fenced.Fences.AsEnumerable());
        Assert.Equal(IpamErrorCode.Exhausted, Assert.IsType<Failed>(await Allocate("k2")).Error.Code);
        Assert.Equal(IpamErrorCode.Exhausted, Assert.IsType<Failed>(await otherActor.Ask<IpamReply>(
            new NodeMessages.AllocateAddress(other, new AllocationKey("o1")), TimeSpan.FromSeconds(3))).Error.Code);
        Assert.Empty((await subnet.Ask<SubnetMessages.ReservationsRecorded>(new SubnetMessages.GetRecordedReservations(),
            TimeSpan.FromSeconds(3))).Reservations);

        await AwaitAssertAsync(async () =>
                Assert.Equal("10.0.0.0", Assert.IsType<AddressAssigned>(await Allocate("k3")).Address.ToString()),
            TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100));
        Assert.Empty((await nodeActor.Ask<NodeSnapshot>(new NodeMessages.GetNodeState(node), TimeSpan.FromSeconds(3))).Fences);
    }
}
