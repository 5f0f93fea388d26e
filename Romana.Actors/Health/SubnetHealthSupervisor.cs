using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Observability;
using Romana.Actors.Routing;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Health;

/// <summary>
/// The forwarder supervisor of one subnet: it runs a probe per node (restarted when it crashes), judges nodes failed
/// or recovered from their probes and, where the node is a cluster member, from Akka cluster reachability; it
/// tells the route manager each judgement, which moves the routes, and persists it meanwhile (tag "health").
///
/// Standby repair (with EC2 access, as every cluster daemon has): the route manager acknowledges a failure on receipt
/// (<see cref="FailoverNoted"/>) and keeps the supervisor told which of Romana's routes go through the subnet's nodes
/// (<see cref="RoutesThrough"/>). When no acknowledgement comes within standby-repair-after, or the routes still point at
/// the failed node standby-repair-check after one did (the manager died during its pass), the supervisor moves those
/// routes itself (<see cref="StandbyRepair"/>) and records it (<see cref="ForwarderRoutesMovedByStandby"/>): a route
/// singleton whose host died is replaced only once the cluster has downed that host, many seconds later.
/// </summary>
public sealed class SubnetHealthSupervisor : ReceivePersistentActor, IWithTimers
{
    private readonly SubnetId _subnet;
    private readonly IHealthProbe _probe;
    private readonly HealthSettings _settings;
    private readonly IActorRef _routeManager;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<NodeName, (Ipv4 Ip, IActorRef Probe, string? Member)> _watched = new();
    private SubnetHealthState _state;
    private readonly List<(IActorRef ReplyTo, long Id, int Left)> _syncs = new();
    private long _syncId;
    private readonly IEc2RouteTables? _ec2;
    private RoutesThrough? _routesThrough;
    private readonly Dictionary<NodeName, Standby> _standby = new();

    /// <param name="members">
    /// Where this supervisor learns its subnet's nodes when it starts (the member's <see cref="Routing.OwnershipView"/>), or
    /// null: a new incarnation (the cluster moved it after its member died) must watch a node whose daemon died with or
    /// before that member, since such a daemon never registers again.
    /// </param>
    /// <param name="ec2">EC2 for the standby repair; null (plan, simulate: the route manager runs in this process) turns it off.</param>
    public SubnetHealthSupervisor(SubnetId subnet, IHealthProbe probe, HealthSettings settings, IActorRef routeManager, IClock clock,
        IActorRef? members = null, IEc2RouteTables? ec2 = null)
    {
        _ec2 = ec2;
        _subnet = subnet;
        _probe = probe;
        _settings = settings;
        _routeManager = routeManager;
        _clock = clock;
        _state = SubnetHealthState.Empty(subnet);

        Recover<IHealthEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            // Where the cluster placed each subnet's judge, for whoever reads the logs after a failure (and the lab's tests).
            _log.Info("Subnet {0}: forwarder supervisor running here ({1} nodes judged failed)", _subnet, _state.Failed.Count);
            members?.Ask<object>(new Routing.OwnershipView.ReadSubnet(subnet), _settings.ProbeTimeout * 10).PipeTo(Self,
                failure: e => new Akka.Actor.Status.Failure(e));
            Timers.StartPeriodicTimer("status", new SendStatus(), _settings.StatusInterval);
            if (_ec2 is null)
                _log.Info("Subnet {0}: no EC2 access here, so no standby repair: routes move only when the route manager moves them",
                    _subnet);
        });

        Command<WatchNode>(Watch);
        Command<UnwatchNode>(command =>
        {
            if (!_watched.Remove(command.Node, out var watched)) return;
            Context.Stop(watched.Probe);
            if (_state.DecideUnwatch(command.Node, _clock.Now) is { } recovered) Act(recovered);
            else Status();
        });
        Command<ProbeJudged>(judged => Judge(judged.Node, judged.Healthy,
            judged.Healthy ? $"{judged.Consecutive} probes in a row answered" : $"{judged.Consecutive} probes in a row unanswered"));
        Command<ClusterEvent.UnreachableMember>(unreachable =>
        {
            if (NodeAt(unreachable.Member.Address) is { } node)
                Judge(node, false, $"cluster member {unreachable.Member.Address} unreachable");
        });
        Command<ClusterEvent.ReachableMember>(_ => { }); // recovery is for the probes to confirm
        Command<ClusterEvent.IMemberEvent>(_ => { });
        Command<ClusterEvent.CurrentClusterState>(_ => { });
        Command<Routing.OwnershipView.Known>(known =>
        {
            foreach (var member in known.Subnets.Where(s => s.Subnet == _subnet).SelectMany(s => s.Members))
                Watch(new WatchNode(_subnet, member.Node, member.Ip));
        });
        Command<Routing.OwnershipView.Unknown>(_ => _log.Warning("Subnet {0}: its nodes are not known here yet; "
            + "each is watched once its daemon registers", _subnet));
        Command<Akka.Actor.Status.Failure>(failed => _log.Warning("Subnet {0}: its nodes could not be read here ({1}); "
            + "each is watched once its daemon registers", _subnet, failed.Cause.Message));
        Command<SendStatus>(_ => Status());
        Command<RoutesThrough>(routes =>
        {
            if (routes.Subnet == _subnet) _routesThrough = routes;
        });
        Command<FailoverNoted>(Noted);
        Command<StandbyDue>(due => StandbyCheck(due.Node));
        Command<StandbyDescribed>(Described);
        Command<StandbyReplaced>(Replaced);
        Command<StandbyDescribeFailed>(failed =>
        {
            _log.Warning("Subnet {0}: standby repair of {1}: DescribeRouteTables failed ({2}); trying again in {3}", _subnet,
                failed.Node, Ec2Code(failed.Cause), _settings.StandbyRepairCheck);
            CheckAgainLater(failed.Node);
        });
        Command<GetSubnetHealth>(_ => Sender.Tell(Health()));
        Command<Sync>(_ =>
        {
            if (_watched.Count == 0)
            {
                Sender.Tell(Health());
                return;
            }
            _syncs.Add((Sender, ++_syncId, _watched.Count));
            foreach (var (_, probe, _) in _watched.Values) probe.Tell(new Identify(_syncId));
        });
        Command<ActorIdentity>(identity =>
        {
            var index = _syncs.FindIndex(s => Equals(s.Id, identity.MessageId));
            if (index < 0) return;
            var (replyTo, id, left) = _syncs[index];
            if (left > 1) _syncs[index] = (replyTo, id, left - 1);
            else
            {
                _syncs.RemoveAt(index);
                replyTo.Tell(Health());
            }
        });
    }

    public static Props Props(SubnetId subnet, IHealthProbe probe, HealthSettings settings, IActorRef routeManager, IClock clock,
        IActorRef? members = null, IEc2RouteTables? ec2 = null) =>
        Akka.Actor.Props.Create(() => new SubnetHealthSupervisor(subnet, probe, settings, routeManager, clock, members, ec2));

    public override string PersistenceId => $"health-{_subnet.Value}";
    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart()
    {
        base.PreStart();
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
            Cluster.Get(Context.System)
                .Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IReachabilityEvent));
    }

    protected override void PostStop()
    {
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
            Cluster.Get(Context.System).Unsubscribe(Self);
        base.PostStop();
    }

    /// <summary>A probe that throws is restarted; its counter starts again, which errs on the side of not failing a node.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Restart);

    private void Watch(WatchNode command)
    {
        if (_watched.TryGetValue(command.Node, out var known))
        {
            // A daemon asks again (every second in a cluster, so a new incarnation learns its nodes); a new member address
            // (the daemon restarted) replaces the old one.
            if (command.Member is not null && known.Member != command.Member)
                _watched[command.Node] = known with { Member = command.Member };
            return;
        }
        var probe = Context.ActorOf(NodeProbeActor.Props(command.Node, command.Ip, _probe, _settings),
            $"probe-{Uri.EscapeDataString(command.Node.Value)}");
        _watched[command.Node] = (command.Ip, probe, command.Member);
        Status();
    }

    private void Judge(NodeName node, bool healthy, string reason)
    {
        if (_state.DecideJudgement(node, _watched.ContainsKey(node), healthy, reason, _clock.Now) is { } judgement) Act(judgement);
    }

    /// <summary>
    /// A judgement acts at once (the route manager told, the standby armed) and is written meanwhile: failover must not wait
    /// for the journal (in the lab a supervisor's write once took 10 s while the routes through a dead node waited for it).
    /// The state takes the judgement before the write, so the next probe is judged against it; a write that fails stops
    /// the supervisor, and its next incarnation recovers from the journal and judges again from fresh probes.
    /// </summary>
    private void Act(IHealthEvent e)
    {
        _state = _state.Apply(e);
        if (e is ForwarderFailed) _log.Warning("Subnet {0}: node {1} judged failed: {2}", _subnet, e.Node, e.Reason);
        else _log.Info("Subnet {0}: node {1} judged recovered: {2}", _subnet, e.Node, e.Reason);
        _routeManager.Tell(e);
        Context.System.EventStream.Publish(e);
        if (e is ForwarderFailed) StandbyWait(e.Node);
        else StandbyEnd(e.Node);
        Status();
        var started = Stopwatch.GetTimestamp();
        PersistAsync(e, _ => Context.System.EventStream.Publish(new Observed.JournalWritten("health", Stopwatch.GetElapsedTime(started))));
    }

    private SubnetHealth Health() => new(_subnet, [.. _watched.Keys], _state.Failed, _routesThrough?.Version ?? 0);

    private void Status() => _routeManager.Tell(Health());

    /// <summary>The watched node that is this cluster member: by its member address, else (no address given) by its IP.</summary>
    private NodeName? NodeAt(Address member)
    {
        var text = member.ToString();
        foreach (var (node, watched) in _watched)
            if (watched.Member == text) return node;
        return member.Host is { } host && Ipv4.TryParse(host, out var ip)
            ? _watched.Where(w => w.Value.Member is null && w.Value.Ip == ip).Select(w => (NodeName?)w.Key).FirstOrDefault()
            : null;
    }

    // ---- standby repair ----------------------------------------------------------------------------------------------

    /// <summary>
    /// A node judged failed whose routes the supervisor stands by to move: whether the route manager acknowledged, whether
    /// EC2 work is under way, and whether the missing route list was already logged.
    /// </summary>
    private sealed record Standby(bool Acked, bool Busy, bool ToldNoList);

    private static string TimerOf(NodeName node) => $"standby-{node.Value}";

    /// <summary>The route manager was told of the failure: it has standby-repair-after to acknowledge.</summary>
    private void StandbyWait(NodeName node)
    {
        if (_ec2 is null) return;
        _standby[node] = new Standby(Acked: false, Busy: false, ToldNoList: false);
        Timers.StartSingleTimer(TimerOf(node), new StandbyDue(node), _settings.StandbyRepairAfter);
    }

    private void StandbyEnd(NodeName node)
    {
        _standby.Remove(node);
        Timers.Cancel(TimerOf(node));
    }

    /// <summary>An acknowledgement: the manager moves the routes; look once more later in case it dies during its pass.</summary>
    private void Noted(FailoverNoted noted)
    {
        if (noted.Subnet != _subnet || !_standby.TryGetValue(noted.Node, out var standby) || standby.Acked) return;
        _standby[noted.Node] = standby with { Acked = true };
        if (!standby.Busy) CheckLater(noted.Node);
    }

    private void CheckAgainLater(NodeName node)
    {
        if (!_standby.TryGetValue(node, out var standby)) return;
        _standby[node] = standby with { Busy = false };
        CheckLater(node);
    }

    private void CheckLater(NodeName node) => Timers.StartSingleTimer(TimerOf(node), new StandbyDue(node), _settings.StandbyRepairCheck);

    /// <summary>Due: describe the tables of the manager's list, if the node is still judged failed and a list is held.</summary>
    private void StandbyCheck(NodeName node)
    {
        if (_ec2 is null || !_standby.TryGetValue(node, out var standby) || standby.Busy) return;
        if (!_state.IsFailed(node))
        {
            StandbyEnd(node);
            return;
        }
        if (_routesThrough is null)
        {
            // Without the manager's list the supervisor cannot tell Romana's routes from anyone else's: it touches none.
            if (!standby.ToldNoList)
                _log.Warning("Subnet {0}: cannot move the routes through {1}: the route manager has not said which routes are "
                    + "Romana's yet", _subnet, node);
            _standby[node] = standby with { ToldNoList = true };
            CheckLater(node);
            return;
        }
        var tables = _routesThrough.Routes.Select(r => r.Table).Distinct().ToImmutableArray();
        if (tables.IsEmpty)
        {
            StandbyEnd(node);
            return;
        }
        var reason = standby.Acked
            ? $"the route manager acknowledged the failure but the routes still pointed at {node} "
                + $"{_settings.StandbyRepairCheck.TotalSeconds:0.###} s later"
            : $"the route manager did not answer within {_settings.StandbyRepairAfter.TotalMilliseconds:0} ms";
        _standby[node] = standby with { Busy = true };
        _ec2.DescribeAsync(new RouteTableSelector(tables)).PipeTo(Self,
            success: described => new StandbyDescribed(node, described, reason),
            failure: e => new StandbyDescribeFailed(node, e));
    }

    private void Described(StandbyDescribed described)
    {
        var node = described.Node;
        if (!_state.IsFailed(node) || _routesThrough is null)
        {
            StandbyEnd(node); // recovered meanwhile: nothing to move
            return;
        }
        var decision = StandbyRepair.Decide(_routesThrough, described.Tables, node, _state.Failed, _watched.Keys);
        if (decision.Moves.IsEmpty)
        {
            if (!_standby.TryGetValue(node, out var standby) || !standby.Acked)
                _log.Info("Subnet {0}: no route of Romana's points at {1} in EC2 now; the standby has nothing to move", _subnet, node);
            StandbyEnd(node);
            return;
        }
        if (decision.NoPeer)
        {
            _log.Error("Subnet {0}: {1} routes still point at {2}, judged failed, and no other node of the subnet is judged healthy: "
                + "the standby moves none", _subnet, decision.Moves.Length, node);
            StandbyEnd(node);
            return;
        }
        _log.Info("Subnet {0}: standby repair: moving {1} routes from {2} to {3} ({4}): {5}", _subnet, decision.Moves.Length, node,
            decision.To, decision.ToEni, described.Reason);
        ReplaceAllAsync(_ec2!, decision.Moves).PipeTo(Self,
            success: results => new StandbyReplaced(node, decision.To!.Value, results, described.Reason));
    }

    /// <summary>
    /// The replaces, several at once (a failed node's routes are few: one per table its subnet's prefix is routed in, and the
    /// more specific ones), each one's failure kept with it instead of failing the rest.
    /// </summary>
    private static async Task<ImmutableArray<(StandbyMovedRoute Move, Exception? Error)>> ReplaceAllAsync(IEc2RouteTables ec2,
        ImmutableArray<StandbyMovedRoute> moves)
    {
        using var gate = new SemaphoreSlim(8);
        var calls = moves.Select(async move =>
        {
            await gate.WaitAsync();
            try
            {
                await ec2.ReplaceRouteAsync(move.Table, move.Cidr, move.ToEni);
                return (move, (Exception?)null);
            }
            catch (Exception e)
            {
                return (move, e);
            }
            finally
            {
                gate.Release();
            }
        });
        return [.. await Task.WhenAll(calls)];
    }

    /// <summary>Records what was done (only the calls that succeeded); a failed call is tried again at the next check.</summary>
    private void Replaced(StandbyReplaced replaced)
    {
        var node = replaced.Node;
        foreach (var (move, error) in replaced.Results.Where(r => r.Error is not null))
            _log.Warning("Subnet {0}: standby repair: ReplaceRoute {1} {2} -> {3} failed ({4}); trying again in {5}", _subnet,
                move.Table, move.Cidr, move.ToEni, Ec2Code(error!), _settings.StandbyRepairCheck);
        var failed = replaced.Results.Any(r => r.Error is not null);
        var done = replaced.Results.Where(r => r.Error is null).Select(r => r.Move).ToImmutableArray();
        if (failed) CheckAgainLater(node);
        else StandbyEnd(node);
        if (done.IsEmpty) return;
        Persist(new ForwarderRoutesMovedByStandby(_subnet, node, replaced.To, done, _clock.Now, replaced.Reason), e =>
        {
            _log.Warning("Subnet {0}: the standby moved {1} routes from {2} to {3}: {4}", _subnet, e.Routes.Length, e.Node, e.To, e.Reason);
            Context.System.EventStream.Publish(e);
        });
    }

    private static string Ec2Code(Exception e) => e is Ec2Error error ? $"{error.Code}: {error.Detail}" : e.Message;

    private sealed record StandbyDue(NodeName Node) : INoSerializationVerificationNeeded;
    private sealed record StandbyDescribed(NodeName Node, IReadOnlyList<Ec2RouteTable> Tables, string Reason)
        : INoSerializationVerificationNeeded;
    private sealed record StandbyDescribeFailed(NodeName Node, Exception Cause) : INoSerializationVerificationNeeded;
    private sealed record StandbyReplaced(NodeName Node, NodeName To, ImmutableArray<(StandbyMovedRoute Move, Exception? Error)> Results,
        string Reason) : INoSerializationVerificationNeeded;

    private sealed record SendStatus : INoSerializationVerificationNeeded;

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        Context.System.EventStream.Publish(new Observed.JournalWriteFailed("health", cause.Message));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        Context.System.EventStream.Publish(new Observed.JournalWriteFailed("health", cause.Message));
        base.OnPersistRejected(cause, @event, sequenceNr);
    }
}
