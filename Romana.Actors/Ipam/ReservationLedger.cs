using System.Collections.Immutable;
using System.Runtime.ExceptionServices;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.ReservationMessages;
using Failed = Romana.Actors.Ipam.IpamMessages.Failed;
using Succeeded = Romana.Actors.Ipam.IpamMessages.Succeeded;

namespace Romana.Actors.Ipam;

/*
 * A reservation across subnets, all or nothing: the ledger and the subnets it touches.
 *
 *  1. Hold. The ledger asks every subnet the range touches to hold it (HoldRange). A subnet has the owners of the blocks
 *     it touches fence it (each node refuses when one of its addresses in the range is allocated, and persists RangeFenced
 *     otherwise: from then on it hands out none of them), keeps the range from its grants in memory, and answers RangeHeld.
 *     A subnet answers one protocol at a time, so the owners it asks are exactly the owners at that moment; a block it
 *     grants afterwards carries the hold, and its new owner fences it before using it.
 *  2. If any subnet refuses (an allocated address: conflict) or does not answer, the ledger tells every one of them to
 *     release the hold (ReleaseHold: the fences are lifted, the smaller reservations inside kept) and answers the refusal.
 *     Nothing was recorded by the ledger or any subnet.
 *  3. Decide. Every subnet held it: the ledger persists ReservationMade. This is the decision.
 *  4. Record. The ledger asks each subnet to record it (Reserve): the subnet fences again (a no-op for the fences already
 *     up) and persists RangeReserved, which ends the hold. The requester is answered once every subnet has stored it.
 *  5. A record can fail only if a subnet forgot its hold (it restarted) and handed out an address in the range meanwhile.
 *     Then the reservation is refused as a whole after all: the ledger lifts it from every subnet (Unreserve) and persists
 *     ReservationLifted with the cause, and answers the refusal. A subnet that does not answer keeps it (safe: addresses
 *     kept from allocation) until the ledger's next reconciliation.
 *
 * So an answer "ok" means every subnet stored the reservation, each of its nodes fenced it, and no address in it was
 * allocated at that moment; from then on no node hands one out. The ledger handles one reservation at a time (others
 * wait), so reservations never interleave.
 *
 * Unreserve lifts the reservation from every subnet first (each persists RangeUnreserved, then unfences), then persists
 * ReservationLifted and answers. A subnet that does not answer leaves the ledger holding it; the reconciliation records
 * it again where it was lifted, and the requester is told to retry.
 *
 * Reconciliation, when the ledger starts (and after a step that a subnet did not answer): it reads what every subnet
 * recorded (GetRecordedReservations) and brings them in line with itself: a reservation the ledger decided that a subnet
 * does not hold is recorded there (a record phase cut short by a crash, or an unreserve cut short: it stays reserved);
 * one a subnet holds that the ledger does not is lifted there (the ledger's journal is the truth; since subnets lift
 * before the ledger and record after it, only a journal out of step, such as one restored from an older backup, leaves
 * one); a ledger whose journal is empty adopts what the subnets recorded before the ledger existed. Commands wait until
 * the first reconciliation is done.
 *
 * Placement: local, a child of the IPAM front door (IpamActor). Cluster: one Cluster Sharding entity (type
 * "reservations"), so one writer cluster-wide; the subnets are sharded entities reached through their region, and the
 * fences cross the network to each node's daemon exactly as in a subnet's own reservation.
 */

/// <summary>
/// The one writer that decides every reservation of the pod CIDR: inside a subnet, across subnets and zones, or in
/// padding slots. Its journal ("reservations") lists them; each subnet a reservation touches records it too, so a
/// subnet's grants and its nodes' fences keep every address of it from allocation.
/// </summary>
public sealed class ReservationLedger : ReceivePersistentActor, IWithTimers
{
    public const string Id = "reservations";

    private readonly ClusterTopology _topology;
    private readonly IpamSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ImmutableDictionary<SubnetId, IActorRef> _subnets;
    private ReservationLedgerState _state = ReservationLedgerState.Empty;
    private bool _ready;
    private IActorRef? _awaitingWrite;

    /// <param name="subnets">Local placement: the subnets' actors.</param>
    /// <param name="subnetRegion">Cluster placement: the subnets' shard region.</param>
    public ReservationLedger(ClusterTopology topology, IReadOnlyDictionary<SubnetId, IActorRef>? subnets, IActorRef? subnetRegion,
        IpamSettings settings, IClock clock)
    {
        _topology = topology;
        _settings = settings;
        _clock = clock;
        _subnets = subnets?.ToImmutableDictionary() ?? topology.Subnets.ToImmutableDictionary(s => s.Id, s =>
            Context.ActorOf(IpamShards.EntityLink.Props(subnetRegion!, s.Id.Value), $"subnet-{Uri.EscapeDataString(s.Id.Value)}"));

        Recover<IIpamEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ => Self.Tell(new Reconcile()));
        Starting();
    }

    public static Props Props(ClusterTopology topology, IReadOnlyDictionary<SubnetId, IActorRef> subnets, IpamSettings settings,
        IClock clock) =>
        Akka.Actor.Props.Create(() => new ReservationLedger(topology, subnets, null, settings, clock));

    public static Props ShardedProps(ClusterTopology topology, IActorRef subnetRegion, IpamSettings settings, IClock clock) =>
        Akka.Actor.Props.Create(() => new ReservationLedger(topology, null, subnetRegion, settings, clock));

    /// <summary>How long a front door waits for the ledger: two phases and, when the second fails, the lift.</summary>
    public static TimeSpan AnswerWithin(IpamSettings settings) => settings.AskTimeout * 5;

    public override string PersistenceId => Id;
    public ITimerScheduler Timers { get; set; } = null!;

    private DateTimeOffset Now => _clock.Now;

    /// <summary>A subnet asks its nodes within the ask timeout, so it answers the ledger within this.</summary>
    private TimeSpan StepTimeout => _settings.AskTimeout * 1.5;

    private Ledger Listed => new([.. _state.Reservations]);

    private sealed record Reconcile : INoSerializationVerificationNeeded;

    /// <summary>A step's answers are in: the next step runs on the actor's thread.</summary>
    private sealed record Continue(Action Then) : INoSerializationVerificationNeeded;

    private sealed record Reply(SubnetId Subnet, object? Answer);

    // ---- behaviours ----------------------------------------------------------------------------------------------

    /// <summary>Until the first reconciliation is done.</summary>
    private void Starting()
    {
        Command<Reconcile>(_ => BeginReconcile());
        Command<GetLedger>(_ => Sender.Tell(Listed));
        CommandAny(_ => Stash.Stash());
    }

    private void Ready()
    {
        Command<Reserve>(Reserve);
        Command<Unreserve>(Unreserve);
        Command<Reconcile>(_ => BeginReconcile());
        Command<GetLedger>(_ => Sender.Tell(Listed));
        Command<AwaitLedger>(_ => Sender.Tell(Listed));
    }

    /// <summary>One reservation, unreserve or reconciliation at a time; everything else but the list waits.</summary>
    private void Busy()
    {
        Command<Continue>(next => next.Then());
        Command<GetLedger>(_ => Sender.Tell(Listed));
        CommandAny(_ => Stash.Stash());
    }

    private void EndBusy()
    {
        Become(_ready ? Ready : Starting);
        Stash.UnstashAll();
    }

    // ---- reserve -------------------------------------------------------------------------------------------------

    private void Reserve(Reserve command)
    {
        var (replyTo, range) = (Sender, command.Range);
        switch (_state.DecideReserve(_topology, range))
        {
            case ReservationDecision.Refuse refuse:
                replyTo.Tell(new Failed(refuse.Error));
                break;
            case ReservationDecision.AlreadyReserved:
                replyTo.Tell(Succeeded.Instance);
                break;
            case ReservationDecision.Hold { Subnets.IsEmpty: true }:
                Become(Busy);
                Write([_state.Made(range, [], Now, "reserved by operator, in padding slots that no subnet uses")], replyTo, () =>
                {
                    replyTo.Tell(Succeeded.Instance);
                    EndBusy();
                });
                break;
            case ReservationDecision.Hold hold:
                Become(Busy);
                Run(AskEachAsync(hold.Subnets, new SubnetMessages.HoldRange(range)), replies => Held(hold, replies, replyTo));
                break;
        }
    }

    private void Held(ReservationDecision.Hold hold, ImmutableArray<Reply> replies, IActorRef replyTo)
    {
        var range = hold.Range;
        if (replies.FirstOrDefault(r => r.Answer is not SubnetMessages.RangeHeld) is { } refused)
        {
            var error = Refusal(range, hold.Subnets, refused);
            _log.Info("Reservation {0} refused: {1}", range, error);
            // Answered once the holds are released (or their subnets timed out): a refused range withholds nothing after.
            Run(AskEachAsync(hold.Subnets, new SubnetMessages.ReleaseHold(range, $"reservation {range} refused: {error.Message}")), _ =>
            {
                replyTo.Tell(new Failed(error));
                EndBusy();
            });
            return;
        }
        var reason = hold.Subnets.Length == 1
            ? "reserved by operator"
            : $"reserved by operator, across subnets {string.Join(", ", hold.Subnets)}";
        Write([_state.Made(range, hold.Subnets, Now, reason)], replyTo, () =>
            Run(AskEachAsync(hold.Subnets, new SubnetMessages.Reserve(range, reason)), recorded =>
                Recorded(hold, recorded, replyTo)));
    }

    private void Recorded(ReservationDecision.Hold hold, ImmutableArray<Reply> replies, IActorRef replyTo)
    {
        if (replies.FirstOrDefault(r => r.Answer is not Succeeded) is not { } failed)
        {
            _log.Info("Reservation {0} made in {1}", hold.Range, hold.Subnets.IsEmpty ? "padding" : string.Join(", ", hold.Subnets));
            replyTo.Tell(Succeeded.Instance);
            EndBusy();
            return;
        }
        var error = Refusal(hold.Range, hold.Subnets, failed);
        var why = $"refused as a whole after it was decided: {error.Message}";
        Run(AskEachAsync(hold.Subnets, new SubnetMessages.Unreserve(hold.Range, $"reservation {hold.Range} {why}")), back =>
        {
            if (back.FirstOrDefault(r => !Lifted(r)) is { } stuck)
            {
                replyTo.Tell(new Failed(IpamError.Unavailable($"cidr: {hold.Range} {why}; subnet {stuck.Subnet} did not take it back " +
                    "and keeps it reserved until the ledger reconciles; retrying is safe")));
                LaterReconcile();
                EndBusy();
                return;
            }
            Write([new ReservationLifted(hold.Range, hold.Subnets, Now, why)], replyTo, () =>
            {
                replyTo.Tell(new Failed(error));
                EndBusy();
            });
        });
    }

    /// <summary>Why a subnet's answer refuses the reservation, naming the field and the value.</summary>
    private IpamError Refusal(Ipv4Cidr range, ImmutableArray<SubnetId> subnets, Reply reply)
    {
        var whole = subnets.Length > 1 ? $"refused as a whole (subnets {string.Join(", ", subnets)}), nothing reserved" : "refused";
        return reply.Answer is Failed failed
            ? new IpamError(failed.Error.Code, $"cidr: {range} {whole}: subnet {reply.Subnet}: {failed.Error.Message}")
            : IpamError.Unavailable($"cidr: {range} {whole}: subnet {reply.Subnet} did not answer within " +
                $"{StepTimeout.TotalSeconds:0.#}s; retrying is safe");
    }

    // ---- unreserve -----------------------------------------------------------------------------------------------

    private void Unreserve(Unreserve command)
    {
        var (replyTo, range) = (Sender, command.Range);
        var (subnets, error) = _state.DecideUnreserve(_topology, range);
        if (error is not null)
        {
            replyTo.Tell(new Failed(error));
            return;
        }
        Become(Busy);
        Run(AskEachAsync(subnets, new SubnetMessages.Unreserve(range, "unreserved by operator")), replies =>
        {
            if (replies.FirstOrDefault(r => !Lifted(r)) is { } stuck)
            {
                replyTo.Tell(new Failed(IpamError.Unavailable($"cidr: {range} stays reserved: subnet {stuck.Subnet} did not lift it " +
                    $"({(stuck.Answer as Failed)?.Error.Message ?? "no answer"}); retrying is safe")));
                LaterReconcile();
                EndBusy();
                return;
            }
            Write([new ReservationLifted(range, subnets, Now, "unreserved by operator")], replyTo, () =>
            {
                _log.Info("Reservation {0} lifted", range);
                replyTo.Tell(Succeeded.Instance);
                EndBusy();
            });
        });
    }

    /// <summary>A subnet no longer records the range: it lifted it now, or never had it.</summary>
    private static bool Lifted(Reply reply) => reply.Answer is Succeeded or Failed { Error.Code: IpamErrorCode.NotFound };

    // ---- reconciliation ------------------------------------------------------------------------------------------

    private void BeginReconcile()
    {
        Become(Busy);
        Run(AskEachAsync(_subnets.Keys, new SubnetMessages.GetRecordedReservations()), replies =>
        {
            if (replies.Where(r => r.Answer is not SubnetMessages.ReservationsRecorded).Select(r => r.Subnet).ToList() is [_, ..] silent)
            {
                _log.Warning("Reservation ledger: subnets {0} did not say what they recorded; trying again", string.Join(", ", silent));
                LaterReconcile();
                EndBusy();
                return;
            }
            var recorded = replies.ToDictionary(r => r.Subnet, r => ((SubnetMessages.ReservationsRecorded)r.Answer!).Reservations);
            var plan = _state.DecideReconcile(_topology, recorded, fresh: LastSequenceNr == 0, Now);
            _ready = true;
            if (plan.Nothing)
            {
                EndBusy();
                return;
            }
            _log.Info("Reservation ledger: adopting {0}, recording {1}, lifting {2}", plan.Adopt.Length, plan.Record.Length,
                plan.Lift.Length);
            Write([.. plan.Adopt], null, () => Run(BringInLineAsync(plan), outcome =>
            {
                if (outcome.Unanswered) LaterReconcile();
                Write([.. outcome.Refused.Select(r => new ReservationLifted(r.Range, ReservationLedgerState.Touched(_topology, r.Range),
                    Now, r.Why))], null, EndBusy);
            }));
        });
    }

    /// <summary>Lifts, then records, what the reconciliation found; a record refused now is lifted everywhere.</summary>
    private async Task<(ImmutableArray<(Ipv4Cidr Range, string Why)> Refused, bool Unanswered)> BringInLineAsync(Reconciliation plan)
    {
        var unanswered = false;
        foreach (var (range, subnet) in plan.Lift)
            unanswered |= !Lifted(new Reply(subnet, await AskAsync(subnet,
                new SubnetMessages.Unreserve(range, "lifted: the reservation ledger does not hold it"))));
        var refused = ImmutableArray.CreateBuilder<(Ipv4Cidr, string)>();
        foreach (var group in plan.Record.GroupBy(r => r.Range))
        {
            var range = group.Key;
            var replies = await AskEachAsync(group.Select(r => r.Subnet),
                new SubnetMessages.Reserve(range, "recorded: decided by the reservation ledger before a restart"));
            if (replies.All(r => r.Answer is Succeeded)) continue;
            if (replies.Any(r => r.Answer is null or Failed { Error.Code: IpamErrorCode.Unavailable }))
            {
                unanswered = true;
                continue;
            }
            var failed = replies.First(r => r.Answer is not Succeeded);
            var why = $"refused as a whole after it was decided: subnet {failed.Subnet}: {((Failed)failed.Answer!).Error.Message}";
            var back = await AskEachAsync(ReservationLedgerState.Touched(_topology, range), new SubnetMessages.Unreserve(range, why));
            if (back.All(Lifted)) refused.Add((range, why));
            else unanswered = true;
        }
        return (refused.ToImmutable(), unanswered);
    }

    private void LaterReconcile() => Timers.StartSingleTimer("reconcile", new Reconcile(), _settings.AskTimeout);

    // ---- asking and writing --------------------------------------------------------------------------------------

    private async Task<ImmutableArray<Reply>> AskEachAsync(IEnumerable<SubnetId> subnets, object message) =>
        [.. await Task.WhenAll(subnets.Select(async subnet => new Reply(subnet, await AskAsync(subnet, message))))];

    /// <summary>The subnet's answer, or null when none came in time.</summary>
    private async Task<object?> AskAsync(SubnetId subnet, object message)
    {
        try
        {
            return await _subnets[subnet].Ask<object>(message, StepTimeout);
        }
        catch (AskTimeoutException)
        {
            return null;
        }
    }

    /// <summary>Runs <paramref name="then"/> on the actor's thread with what <paramref name="work"/> found.</summary>
    private void Run<T>(Task<T> work, Action<T> then) =>
        work.PipeTo(Self, success: found => new Continue(() => then(found)),
            failure: e => new Continue(() => ExceptionDispatchInfo.Throw(e)));

    private void Write(IReadOnlyList<IIpamEvent> events, IActorRef? replyTo, Action then)
    {
        if (events.Count == 0)
        {
            then();
            return;
        }
        _awaitingWrite = replyTo;
        var left = events.Count;
        PersistAll(events, e =>
        {
            _state = _state.Apply(e);
            if (--left > 0) return;
            _awaitingWrite = null;
            then();
        });
    }

    /// <summary>The actor stops after this; its supervisor brings it back from the journal, and it reconciles.</summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        Unstored(cause);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    /// <summary>Nothing was stored or applied: the ledger starts over from its journal as after a failure.</summary>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        OnPersistFailure(cause, @event, sequenceNr);
        Context.Stop(Self);
    }

    private void Unstored(Exception cause) => Interlocked.Exchange(ref _awaitingWrite, null)?.Tell(new Failed(IpamError.Unavailable(
        $"the journal did not store the reservation ledger's change ({cause.Message}); retrying is safe")));
}
