using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Observability;
using Romana.Actors.Persistence;
using static Romana.Actors.Ipam.IpamMessages;
using static Romana.Actors.Ipam.NodeMessages;
using static Romana.Actors.Ipam.SubnetMessages;

namespace Romana.Actors.Ipam;

/// <summary>
/// The pod addresses of one node: a thin shell that persists what <see cref="NodeState"/> decides and replies only
/// after the journal has stored it.
///
/// Throughput: commands are decided on <c>_state</c>, which already holds the events whose write is under way. While
/// a write is in flight, new allocations and releases gather in a batch; when it completes they are persisted together
/// as one <see cref="NodeMessages.AddressesReleased"/> and one <see cref="NodeMessages.AddressesAllocated"/> event (a
/// journal row and a tag row each, whatever the batch size), and each requester is answered once they are stored.
/// Releases apply before allocations, so a release of a key allocated in the same batch flushes the batch first. Any
/// other write or answer also flushes it first, so answers keep their order.
///
/// Snapshots and state queries need <c>_state</c> to equal what the journal holds: the actor then quiesces, stashing
/// commands until no write is in flight (about one write), and takes them at that moment.
///
/// A failed write answers every requester still waiting with an error and stops the actor; its supervisor restarts it
/// from the journal, so an address whose event was not stored was never handed out and is free again.
/// </summary>
public sealed class NodeActor : ReceivePersistentActor, IWithTimers
{
    private readonly NodeName _node;
    private readonly IActorRef _subnet;
    private readonly IpamSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Queue<IReadOnlyList<IActorRef>> _awaitingWrite = new();
    private readonly List<AllocatedAddress> _allocating = new();
    private readonly List<ReleasedAddress> _releasing = new();
    private readonly List<(IActorRef ReplyTo, object Reply)> _batchReplies = new();
    private readonly List<IActorRef> _stateQueries = new();
    private NodeState _state;
    private (AllocateAddress Command, IActorRef ReplyTo, long Id)? _blockRequest;
    private long _blockRequests;
    private long _nextSnapshotAt;
    private DateTimeOffset _batchAt;
    private bool _quiescing;

    public NodeActor(NodeName node, int blockPrefixLength, IActorRef subnet, IpamSettings settings, IClock clock)
    {
        _node = node;
        _subnet = subnet;
        _settings = settings;
        _clock = clock;
        _state = NodeState.Empty(node, blockPrefixLength);

        Recover<SnapshotOffer>(offer => _state = NodeState.FromSnapshot(SnapshotRecord.As<NodeSnapshot>(offer, PersistenceId)));
        Recover<NodeEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            _nextSnapshotAt = LastSequenceNr + _settings.SnapshotEvery;
            Context.System.EventStream.Publish(_state.Usage());
            _subnet.Tell(new GetReservations(_node));
        });
        Serving();
    }

    public static Props Props(NodeName node, int blockPrefixLength, IActorRef subnet, IpamSettings settings, IClock clock) =>
        Akka.Actor.Props.Create(() => new NodeActor(node, blockPrefixLength, subnet, settings, clock));

    public override string PersistenceId => $"node-{_node.Value}";
    public ITimerScheduler Timers { get; set; } = null!;

    private DateTimeOffset Now => _clock.Now;

    /// <summary>Every change of a batch is decided at the time the batch opened, which is the time its events carry.</summary>
    private DateTimeOffset BatchTime => _batchReplies.Count == 0 ? _batchAt = Now : _batchAt;
    private bool SnapshotDue => LastSequenceNr >= _nextSnapshotAt;

    // ---- behaviours ----------------------------------------------------------------------------------------------

    private void Serving()
    {
        Command<AllocateAddress>(command => Allocate(command, Sender));
        Command<ReleaseAddress>(Release);
        Command<SetAsideAddress>(command =>
            Conclude(_state.DecideSetAside(command.Key, command.Address, command.Reason, Now), Sender, Succeeded.Instance,
                e => new Failed(e)));
        Command<RetireNode>(command =>
        {
            var decision = _state.DecideRetire(command.Reason, Now);
            ImmutableArray<AllocationKey> released = decision is NodeDecision.Record r
                ? [.. r.Events.OfType<AddressesReleased>().SelectMany(e => e.Addresses).Select(a => a.Key)]
                : [];
            Conclude(decision, Sender, new NodeRetired(_node, released), e => new Failed(e));
        });
        Command<GetNodeState>(_ =>
        {
            _stateQueries.Add(Sender);
            Quiesce();
        });
        SubnetProtocol();
    }

    private void AwaitingBlock()
    {
        Command<BlockGranted>(granted =>
        {
            Adopt(granted);
            EndBlockRequest(retry: true);
        });
        Command<NoBlockAvailable>(none => EndBlockRequest(failure: IpamError.Exhausted(
            $"node {_node} has no free address, and {none.Why}")));
        Command<Failed>(failed => EndBlockRequest(failure: failed.Error));
        Command<BlockRequestTimedOut>(timeout =>
        {
            if (_blockRequest?.Id == timeout.Id)
                EndBlockRequest(failure: IpamError.Unavailable(
                    $"subnet of node {_node} did not grant a block within {_settings.AskTimeout.TotalSeconds:0.#}s"));
        });
        SubnetProtocol();
        CommandAny(_ => Stash.Stash());
    }

    /// <summary>Waits for the writes under way; every command waits with it.</summary>
    private void Quiescing() => CommandAny(_ => Stash.Stash());

    /// <summary>Handled while serving and while waiting for a block: a node waiting for its subnet must still answer it.</summary>
    private void SubnetProtocol()
    {
        Command<SurrenderBlock>(command =>
            Conclude(_state.DecideSurrender(command.Block, command.ForNode, Now), Sender, new BlockSurrendered(_node, command.Block),
                _ => new BlockInUse(_node, command.Block, _state.Blocks.TryGetValue(command.Block.Network, out var u) ? u.Allocated : 0)));
        Command<FenceRange>(command =>
            Conclude(_state.DecideFence(command.Range, Now), Sender, new RangeFenceResult(_node, command.Range, null),
                e => new RangeFenceResult(_node, command.Range, e)));
        Command<UnfenceRange>(command =>
            Conclude(_state.DecideUnfence(command.Range, command.Restore, Now), Sender, new RangeUnfencedAck(_node, command.Range),
                e => new Failed(e)));
        Command<ReservationsNow>(now => Conclude(_state.DecideSyncFences(now.Reservations, Now), null, null, _ => null));
        Command<BlockGranted>(Adopt);
        Command<SaveSnapshotSuccess>(saved => DeleteSnapshots(new SnapshotSelectionCriteria(saved.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(failed => _log.Warning(failed.Cause,
            "Node {0}: snapshot at {1} not saved; recovery replays more events", _node, failed.Metadata.SequenceNr));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(failed => _log.Warning(failed.Cause, "Node {0}: older snapshots not deleted", _node));
    }

    // ---- commands ------------------------------------------------------------------------------------------------

    private void Allocate(AllocateAddress command, IActorRef replyTo)
    {
        switch (_state.DecideAllocate(command.Key, command.Pod, BatchTime, command.Netns, command.PodUid))
        {
            case NodeDecision.Record record:
                var allocated = ((AddressesAllocated)record.Events[0]).Addresses[0];
                AddToBatch(record, replyTo, new AddressAssigned(_node, allocated.Key, allocated.Address, allocated.Netns, Fresh: true),
                    () => _allocating.Add(allocated));
                break;
            case NodeDecision.AlreadyHeld held:
                ReplyInOrder(replyTo, new AddressAssigned(_node, command.Key, held.Allocation.Address, held.Allocation.Netns));
                break;
            case NodeDecision.Refuse refuse:
                ReplyInOrder(replyTo, new Failed(refuse.Error));
                break;
            case NodeDecision.NeedBlock:
                _blockRequest = (command, replyTo, ++_blockRequests);
                _subnet.Tell(new RequestBlock(_node, _state.BlockList));
                Timers.StartSingleTimer("block-request", new BlockRequestTimedOut(_blockRequests), _settings.AskTimeout);
                Become(AwaitingBlock);
                break;
        }
    }

    private void Release(ReleaseAddress command)
    {
        if (_allocating.Any(a => a.Key == command.Key)) FlushBatch();
        var decision = _state.DecideRelease(command.Key, command.Reason, BatchTime);
        if (decision is not NodeDecision.Record record)
        {
            Conclude(decision, Sender, Succeeded.Instance, e => new Failed(e));
            return;
        }
        AddToBatch(record, Sender, Succeeded.Instance, () => _releasing.Add(((AddressesReleased)record.Events[0]).Addresses[0]));
    }

    private void EndBlockRequest(bool retry = false, IpamError? failure = null)
    {
        Timers.Cancel("block-request");
        var (command, replyTo, _) = _blockRequest!.Value;
        _blockRequest = null;
        Become(Serving);
        if (retry) Allocate(command, replyTo);
        else ReplyInOrder(replyTo, new Failed(failure!));
        Stash.UnstashAll();
    }

    private void Adopt(BlockGranted granted)
    {
        var decision = _state.DecideAdopt(granted.Block, granted.Reserved, Now);
        if (decision is NodeDecision.Refuse refuse) _log.Warning("Node {0}: block {1} refused: {2}", _node, granted.Block, refuse.Error);
        else Conclude(decision, null, null, _ => null);
    }

    // ---- writing -------------------------------------------------------------------------------------------------

    /// <summary>Persists what was decided and replies <paramref name="onRecorded"/>; answers without events keep their order.</summary>
    private void Conclude(NodeDecision decision, IActorRef? replyTo, object? onRecorded, Func<IpamError, object?> onRefused)
    {
        switch (decision)
        {
            case NodeDecision.Record record:
                FlushBatch();
                foreach (var e in record.Events) _state = _state.Apply(e);
                Write(record.Events, replyTo is null ? [] : [replyTo], () =>
                {
                    if (onRecorded is not null) replyTo?.Tell(onRecorded);
                });
                break;
            case NodeDecision.Refuse refuse:
                if (replyTo is not null && onRefused(refuse.Error) is { } refusal) ReplyInOrder(replyTo, refusal);
                break;
            default:
                if (replyTo is not null && onRecorded is not null) ReplyInOrder(replyTo, onRecorded);
                break;
        }
    }

    private void AddToBatch(NodeDecision.Record record, IActorRef replyTo, object reply, Action add)
    {
        _state = _state.Apply(record.Events[0]);
        add();
        _batchReplies.Add((replyTo, reply));
        if (_awaitingWrite.Count == 0) FlushBatch();
    }

    private void FlushBatch()
    {
        if (_batchReplies.Count == 0) return;
        var events = new List<NodeEvent>(2);
        if (_releasing.Count > 0) events.Add(new AddressesReleased(_node, [.. _releasing], _batchAt, "released"));
        if (_allocating.Count > 0) events.Add(new AddressesAllocated(_node, [.. _allocating], _batchAt, "allocated"));
        var replies = _batchReplies.ToList();
        _releasing.Clear();
        _allocating.Clear();
        _batchReplies.Clear();
        Write(events, [.. replies.Select(r => r.ReplyTo)], () =>
        {
            foreach (var (replyTo, reply) in replies) replyTo.Tell(reply);
        });
    }

    /// <summary>
    /// Persists, then runs <paramref name="stored"/>.
    /// When no write is left in flight, the batch follows, or a due snapshot.
    /// </summary>
    private void Write(IReadOnlyList<NodeEvent> events, IReadOnlyList<IActorRef> requesters, Action stored)
    {
        _awaitingWrite.Enqueue(requesters);
        var left = events.Count;
        var started = Stopwatch.GetTimestamp();
        PersistAllAsync(events, e =>
        {
            Context.System.EventStream.Publish(e);
            if (--left > 0) return;
            Context.System.EventStream.Publish(new Observed.JournalWritten("node", Stopwatch.GetElapsedTime(started)));
            Context.System.EventStream.Publish(_state.Usage());
            _awaitingWrite.Dequeue();
            stored();
            if (_awaitingWrite.Count > 0) return;
            if (_quiescing) Settle();
            else if (SnapshotDue && _blockRequest is null) Quiesce();
            else FlushBatch();
        });
    }

    /// <summary>Deferred behind the writes under way, so a requester never hears of a later command first.</summary>
    private void ReplyInOrder(IActorRef replyTo, object reply)
    {
        FlushBatch();
        DeferAsync(reply, r => replyTo.Tell(r));
    }

    private void Quiesce()
    {
        FlushBatch();
        if (_awaitingWrite.Count == 0)
        {
            Settle();
            return;
        }
        _quiescing = true;
        Become(Quiescing);
    }

    /// <summary>No write is in flight: <c>_state</c> is exactly what the journal holds.</summary>
    private void Settle()
    {
        if (SnapshotDue)
        {
            SaveSnapshot(_state); // immutable: the serializer turns it into a NodeSnapshot off this thread
            _nextSnapshotAt = LastSequenceNr + _settings.SnapshotEvery;
        }
        if (_stateQueries.Count > 0)
        {
            var view = _state.ToSnapshot();
            foreach (var query in _stateQueries) query.Tell(view);
            _stateQueries.Clear();
        }
        if (!_quiescing) return;
        _quiescing = false;
        Become(Serving);
        Stash.UnstashAll();
    }

    // ---- failures ------------------------------------------------------------------------------------------------

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        Context.System.EventStream.Publish(new Observed.JournalWriteFailed("node", cause.Message));
        FailWaitingRequesters(cause);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        Context.System.EventStream.Publish(new Observed.JournalWriteFailed("node", cause.Message));
        FailWaitingRequesters(cause);
        base.OnPersistRejected(cause, @event, sequenceNr);
        // _state already holds the rejected event: start over from the journal.
        Context.Stop(Self);
    }

    private void FailWaitingRequesters(Exception cause)
    {
        var error = new Failed(IpamError.Unavailable(
            $"the journal did not store node {_node}'s change ({cause.Message}); nothing was handed out"));
        var waiting = _awaitingWrite.SelectMany(r => r).Concat(_batchReplies.Select(b => b.ReplyTo)).Concat(_stateQueries);
        if (_blockRequest is { } pending) waiting = waiting.Append(pending.ReplyTo);
        foreach (var replyTo in waiting) replyTo.Tell(error);
        _awaitingWrite.Clear();
        _batchReplies.Clear();
        _stateQueries.Clear();
    }

    private sealed record BlockRequestTimedOut(long Id) : INoSerializationVerificationNeeded;
}
