using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Observability;
using Romana.Actors.Persistence;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.NodeMessages;
using static Romana.Actors.Ipam.SubnetMessages;
using Failed = Romana.Actors.Ipam.IpamMessages.Failed;
using Succeeded = Romana.Actors.Ipam.IpamMessages.Succeeded;

namespace Romana.Actors.Ipam;

/*
 * Reclaiming an empty block under pressure: the protocol between SubnetActor and NodeActor.
 *
 *  1. Node N has no free address. It sends RequestBlock(N, the blocks it holds) and stashes further allocations,
 *     but keeps answering its subnet's messages (SurrenderBlock, FenceRange, ...), so the two never wait on each other.
 *  2. The subnet handles one request at a time. It grants the lowest unowned block that has a usable address:
 *     BlockAssigned is persisted first, then BlockGranted is sent, and N persists BlockAdopted before using it.
 *  3. If there is none, the candidates are the blocks of other nodes that have a usable address, lowest first.
 *     The subnet becomes busy (it stashes every other command) and asks the owner M of the first candidate B:
 *     SurrenderBlock(B).
 *  4. M decides on its state, which already contains the allocations whose write is still under way. If B holds
 *     any address, M answers BlockInUse. Otherwise M removes B from its state at once and persists BlockReturned(B);
 *     only after the journal stored it does M answer BlockSurrendered. An actor handles one message at a time, so
 *     every allocation of M is decided either before the surrender (then B is not empty and is refused) or after it
 *     (then B is no longer M's and M cannot allocate in it).
 *  5. Only on BlockSurrendered does the subnet persist BlockReclaimed(B, M) and BlockAssigned(B, N) and then grant
 *     B to N. On BlockInUse, or no answer in time, it asks about the next candidate; when none is left, N answers
 *     its requester "exhausted".
 *
 * Crash windows. M returned B but the subnet did not record it: the subnet still lists B under M; asking M again is
 * answered BlockSurrendered at once, because M no longer holds B. The subnet assigned B to N but N did not adopt it:
 * N's next RequestBlock lists the blocks N holds, and the subnet grants B to N again. So at any time at most one
 * node's journal holds a block, and only that node hands out its addresses: never one address twice.
 *
 * Reservations use the same shape: the nodes owning blocks that a new range touches fence it (refusing when one of
 * its addresses is held, persisting RangeFenced otherwise) before the subnet persists RangeReserved. Lifting a
 * reservation persists RangeUnreserved first and then unfences, so a cut-short lift leaves a fence too many, never
 * one too few; a node drops such stale fences when it next recovers (GetReservations).
 *
 * A reservation is decided by the reservation ledger (ReservationLedger.cs, where its two phases are written), and may
 * span subnets: each subnet it touches records it whole. Phase one, HoldRange: the owners fence it as above, but the
 * subnet records nothing; it keeps the range as a hold (in memory) that its grants respect like a reservation, and
 * answers RangeHeld. Phase two, Reserve: the same fencing again (a no-op for fences already up) and RangeReserved,
 * which ends the hold. A refused hold elsewhere ends in ReleaseHold, which unfences and answers once the owners did (so
 * a refused reservation withholds no address once the requester has its answer); a hold never recorded expires.
 */

/// <summary>
/// One VPC subnet: member nodes, block ownership and reservations. Local placement: parent of its nodes' actors.
/// Cluster placement: a sharded entity; each node's daemon claims its node (<see cref="AddNode"/> with a holder, again
/// every romana.ipam.cluster.register-interval) and the subnet speaks to the node through that holder, which it watches.
/// A second live holder of a node is refused. After the entity starts (or moves) it waits a few register intervals
/// before it lets a new holder claim a member, or removes a member: by then every live holder has announced itself again.
/// Every persisted change is published as <see cref="OwnershipFeed.OwnershipChanged"/>.
/// </summary>
public sealed class SubnetActor : ReceivePersistentActor, IWithTimers
{
    private readonly SubnetLayout _layout;
    private readonly IpamSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<NodeName, IActorRef> _nodes = new();
    private readonly IpamPlacement _placement;
    /// <summary>Cluster placement: node actors this subnet runs itself, only to retire a node that is gone.</summary>
    private readonly HashSet<NodeName> _retiring = new();
    /// <summary>Cluster placement: the holders had time to announce themselves since the entity started.</summary>
    private bool _settled;
    private SubnetState _state;
    private int _incarnations;
    private IActorRef? _awaitingWrite;

    public SubnetActor(SubnetLayout layout, int blockPrefixLength, IpamSettings settings, IClock clock,
        IpamPlacement placement = IpamPlacement.Local)
    {
        _placement = placement;
        _layout = layout;
        _settings = settings;
        _clock = clock;
        _state = SubnetState.Empty(layout.Id, layout.PodPrefix, blockPrefixLength);

        Recover<SnapshotOffer>(offer => _state = SubnetState.FromSnapshot(SnapshotRecord.As<SubnetSnapshot>(offer, PersistenceId)));
        Recover<IIpamEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            if (_placement == IpamPlacement.Local)
                foreach (var node in _state.Members.Keys) StartNode(node);
            else
            {
                Timers.StartSingleTimer("settle", new Settled(), settings.RegisterInterval * 3);
                Publish();
            }
        });
        Ready();
    }

    public static Props Props(SubnetLayout layout, int blockPrefixLength, IpamSettings settings, IClock clock,
        IpamPlacement placement = IpamPlacement.Local) =>
        Akka.Actor.Props.Create(() => new SubnetActor(layout, blockPrefixLength, settings, clock, placement));

    public ITimerScheduler Timers { get; set; } = null!;

    public override string PersistenceId => $"subnet-{_layout.Id.Value}";

    private DateTimeOffset Now => _clock.Now;

    private void Ready()
    {
        Command<AddNode>(AddNode);
        Command<RemoveNode>(RemoveNode);
        Command<RequestBlock>(RequestBlock);
        Command<Reserve>(command => Reserve(command.Range, hold: false, command.Reason));
        Command<HoldRange>(command => Reserve(command.Range, hold: true, "held"));
        Command<ReleaseHold>(command => ReleaseHeld(command.Range, command.Reason, Sender));
        Command<HoldExpired>(expired => ReleaseHeld(expired.Range,
            $"held {HoldFor.TotalSeconds:0.#}s without being recorded", ActorRefs.Nobody));
        Command<Unreserve>(Unreserve);
        Command<GetRecordedReservations>(_ => Sender.Tell(new ReservationsRecorded(_layout.Id, [.. _state.Reservations])));
        Command<GetMembers>(_ => Sender.Tell(new Members(_layout.Id,
            [.. _state.Members.Select(m => new Member(m.Key, m.Value, _nodes.GetValueOrDefault(m.Key, ActorRefs.Nobody)))])));
        Command<GetReservations>(_ => Sender.Tell(new ReservationsNow(_state.FenceList)));
        Command<GetSubnetState>(_ => Sender.Tell(_state.ToSnapshot()));
        SnapshotHousekeeping();
    }

    /// <summary>
    /// A protocol with the subnet's nodes under way (<see cref="Protocol"/>);
    /// its answers come back as <see cref="Answered"/>.
    /// </summary>
    private abstract record Protocol(IActorRef ReplyTo)
    {
        /// <summary>RemoveNode: the node releases its addresses and returns its blocks before the subnet lets it go.</summary>
        public sealed record Retiring(RemoveNode Command, IActorRef Requester) : Protocol(Requester);
        /// <summary>RequestBlock under pressure: candidates' owners are asked one after another to surrender an empty block.</summary>
        public sealed record Reclaiming(NodeName ForNode, ImmutableArray<(Ipv4Cidr Block, NodeName Owner)> Candidates, int Next,
            IActorRef Requester)
            : Protocol(Requester);
        /// <summary>
        /// Reserve or HoldRange: every node owning a block the range touches fences it; all must agree before the
        /// reservation is stored (<paramref name="Hold"/>: held in memory instead).
        /// </summary>
        public sealed record Fencing(Ipv4Cidr Range, bool Hold, string Reason, int Asked, ImmutableHashSet<NodeName> Waiting,
            ImmutableArray<RangeFenceResult> Results, IActorRef Requester)
            : Protocol(Requester);
        /// <summary>
        /// Unreserve once stored, a hold released, a fencing aborted: the owners lift their fences (a node that does not
        /// answer drops it when it recovers), then the requester gets <paramref name="Answer"/>. Answering only then means a
        /// refused or lifted reservation withholds no address once its answer is out.
        /// </summary>
        public sealed record Unfencing(Ipv4Cidr Range, ImmutableHashSet<NodeName> Waiting, IActorRef Requester, object Answer)
            : Protocol(Requester);
    }

    /// <summary>A node's answer to the protocol under way; null when none came in time.</summary>
    private sealed record Answered(NodeName Node, object? Reply) : INoSerializationVerificationNeeded;

    private sealed record Settled : INoSerializationVerificationNeeded;

    private sealed record HoldExpired(Ipv4Cidr Range) : INoSerializationVerificationNeeded;

    /// <summary>How long a range stays held without being recorded: longer than the ledger's two phases take.</summary>
    private TimeSpan HoldFor => _settings.AskTimeout * 6;

    private static string HoldTimer(Ipv4Cidr range) => $"hold-{range}";

    private Protocol? _protocol;

    private void Ask(NodeName node, object request)
    {
        if (!_nodes.TryGetValue(node, out var actor))
        {
            Self.Tell(new Answered(node, null)); // no daemon holds the node now: as if it did not answer
            return;
        }
        actor.Ask<object>(request, _settings.AskTimeout)
            .PipeTo(Self, success: reply => new Answered(node, reply), failure: _ => new Answered(node, null));
    }

    /// <summary>During a protocol only its own steps run; every other command waits, so decisions never interleave.</summary>
    private void Busy()
    {
        Command<Answered>(answered =>
        {
            switch (_protocol)
            {
                case Protocol.Retiring retiring: Retired(retiring, answered.Reply); break;
                case Protocol.Reclaiming reclaiming: Surrendered(reclaiming, answered.Reply); break;
                case Protocol.Fencing fencing: Fenced(fencing, answered); break;
                case Protocol.Unfencing unfencing: Unfenced(unfencing, answered.Node); break;
            }
        });
        SnapshotHousekeeping();
        CommandAny(_ => Stash.Stash());
    }

    private void BeginProtocol(Protocol protocol)
    {
        _protocol = protocol;
        Become(Busy);
    }

    private void EndProtocol()
    {
        _protocol = null;
        Become(Ready);
        Stash.UnstashAll();
    }

    private void AddNode(AddNode command)
    {
        var replyTo = Sender;
        if (command.Holder is { } holder && ClaimRefusal(command.Node, holder) is { } refusal)
        {
            replyTo.Tell(new Failed(refusal));
            return;
        }
        var (joined, error) = _state.DecideAddNode(command.Node, command.Endpoint, Now, command.Reason);
        if (error is not null) replyTo.Tell(new Failed(error));
        else if (command.Holder is { } claimant)
        {
            Hold(command.Node, claimant);
            if (joined is null) replyTo.Tell(new NodeAdded(command.Node, claimant));
            else Record([joined], replyTo, () => replyTo.Tell(new NodeAdded(command.Node, claimant)));
        }
        else if (_placement == IpamPlacement.Cluster)
        {
            // Membership only (the Kubernetes Node watch): the node's actor runs in its own daemon, which claims the node.
            var held = _nodes.GetValueOrDefault(command.Node) ?? ActorRefs.Nobody;
            if (joined is null) replyTo.Tell(new NodeAdded(command.Node, held));
            else Record([joined], replyTo, () => replyTo.Tell(new NodeAdded(command.Node, held)));
        }
        else if (joined is null) replyTo.Tell(new NodeAdded(command.Node, _nodes[command.Node]));
        else Record([joined], replyTo, () => replyTo.Tell(new NodeAdded(command.Node, StartNode(command.Node))));
    }

    /// <summary>Why <paramref name="holder"/> may not hold the node now, or null: one live holder per node, cluster-wide.</summary>
    private IpamError? ClaimRefusal(NodeName node, IActorRef holder)
    {
        if (_nodes.TryGetValue(node, out var held))
        {
            if (held.Equals(holder)) return null;
            return _retiring.Contains(node)
                ? IpamError.Conflict($"node {node} is being removed from subnet {_layout.Id}; try again when it is gone")
                : IpamError.Conflict($"node {node} is already held by the live daemon at {held.Path.Address}; " +
                    "a second daemon with the same romana.node.name is refused");
        }
        return !_settled && _state.Members.ContainsKey(node)
            ? IpamError.Unavailable($"subnet {_layout.Id} has just started and waits for its nodes' daemons to announce themselves; " +
                "retrying is safe")
            : null;
    }

    private void Hold(NodeName node, IActorRef holder)
    {
        if (_nodes.TryGetValue(node, out var held) && held.Equals(holder)) return;
        _nodes[node] = holder;
        Context.Watch(holder);
        _log.Info("Subnet {0}: node {1} held by {2}", _layout.Id, node, holder.Path);
    }

    private void RemoveNode(RemoveNode command)
    {
        if (!_state.Members.ContainsKey(command.Node))
        {
            Sender.Tell(new Failed(IpamError.NotFound($"node {command.Node} is not a member of subnet {_layout.Id}")));
            return;
        }
        if (_placement == IpamPlacement.Cluster)
        {
            // A node that leaves releases nothing: removal is for a node whose daemon is gone, and retires it from its journal here.
            if (_nodes.TryGetValue(command.Node, out var holder))
            {
                Sender.Tell(new Failed(IpamError.Conflict($"node {command.Node} is held by the live daemon at {holder.Path.Address}; " +
                    "stop that daemon first")));
                return;
            }
            if (!_settled)
            {
                Sender.Tell(new Failed(IpamError.Unavailable(
                    $"subnet {_layout.Id} has just started and waits for its nodes' daemons to announce themselves; retrying is safe")));
                return;
            }
            _retiring.Add(command.Node);
            StartNode(command.Node);
        }
        BeginProtocol(new Protocol.Retiring(command, Sender));
        Ask(command.Node, new RetireNode(command.Node, command.Reason));
    }

    /// <summary>Cluster placement: a holder stopped (its daemon stopped, or left the cluster). Its node keeps everything.</summary>
    private void HolderGone(IActorRef holder)
    {
        foreach (var node in _nodes.Where(n => n.Value.Equals(holder) && !_retiring.Contains(n.Key)).Select(n => n.Key).ToList())
        {
            _nodes.Remove(node);
            _log.Info("Subnet {0}: the daemon of node {1} is gone; its blocks and addresses stay its own", _layout.Id, node);
        }
    }

    private void StopRetiring(NodeName node)
    {
        if (!_retiring.Remove(node) || !_nodes.Remove(node, out var actor)) return;
        Context.Stop(actor);
    }

    private void Retired(Protocol.Retiring retiring, object? reply)
    {
        var (command, replyTo) = (retiring.Command, retiring.ReplyTo);
        if (reply is not NodeRetired retired)
        {
            StopRetiring(command.Node);
            replyTo.Tell(reply as Failed
                ?? new Failed(IpamError.Unavailable($"node {command.Node} did not confirm it released its addresses")));
            EndProtocol();
            return;
        }
        Record(_state.DecideNodeLeft(command.Node, command.Reason, Now), replyTo, () =>
        {
            _retiring.Remove(command.Node);
            if (_nodes.Remove(command.Node, out var actor)) Context.Stop(actor);
            replyTo.Tell(new NodeRemoved(command.Node, retired.Released));
            EndProtocol();
        });
    }

    private void RequestBlock(RequestBlock command)
    {
        var replyTo = Sender;
        switch (_state.DecideBlockFor(command.Node, command.Held, Now))
        {
            case BlockDecision.Refuse refuse:
                replyTo.Tell(new Failed(refuse.Error));
                break;
            case BlockDecision.Regrant regrant:
                replyTo.Tell(Grant(regrant.Block));
                break;
            case BlockDecision.Assign assign:
                Record([assign.Event], replyTo, () => replyTo.Tell(Grant(assign.Block)));
                break;
            case BlockDecision.Exhausted exhausted:
                replyTo.Tell(new NoBlockAvailable(exhausted.Why));
                break;
            case BlockDecision.Reclaim reclaim:
                TryReclaim(new Protocol.Reclaiming(command.Node, reclaim.Candidates, 0, replyTo));
                break;
        }
    }

    private void TryReclaim(Protocol.Reclaiming reclaiming)
    {
        if (reclaiming.Next == reclaiming.Candidates.Length)
        {
            reclaiming.ReplyTo.Tell(new NoBlockAvailable($"every block of subnet {_layout.Id} ({_layout.PodPrefix}) holds addresses"));
            EndProtocol();
            return;
        }
        BeginProtocol(reclaiming);
        var (block, owner) = reclaiming.Candidates[reclaiming.Next];
        Ask(owner, new SurrenderBlock(block, reclaiming.ForNode));
    }

    private void Surrendered(Protocol.Reclaiming reclaiming, object? reply)
    {
        if (reply is not BlockSurrendered)
        {
            TryReclaim(reclaiming with { Next = reclaiming.Next + 1 });
            return;
        }
        var (block, owner) = reclaiming.Candidates[reclaiming.Next];
        _log.Info("Subnet {0}: empty block {1} reclaimed from node {2} for node {3}", _layout.Id, block, owner, reclaiming.ForNode);
        Record(_state.DecideReclaimed(block, owner, reclaiming.ForNode, Now), reclaiming.ReplyTo, () =>
        {
            reclaiming.ReplyTo.Tell(Grant(block));
            EndProtocol();
        });
    }

    private void Reserve(Ipv4Cidr range, bool hold, string reason)
    {
        var replyTo = Sender;
        var (mustFence, error, alreadyReserved) = _state.DecideReserve(range);
        if (error is not null)
        {
            replyTo.Tell(new Failed(error));
            return;
        }
        if (alreadyReserved)
        {
            replyTo.Tell(hold ? new RangeHeld(_layout.Id, range) : Succeeded.Instance);
            return;
        }
        var fencing = new Protocol.Fencing(range, hold, reason, mustFence.Length, [.. mustFence], [], replyTo);
        BeginProtocol(fencing);
        if (mustFence.IsEmpty) FencesUp(fencing);
        else foreach (var node in mustFence) Ask(node, new FenceRange(range));
    }

    private void Fenced(Protocol.Fencing fencing, Answered answered)
    {
        var results = answered.Reply is RangeFenceResult result ? fencing.Results.Add(result) : fencing.Results;
        fencing = fencing with { Waiting = fencing.Waiting.Remove(answered.Node), Results = results };
        _protocol = fencing;
        if (!fencing.Waiting.IsEmpty) return;
        var fenced = fencing.Results.Where(r => r.Conflict is null).Select(r => r.Node).ToList();
        if (fenced.Count == fencing.Asked)
        {
            FencesUp(fencing);
            return;
        }
        // Abort: lift the fences that were put up, keeping the smaller reservations the range would have absorbed.
        var conflict = fencing.Results.Select(r => r.Conflict).FirstOrDefault(c => c is not null)
            ?? IpamError.Unavailable($"a node of subnet {_layout.Id} did not answer; reservation {fencing.Range} not made");
        LiftFences(fencing.Range, [.. fenced], fencing.ReplyTo, new Failed(conflict));
    }

    /// <summary>Every owner fenced the range: record it, or (phase one of the ledger) hold it.</summary>
    private void FencesUp(Protocol.Fencing fencing)
    {
        if (fencing.Hold)
        {
            _state = _state.WithHold(fencing.Range);
            Timers.StartSingleTimer(HoldTimer(fencing.Range), new HoldExpired(fencing.Range), HoldFor);
            fencing.ReplyTo.Tell(new RangeHeld(_layout.Id, fencing.Range));
            EndProtocol();
            return;
        }
        Record([_state.Reserved(fencing.Range, Now, fencing.Reason)], fencing.ReplyTo, () =>
        {
            Timers.Cancel(HoldTimer(fencing.Range));
            fencing.ReplyTo.Tell(Succeeded.Instance);
            EndProtocol();
        });
    }

    /// <summary>A hold that will not be recorded: the owners lift its fences, unless a recorded reservation covers it.</summary>
    private void ReleaseHeld(Ipv4Cidr range, string reason, IActorRef replyTo)
    {
        if (!_state.Holds.Contains(range))
        {
            replyTo.Tell(Succeeded.Instance);
            return;
        }
        Timers.Cancel(HoldTimer(range));
        _state = _state.WithoutHold(range);
        _log.Info("Subnet {0}: hold of {1} released ({2})", _layout.Id, range, reason);
        if (_state.Reservations.Any(r => r.Contains(range)) || _state.Holds.Any(h => h.Contains(range)))
            replyTo.Tell(Succeeded.Instance);
        else LiftFences(range, OwnersTouching(range), replyTo, Succeeded.Instance);
    }

    private ImmutableArray<NodeName> OwnersTouching(Ipv4Cidr range) =>
        [.. _state.Owners.Where(o => range.Overlaps(new Ipv4Cidr(o.Key, _state.BlockPrefixLength))).Select(o => o.Value).Distinct()];

    /// <summary>
    /// The owners lift the range's fences, keeping the reservations inside it; once each answered, the requester gets the answer.
    /// </summary>
    private void LiftFences(Ipv4Cidr range, ImmutableArray<NodeName> owners, IActorRef replyTo, object answer)
    {
        var unfencing = new Protocol.Unfencing(range, [.. owners], replyTo, answer);
        BeginProtocol(unfencing);
        var keep = _state.KeptInside(range);
        foreach (var node in unfencing.Waiting) Ask(node, new UnfenceRange(range, keep));
        if (unfencing.Waiting.IsEmpty) Unfenced(unfencing, null);
    }

    private void Unreserve(Unreserve command)
    {
        var replyTo = Sender;
        if (!_state.Reservations.Contains(command.Range))
        {
            replyTo.Tell(new Failed(IpamError.NotFound($"no reservation is exactly {command.Range} in subnet {_layout.Id}")));
            return;
        }
        BeginProtocol(new Protocol.Unfencing(command.Range, [], replyTo, Succeeded.Instance));
        Record([new RangeUnreserved(_layout.Id, command.Range, Now, command.Reason)], replyTo,
            () => LiftFences(command.Range, OwnersTouching(command.Range), replyTo, Succeeded.Instance));
    }

    private void Unfenced(Protocol.Unfencing unfencing, NodeName? node)
    {
        unfencing = unfencing with { Waiting = node is { } answered ? unfencing.Waiting.Remove(answered) : unfencing.Waiting };
        _protocol = unfencing;
        if (!unfencing.Waiting.IsEmpty) return;
        unfencing.ReplyTo.Tell(unfencing.Answer);
        EndProtocol();
    }

    private BlockGranted Grant(Ipv4Cidr block) => new(block, _state.ReservationsIn(block));

    private void Record(ImmutableArray<object> events, IActorRef replyTo, Action then)
    {
        _awaitingWrite = replyTo;
        var left = events.Length;
        var started = Stopwatch.GetTimestamp();
        PersistAll(events, e =>
        {
            _state = _state.Apply(e);
            Context.System.EventStream.Publish(e);
            if (LastSequenceNr % _settings.SnapshotEvery == 0) SaveSnapshot(_state); // immutable: serialized off this thread
            if (--left > 0) return;
            Context.System.EventStream.Publish(new Observed.JournalWritten("subnet", Stopwatch.GetElapsedTime(started)));
            _awaitingWrite = null;
            Publish();
            then();
        });
    }

    /// <summary>The actor stops after this; its supervisor brings it back from the journal.</summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        Context.System.EventStream.Publish(new Observed.JournalWriteFailed("subnet", cause.Message));
        FailWaitingRequester(cause);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    /// <summary>Nothing was applied: the subnet answers with the failure and goes on.</summary>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        Context.System.EventStream.Publish(new Observed.JournalWriteFailed("subnet", cause.Message));
        base.OnPersistRejected(cause, @event, sequenceNr);
        FailWaitingRequester(cause);
        EndProtocol();
    }

    private void FailWaitingRequester(Exception cause)
    {
        _awaitingWrite?.Tell(new Failed(IpamError.Unavailable(
            $"the journal did not store subnet {_layout.Id}'s change ({cause.Message}); nothing was changed")));
        _awaitingWrite = null;
    }

    private IActorRef StartNode(NodeName node)
    {
        var props = Supervision.RestartingOnStop(NodeActor.Props(node, _state.BlockPrefixLength, Self, _settings, _clock),
            $"node {node}'s actor", _settings);
        var actor = Context.ActorOf(props, $"node-{Uri.EscapeDataString(node.Value)}-{++_incarnations}");
        _nodes[node] = actor;
        return actor;
    }

    /// <summary>Tells the host agents (and anyone subscribed) what the subnet holds now.</summary>
    private void Publish()
    {
        var changed = new OwnershipFeed.OwnershipChanged(_state.ToSnapshot());
        if (_placement == IpamPlacement.Cluster)
            DistributedPubSub.Get(Context.System).Mediator.Tell(new Publish(OwnershipFeed.Topic(_layout.Id), changed));
        else Context.System.EventStream.Publish(changed);
    }

    /// <summary>Handled in every behaviour: snapshots, and (cluster) the holders' lives.</summary>
    private void SnapshotHousekeeping()
    {
        Command<Terminated>(terminated => HolderGone(terminated.ActorRef));
        Command<Settled>(_ => _settled = true);
        Command<SaveSnapshotSuccess>(saved => DeleteSnapshots(new SnapshotSelectionCriteria(saved.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(failed => _log.Warning(failed.Cause, "Subnet {0}: snapshot not saved", _layout.Id));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }
}
