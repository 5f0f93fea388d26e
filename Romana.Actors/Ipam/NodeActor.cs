using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using static Romana.Actors.Ipam.IpamMessages;
using static Romana.Actors.Ipam.NodeMessages;
using static Romana.Actors.Ipam.SubnetMessages;

namespace Romana.Actors.Ipam;

/// <summary>
/// The pod addresses of one node: a thin shell that persists what <see cref="NodeState"/> decides and replies only
/// after the journal has stored it.
///
/// Throughput: commands are decided on <c>_state</c>, which already holds the events whose write is under way. While
/// a write is in flight, new allocations gather in <c>_batch</c>; when it completes they are persisted together as one
/// <see cref="NodeMessages.AddressesAllocated"/> event (one journal row, one tag row), and each requester is answered
/// once that event is stored. Any other write or answer first flushes the batch, so answers keep their order.
/// <c>_confirmed</c> holds exactly what the journal stored; snapshots are taken of it. A failed write answers every
/// requester still waiting with an error and stops the actor; its supervisor restarts it from the journal, so an
/// address whose event was not stored was never handed out and is free again.
/// </summary>
public sealed class NodeActor : ReceivePersistentActor, IWithTimers
{
    private readonly NodeName _node;
    private readonly IActorRef _subnet;
    private readonly IpamSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Queue<IReadOnlyList<IActorRef>> _awaitingWrite = new();
    private readonly List<(AllocatedAddress Address, IActorRef ReplyTo)> _batch = new();
    private NodeState _confirmed;
    private NodeState _state;
    private (AllocateAddress Command, IActorRef ReplyTo, long Id)? _blockRequest;
    private long _blockRequests;

    public NodeActor(NodeName node, int blockPrefixLength, IActorRef subnet, IpamSettings settings, IClock clock)
    {
        _node = node;
        _subnet = subnet;
        _settings = settings;
        _clock = clock;
        _confirmed = _state = NodeState.Empty(node, blockPrefixLength);

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is NodeSnapshot snapshot) _confirmed = NodeState.FromSnapshot(snapshot);
        });
        Recover<NodeEvent>(e => _confirmed = _confirmed.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            _state = _confirmed;
            _subnet.Tell(new GetReservations(_node));
        });
        Serving();
    }

    public static Props Props(NodeName node, int blockPrefixLength, IActorRef subnet, IpamSettings settings, IClock clock) =>
        Akka.Actor.Props.Create(() => new NodeActor(node, blockPrefixLength, subnet, settings, clock));

    public override string PersistenceId => $"node-{_node.Value}";
    public ITimerScheduler Timers { get; set; } = null!;

    private DateTimeOffset Now => _clock.Now;

    private void Serving()
    {
        Command<AllocateAddress>(command => Allocate(command, Sender));
        Command<ReleaseAddress>(command =>
            Conclude(_state.DecideRelease(command.Key, command.Reason, Now), Sender, Succeeded.Instance, e => new Failed(e)));
        Command<RetireNode>(command =>
        {
            var decision = _state.DecideRetire(command.Reason, Now);
            ImmutableArray<AllocationKey> released = decision is NodeDecision.Record r ? [.. r.Events.OfType<AddressReleased>().Select(e => e.Key)] : [];
            Conclude(decision, Sender, new NodeRetired(_node, released), e => new Failed(e));
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
        Command<NoBlockAvailable>(none => EndBlockRequest(failure: IpamError.Exhausted($"node {_node} has no free address, and {none.Why}")));
        Command<Failed>(failed => EndBlockRequest(failure: failed.Error));
        Command<BlockRequestTimedOut>(timeout =>
        {
            if (_blockRequest?.Id == timeout.Id)
                EndBlockRequest(failure: IpamError.Unavailable($"subnet of node {_node} did not grant a block within {_settings.AskTimeout.TotalSeconds:0.#}s"));
        });
        SubnetProtocol();
        CommandAny(_ => Stash.Stash());
    }

    /// <summary>Handled in every behaviour: a node waiting for its subnet must still answer it, or both would wait forever.</summary>
    private void SubnetProtocol()
    {
        Command<SurrenderBlock>(command =>
            Conclude(_state.DecideSurrender(command.Block, command.ForNode, Now), Sender, new BlockSurrendered(_node, command.Block),
                _ => new BlockInUse(_node, command.Block, _state.Blocks.TryGetValue(command.Block.Network, out var u) ? u.Allocated : 0)));
        Command<FenceRange>(command =>
            Conclude(_state.DecideFence(command.Range, Now), Sender, new RangeFenceResult(_node, command.Range, null),
                e => new RangeFenceResult(_node, command.Range, e)));
        Command<UnfenceRange>(command =>
            Conclude(_state.DecideUnfence(command.Range, command.Restore, Now), Sender, new RangeUnfencedAck(_node, command.Range), e => new Failed(e)));
        Command<ReservationsNow>(now => Conclude(_state.DecideSyncFences(now.Reservations, Now), null, null, _ => null));
        Command<BlockGranted>(Adopt);
        Command<GetNodeState>(_ =>
        {
            var replyTo = Sender;
            FlushBatch();
            DeferAsync(_node, _ => replyTo.Tell(_confirmed.ToSnapshot()));
        });
        Command<SaveSnapshotSuccess>(saved => DeleteSnapshots(new SnapshotSelectionCriteria(saved.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(failed => _log.Warning(failed.Cause, "Node {0}: snapshot at {1} not saved; recovery replays more events", _node, failed.Metadata.SequenceNr));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(failed => _log.Warning(failed.Cause, "Node {0}: older snapshots not deleted", _node));
    }

    private void Allocate(AllocateAddress command, IActorRef replyTo)
    {
        switch (_state.DecideAllocate(command.Key, command.Pod, Now))
        {
            case NodeDecision.Record record:
                _state = _state.Apply(record.Events[0]);
                _batch.Add((((AddressesAllocated)record.Events[0]).Addresses[0], replyTo));
                if (_awaitingWrite.Count == 0) FlushBatch();
                break;
            case NodeDecision.AlreadyHeld held:
                ReplyInOrder(replyTo, new AddressAssigned(_node, command.Key, held.Allocation.Address));
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

    /// <summary>Persists what was decided and replies <paramref name="onRecorded"/>; answers without events keep their order.</summary>
    private void Conclude(NodeDecision decision, IActorRef? replyTo, object? onRecorded, Func<IpamError, object?> onRefused)
    {
        switch (decision)
        {
            case NodeDecision.Record record:
                Record(record, replyTo, onRecorded);
                break;
            case NodeDecision.Refuse refuse:
                if (replyTo is not null && onRefused(refuse.Error) is { } refusal) ReplyInOrder(replyTo, refusal);
                break;
            default:
                if (replyTo is not null && onRecorded is not null) ReplyInOrder(replyTo, onRecorded);
                break;
        }
    }

    private void Record(NodeDecision.Record record, IActorRef? replyTo, object? reply)
    {
        FlushBatch();
        foreach (var e in record.Events) _state = _state.Apply(e);
        Write(record.Events, replyTo is null ? [] : [replyTo], () =>
        {
            if (reply is not null) replyTo?.Tell(reply);
        });
    }

    private void FlushBatch()
    {
        if (_batch.Count == 0) return;
        var batch = _batch.ToList();
        _batch.Clear();
        var allocated = new AddressesAllocated(_node, [.. batch.Select(b => b.Address)], Now, "allocated");
        Write([allocated], [.. batch.Select(b => b.ReplyTo)], () =>
        {
            foreach (var (address, replyTo) in batch) replyTo.Tell(new AddressAssigned(_node, address.Key, address.Address));
        });
    }

    /// <summary>Persists, then runs <paramref name="stored"/>; when no write is left in flight, the gathered allocations follow.</summary>
    private void Write(IReadOnlyList<NodeEvent> events, IReadOnlyList<IActorRef> requesters, Action stored)
    {
        _awaitingWrite.Enqueue(requesters);
        var left = events.Count;
        PersistAllAsync(events, e =>
        {
            _confirmed = _confirmed.Apply(e);
            if (LastSequenceNr % _settings.SnapshotEvery == 0) SaveSnapshot(_confirmed.ToSnapshot());
            if (--left > 0) return;
            _awaitingWrite.Dequeue();
            stored();
            if (_awaitingWrite.Count == 0) FlushBatch();
        });
    }

    /// <summary>Deferred behind the writes under way, so a requester never hears of a later command first.</summary>
    private void ReplyInOrder(IActorRef replyTo, object reply)
    {
        FlushBatch();
        DeferAsync(reply, r => replyTo.Tell(r));
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        FailWaitingRequesters(cause);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        FailWaitingRequesters(cause);
        base.OnPersistRejected(cause, @event, sequenceNr);
        // _state already holds the rejected event: start over from the journal.
        Context.Stop(Self);
    }

    private void FailWaitingRequesters(Exception cause)
    {
        var error = new Failed(IpamError.Unavailable($"the journal did not store node {_node}'s change ({cause.Message}); nothing was handed out"));
        foreach (var replyTo in _awaitingWrite.SelectMany(r => r).Concat(_batch.Select(b => b.ReplyTo))) replyTo.Tell(error);
        _awaitingWrite.Clear();
        _batch.Clear();
        if (_blockRequest is { } pending) pending.ReplyTo.Tell(error);
    }

    private sealed record BlockRequestTimedOut(long Id);
}
