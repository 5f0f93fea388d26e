using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Health;

/// <summary>
/// The forwarder supervisor of one subnet: it runs a probe per node (restarted when it crashes), judges nodes failed
/// or recovered from their probes and, where the node is a cluster member, from Akka cluster reachability; it
/// persists each judgement (tag "health") and tells the route manager, which moves the routes.
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

    /// <param name="members">
    /// Where this supervisor learns its subnet's nodes when it starts (the member's <see cref="Routing.OwnershipView"/>), or
    /// null: a new incarnation (the cluster moved it after its member died) must watch a node whose daemon died with or
    /// before that member, since such a daemon never registers again.
    /// </param>
    public SubnetHealthSupervisor(SubnetId subnet, IHealthProbe probe, HealthSettings settings, IActorRef routeManager, IClock clock,
        IActorRef? members = null)
    {
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
        });

        Command<WatchNode>(Watch);
        Command<UnwatchNode>(command =>
        {
            if (!_watched.Remove(command.Node, out var watched)) return;
            Context.Stop(watched.Probe);
            if (_state.DecideUnwatch(command.Node, _clock.Now) is { } recovered) Persist(recovered, Judged);
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
        IActorRef? members = null) =>
        Akka.Actor.Props.Create(() => new SubnetHealthSupervisor(subnet, probe, settings, routeManager, clock, members));

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
        if (_state.DecideJudgement(node, _watched.ContainsKey(node), healthy, reason, _clock.Now) is { } judgement)
            Persist(judgement, Judged);
    }

    private void Judged(IHealthEvent e)
    {
        _state = _state.Apply(e);
        if (e is ForwarderFailed) _log.Warning("Subnet {0}: node {1} judged failed: {2}", _subnet, e.Node, e.Reason);
        else _log.Info("Subnet {0}: node {1} judged recovered: {2}", _subnet, e.Node, e.Reason);
        _routeManager.Tell(e);
        Context.System.EventStream.Publish(e);
        Status();
    }

    private SubnetHealth Health() => new(_subnet, [.. _watched.Keys], _state.Failed);

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

    private sealed record SendStatus : INoSerializationVerificationNeeded;
}
