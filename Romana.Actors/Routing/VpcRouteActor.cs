using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using static Romana.Actors.Health.HealthMessages;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Routing;

/// <summary>
/// The VPC route manager (a cluster singleton): it plans the pod routes of every managed route table and keeps EC2 in
/// line with the plan, one reconcile pass at a time. A pass reads the cluster, describes the tables, plans within each
/// budget, and sends only the calls that differ, each recorded in the journal (tag "routes") with its reason: plan,
/// failover, drift repair or budget. A route is Romana's only if its journal says so; a create is claimed before it is
/// sent, so that a restart can tell its own routes from anyone else's.
///
/// EC2 errors never stop it: throttling and 5xx answers are retried with exponential backoff and jitter (then the pass
/// ends and the next tries again); RouteLimitExceeded teaches it a smaller limit and it re-plans; other errors are
/// recorded and retried on the next pass, which comes on every change and every reconcile-interval.
///
/// A pass is a <see cref="ReconcilePass"/> value; the outcome of each piece of outside work it starts (reading the
/// cluster, an EC2 call, a retry's backoff) comes back as one of the messages below, and the pure steps of
/// <see cref="ReconcilePass"/>, <see cref="FailedCallDecision"/> and <see cref="Reconciler"/> decide what follows.
/// </summary>
public sealed class VpcRouteActor : ReceivePersistentActor, IWithTimers
{
    private readonly IEc2RouteTables _ec2;
    private readonly IRoutingSource _source;
    private readonly NodeName? _host;
    private readonly Func<NodeName, bool> _liveMember;
    private readonly RouteSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Random _jitter = new();
    private RouteManagerState _state = RouteManagerState.Empty;
    private ReconcilePass? _pass;
    private string? _again;
    private RoutePlan? _lastPlan;
    private string? _lastRefusal;
    private DateTimeOffset? _lastPassAt;
    private long _passes;
    private readonly Dictionary<SubnetId, ImmutableSortedSet<NodeName>> _failedBySubnet = new();
    private readonly Dictionary<NodeName, DateTimeOffset> _recoveredAt = new();
    private ImmutableSortedSet<SubnetId> _withoutHealthy = ImmutableSortedSet<SubnetId>.Empty;
    // For the supervisors' standby repair: who supervises each subnet (the latest sender of its status), the nodes of the
    // last cluster read, the route lists by subnet (computed again after a change), and the version last sent to each.
    private readonly Dictionary<SubnetId, IActorRef> _supervisors = new();
    private ImmutableArray<PlanNode> _nodes = [];
    private ImmutableDictionary<SubnetId, RoutesThrough>? _routesThrough;
    private readonly Dictionary<SubnetId, long> _sentVersions = new();

    /// <param name="host">
    /// The node whose daemon hosts this manager (the cluster singleton's host), or null: that node is no route target while
    /// its subnet has another healthy node (see <see cref="WithoutHost"/>).
    /// </param>
    /// <param name="liveMember">
    /// Whether a node's daemon is an Up and reachable cluster member now; only such a peer takes the host's place (a singleton
    /// that just moved has not yet heard its old host judged failed). Null: every healthy node counts.
    /// </param>
    public VpcRouteActor(IEc2RouteTables ec2, IRoutingSource source, RouteSettings settings, IClock clock, NodeName? host = null,
        Func<NodeName, bool>? liveMember = null)
    {
        _ec2 = ec2;
        _host = host;
        _liveMember = liveMember ?? (_ => true);
        _source = source;
        _settings = settings;
        _clock = clock;
        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is RouteManagerSnapshot snapshot) _state = snapshot.ToState();
        });
        Recover<IRouteEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            Timers.StartPeriodicTimer("reconcile", new Reconcile("periodic check"), _settings.ReconcileInterval);
            Self.Tell(new Reconcile("route manager started"));
        });
        Idle();
    }

    public static Props Props(IEc2RouteTables ec2, IRoutingSource source, RouteSettings settings, IClock clock,
        NodeName? host = null, Func<NodeName, bool>? liveMember = null) =>
        Akka.Actor.Props.Create(() => new VpcRouteActor(ec2, source, settings, clock, host, liveMember));

    public const string Id = "vpc-routes";
    public override string PersistenceId => Id;
    public ITimerScheduler Timers { get; set; } = null!;

    // ---- what comes back from the work a pass starts: one piece at a time, as a message to itself ------------------

    private sealed record ClusterRead(RoutingSnapshot Cluster) : INoSerializationVerificationNeeded;
    private sealed record ClusterReadFailed(Exception Cause) : INoSerializationVerificationNeeded;
    private sealed record TablesDescribed(IReadOnlyList<Ec2RouteTable> Tables) : INoSerializationVerificationNeeded;
    private sealed record Ec2CallSucceeded(Ec2Request.Operate Request) : INoSerializationVerificationNeeded;
    /// <summary>An EC2 call that threw; not the journal's <see cref="Ec2CallFailed"/>, which records what came of it.</summary>
    private sealed record Ec2CallFaulted(Ec2Request Request, Exception Cause) : INoSerializationVerificationNeeded;
    private sealed record RetryDue(Ec2Request Request) : INoSerializationVerificationNeeded;

    private void Idle()
    {
        Command<Reconcile>(command => StartPass(command.Reason));
        Common();
    }

    /// <summary>
    /// A pass under way (<see cref="_pass"/>): it reads the cluster, describes the tables, then carries out the planned
    /// operations one by one; between two, it waits for the journal (commands are stashed meanwhile) or for the answer
    /// to the one piece of outside work it started. Requests for another pass make one more after this one.
    /// </summary>
    private void Reconciling()
    {
        Command<Reconcile>(command => _again ??= command.Reason);
        Command<ClusterRead>(read =>
        {
            ImmutableArray<PlanNode> nodes = [.. read.Cluster.Nodes.Select(n => n with { Healthy = true })];
            if (!_nodes.SequenceEqual(nodes))
            {
                _nodes = nodes;
                _routesThrough = null;
            }
            var cluster = WithHealth(read.Cluster);
            _pass = _pass! with { Cluster = _host is { } host ? WithoutHost(cluster, host, _liveMember) : cluster };
            Send(new Ec2Request.DescribeTables());
        });
        Command<ClusterReadFailed>(failed => EndPass($"the cluster state could not be read: {failed.Cause.Message}"));
        Command<TablesDescribed>(described => Plan(described.Tables));
        Command<Ec2CallSucceeded>(succeeded =>
        {
            var (pass, done) = _pass!.Succeeded(succeeded.Request.Operation, _clock.Now);
            _pass = pass;
            Record([done], Advance);
        });
        Command<Ec2CallFaulted>(faulted => Failed(faulted.Request, faulted.Cause));
        Command<RetryDue>(due => Send(due.Request));
        Common();
    }

    private void Common()
    {
        Command<GetRouteState>(_ => Sender.Tell(new RouteManagerView(_state.Tables,
            [.. _state.Owned.SelectMany(t => t.Value.Values.Select(r => (t.Key, r)))], _lastPlan, _lastRefusal, _lastPassAt, _passes,
            _pass is not null,
            [.. _failedBySubnet.Values.SelectMany(f => f)], _withoutHealthy, _pass?.WaitingForName)));
        Command<ForwarderFailed>(failed =>
        {
            // On receipt, before any pass: the supervisor moves the routes itself when this does not come (the manager is away).
            if (Replyable(Sender)) Sender.Tell(new FailoverNoted(failed.Subnet, failed.Node));
            HealthChanged(failed.Subnet, f => f.Add(failed.Node), "failover");
        });
        Command<ForwarderRecovered>(recovered =>
        {
            _recoveredAt[recovered.Node] = recovered.At;
            HealthChanged(recovered.Subnet, f => f.Remove(recovered.Node), "node recovered");
        });
        Command<SubnetHealth>(health =>
        {
            if (Replyable(Sender))
            {
                _supervisors[health.Subnet] = Sender;
                if (RoutesThroughOf(health.Subnet) is { } routes && routes.Version != health.RoutesThroughVersion)
                    SendRoutesThrough(routes);
            }
            HealthChanged(health.Subnet, _ => health.Failed, "health status");
        });
        Command<SaveSnapshotSuccess>(saved => DeleteSnapshots(new SnapshotSelectionCriteria(saved.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(failed => _log.Warning(failed.Cause, "Route manager: snapshot not saved"));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    private bool Replyable(IActorRef sender) => !sender.IsNobody() && !sender.Equals(Context.System.DeadLetters);

    /// <summary>
    /// The list for one subnet's supervisor: the confirmed routes whose target is a node of the subnet, and the subnet's
    /// ENIs; null before the first cluster read. A claimed route not yet confirmed is left out: a standby move would make
    /// a new manager take the claim for someone else's route.
    /// </summary>
    private RoutesThrough? RoutesThroughOf(SubnetId subnet)
    {
        if (_nodes.IsEmpty) return null;
        if (_routesThrough is null)
        {
            var subnetOf = _nodes.ToDictionary(n => n.Name, n => n.Subnet);
            var routes = _state.Owned
                .SelectMany(t => t.Value.Values.Where(r => r.Confirmed).Select(r => new RouteThrough(t.Key, r.Cidr, r.Target)))
                .Where(r => subnetOf.ContainsKey(r.Node))
                .ToLookup(r => subnetOf[r.Node]);
            _routesThrough = _nodes.GroupBy(n => n.Subnet).ToImmutableDictionary(g => g.Key, g => RoutesThrough.Of(
                g.Key, routes[g.Key], g.Where(n => n.Eni.Length > 0).Select(n => KeyValuePair.Create(n.Name, n.Eni))));
        }
        return _routesThrough.GetValueOrDefault(subnet);
    }

    private void SendRoutesThrough(RoutesThrough routes)
    {
        if (!_supervisors.TryGetValue(routes.Subnet, out var supervisor)) return;
        supervisor.Tell(routes);
        _sentVersions[routes.Subnet] = routes.Version;
    }

    /// <summary>Each supervisor whose list changed since the last one sent to it gets the new one.</summary>
    private void TellChangedRoutes()
    {
        foreach (var subnet in _supervisors.Keys.ToList())
            if (RoutesThroughOf(subnet) is { } routes && _sentVersions.GetValueOrDefault(subnet) != routes.Version)
                SendRoutesThrough(routes);
    }

    /// <summary>What the subnets' health supervisors say; a change starts a pass (or one more after the current one).</summary>
    private void HealthChanged(SubnetId subnet, Func<ImmutableSortedSet<NodeName>, ImmutableSortedSet<NodeName>> change, string reason)
    {
        var before = _failedBySubnet.GetValueOrDefault(subnet, ImmutableSortedSet<NodeName>.Empty);
        var after = change(before);
        if (before.SetEquals(after)) return;
        _failedBySubnet[subnet] = after;
        Self.Tell(new Reconcile(reason));
    }

    /// <summary>
    /// Judged failed: not eligible as a target. Recovered less than the hold-down ago: not eligible while its subnet has
    /// another eligible node (the hold-down keeps routes from flapping back; it must not keep them on a dead node when the
    /// recovered one is all the subnet has).
    /// </summary>
    private RoutingSnapshot WithHealth(RoutingSnapshot cluster)
    {
        var now = _clock.Now;
        bool Failed(PlanNode n) => !n.Healthy || (_failedBySubnet.TryGetValue(n.Subnet, out var failed) && failed.Contains(n.Name));
        bool HeldDown(PlanNode n) => _recoveredAt.TryGetValue(n.Name, out var at) && now - at < _settings.HoldDown;
        var settled = cluster.Nodes.Where(n => !Failed(n) && !HeldDown(n)).Select(n => n.Subnet).ToHashSet();
        return cluster with
        {
            Nodes = [.. cluster.Nodes.Select(n =>
                Failed(n) || (HeldDown(n) && settled.Contains(n.Subnet)) ? n with { Healthy = false } : n)],
        };
    }

    /// <summary>
    /// The cluster without the manager's own host as a route target while its subnet has another healthy node (health
    /// applied first): killing the singleton's host then takes no route of another node's pods with it, and the routes
    /// stay right while the singleton moves (which waits for the split-brain resolver to down the member). When the host
    /// is the last healthy node of its subnet, it stays a target.
    /// </summary>
    public static RoutingSnapshot WithoutHost(RoutingSnapshot snapshot, NodeName host, Func<NodeName, bool> liveMember)
    {
        var self = snapshot.Nodes.FirstOrDefault(n => n.Name == host);
        if (self is null || !self.Healthy
            || !snapshot.Nodes.Any(n => n.Subnet == self.Subnet && n.Name != host && n.Healthy && liveMember(n.Name))) return snapshot;
        return snapshot with { Nodes = [.. snapshot.Nodes.Select(n => n.Name == host ? n with { Healthy = false } : n)] };
    }

    // ---- a pass ----------------------------------------------------------------------------------------------------

    private void StartPass(string reason)
    {
        _pass = ReconcilePass.Start(reason);
        Become(Reconciling);
        _source.ReadAsync().PipeTo(Self, success: cluster => new ClusterRead(cluster), failure: e => new ClusterReadFailed(e));
    }

    /// <summary>Sends an EC2 call of the pass; its answer comes back as a message.</summary>
    private void Send(Ec2Request request)
    {
        _pass = _pass! with { WaitingFor = PassWait.Ec2 };
        switch (request)
        {
            case Ec2Request.DescribeTables:
                _ec2.DescribeAsync(_settings.Tables)
                    .PipeTo(Self, success: tables => new TablesDescribed(tables), failure: e => new Ec2CallFaulted(request, e));
                break;
            case Ec2Request.Operate operate:
                Call(operate.Operation)
                    .PipeTo(Self, success: () => new Ec2CallSucceeded(operate), failure: e => new Ec2CallFaulted(request, e));
                break;
        }
    }

    private Task Call(RouteOperation operation) => operation switch
    {
        RouteOperation.DisableSourceDestCheck check => _ec2.DisableSourceDestCheckAsync(check.Eni),
        RouteOperation.Create create => _ec2.CreateRouteAsync(create.Table, create.Cidr, create.Eni),
        RouteOperation.Replace replace => _ec2.ReplaceRouteAsync(replace.Table, replace.Cidr, replace.Eni),
        RouteOperation.Delete delete => _ec2.DeleteRouteAsync(delete.Table, delete.Cidr),
        _ => throw new ArgumentException($"{operation} makes no EC2 call", nameof(operation)),
    };

    private void Plan(IReadOnlyList<Ec2RouteTable> tables)
    {
        _pass = _pass!.Described(tables);
        Record(Reconciler.Adopted(_state, tables, _settings.Tables, _clock.Now), PlanWithinBudgets);
    }

    /// <summary>Plans within each table's budget, once the journal knows the budgets, and lists the operations that differ.</summary>
    private void PlanWithinBudgets()
    {
        var pass = _pass!;
        var input = Reconciler.Input(pass.Cluster!, pass.Tables, _state, _settings.RouteLimit);
        if (Reconciler.BudgetsObserved(_state, input, _clock.Now) is { } observed)
        {
            Record([observed], PlanWithinBudgets);
            return;
        }
        var plan = RoutePlanner.Plan(input, _state.AsPlan(), out var shortfalls);
        if (plan is null)
        {
            var refusal = string.Join("; ", shortfalls);
            _log.Error("Route manager: no change made: the route budget is too small: {0}", refusal);
            if (refusal == _lastRefusal) EndPass(null);
            else Record([new PlanRefused(refusal, _clock.Now, "budget")], () => EndPass(null));
            _lastRefusal = refusal;
            return;
        }
        _lastRefusal = null;
        _lastPlan = plan;
        _pass = pass.Planned(Reconciler.Diff(_state, pass.Tables, plan, input, pass.OperationReason));
        Record(ReportWithoutHealthy(plan, input), Execute);
    }

    /// <summary>A subnet whose every node failed keeps its routes; that is recorded once and logged at error level on every pass.</summary>
    private IEnumerable<IRouteEvent> ReportWithoutHealthy(RoutePlan plan, RoutingInput input)
    {
        foreach (var subnet in plan.WithoutHealthyNode)
            _log.Error("Route manager: subnet {0} has no healthy node: its routes are kept where they are until one recovers", subnet);
        foreach (var subnet in _withoutHealthy.Except(plan.WithoutHealthyNode))
            _log.Info("Route manager: subnet {0} has a healthy node again", subnet);
        var newly = plan.WithoutHealthyNode.Except(_withoutHealthy).ToList();
        _withoutHealthy = [.. plan.WithoutHealthyNode];
        return newly.Select(subnet => (IRouteEvent)new NoHealthyForwarder(subnet,
            [.. input.Nodes.Where(n => n.Subnet == subnet).Select(n => n.Name)], _clock.Now, "every node of the subnet is judged failed"));
    }

    /// <summary>Carries out the operation under way, or ends the pass after the last.</summary>
    private void Execute()
    {
        var pass = _pass!;
        switch (pass.NextStep(_clock.Now))
        {
            case PassStep.Finish:
                EndPass(null);
                break;
            case PassStep.RecordThenAdvance record:
                if (pass.Current is RouteOperation.DropClaim drop)
                    _log.Warning("Route manager: {0} in {1} {2}; left alone", drop.Cidr, drop.Table, drop.Reason);
                Record(record.Events, Advance);
                break;
            case PassStep.CallEc2 call:
                Record(call.RecordFirst, () => Send(call.Request));
                break;
        }
    }

    private void Advance()
    {
        _pass = _pass!.Advanced();
        Execute();
    }

    private void Failed(Ec2Request request, Exception exception)
    {
        _pass = _pass! with { WaitingFor = PassWait.Nothing };
        var decision = FailedCallDecision.For(_pass, request, exception, _settings.RetryMaxAttempts, _clock.Now);
        var error = decision.Error;
        switch (decision)
        {
            case FailedCallDecision.RetryAfterBackoff retry:
                var delay = _settings.Backoff(retry.Attempt, _jitter);
                _log.Info("Route manager: {0} {1} answered {2}; retry {3} in {4:0} ms",
                    request.Action, request.Table, error.Code, retry.Attempt, delay.TotalMilliseconds);
                _pass = _pass.RetryScheduled(retry.Attempt);
                Timers.StartSingleTimer("retry", new RetryDue(request), delay);
                break;
            case FailedCallDecision.LearnRouteLimit learn:
                _log.Warning("Route manager: {0} holds no more than {1} routes; planning again within that",
                    learn.Learned.Table, learn.Learned.Limit);
                Record([learn.Learned], () => EndPass(null, again: "budget"));
                break;
            case FailedCallDecision.SkipOperation:
                Advance();
                break;
            case FailedCallDecision.RecordAlreadyGone gone:
                Record([gone.Deleted], Advance);
                break;
            case FailedCallDecision.RecordFailureAndAdvance failed:
                LogRecordedFailure(request, error);
                Record([failed.Failed], Advance);
                break;
            case FailedCallDecision.RecordFailureAndEndPass failed:
                LogRecordedFailure(request, error);
                Record([failed.Failed], () => EndPass(failed.Problem));
                break;
        }
    }

    private void LogRecordedFailure(Ec2Request request, Ec2Error error) =>
        _log.Warning("Route manager: {0} {1} failed: {2}; recorded, and tried again on the next pass",
            request.Action, request.Table, error.Message);

    private void EndPass(string? problem, string? again = null)
    {
        if (problem is not null) _log.Warning("Route manager: pass ended early: {0}", problem);
        TellChangedRoutes();
        Timers.Cancel("retry");
        _pass = null;
        _passes++;
        _lastPassAt = _clock.Now;
        Become(Idle);
        var next = again ?? _again;
        _again = null;
        if (next is not null) Self.Tell(new Reconcile(next));
    }

    /// <summary>Persists the events, then runs <paramref name="then"/>: at once when there are none, else once all are written.</summary>
    private void Record(IEnumerable<IRouteEvent> events, Action then)
    {
        var list = events.ToList();
        if (list.Count == 0)
        {
            then();
            return;
        }
        var left = list.Count;
        PersistAll(list, e =>
        {
            _state = _state.Apply(e);
            _routesThrough = null;
            Context.System.EventStream.Publish(e);
            if (LastSequenceNr % _settings.SnapshotEvery == 0) SaveSnapshot(_state);
            if (--left == 0) then();
        });
    }
}
