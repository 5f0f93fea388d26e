using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Observability;
using Romana.Actors.Persistence;
using static Romana.Actors.Health.HealthMessages;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Routing;

/// <summary>
/// The VPC route manager (a cluster singleton): it plans the pod routes of every managed route table and keeps EC2 in
/// line with the plan. Every call is recorded in the journal (tag "routes") with its reason: plan, failover, drift
/// repair or budget. A route is Romana's only if its journal says so; a create is claimed before it is sent, so that a
/// restart can tell its own routes from anyone else's.
///
/// It keeps what it plans from up to date instead of reading it for each change: the cluster (read once, then changed
/// subnet by subnet as IPAM publishes ownership, and read again every reconcile-interval for pod counts), health (from
/// the forwarder supervisors) and EC2's tables (described once, then kept in step with its own calls, and described
/// again every reconcile-interval, which repairs drift). Every change of these plans again: a change of health re-assigns
/// targets on the kept layout (under a millisecond at 5,000 nodes) and takes effect at once; IPAM changes are gathered
/// for replan-delay. A plan replaces the work waiting (<see cref="RouteWork"/>).
///
/// Calls run concurrently within a client-side token bucket of EC2's size (romana.routes.ec2), so a large cluster's
/// first convergence is bounded by EC2's rate, not by the sum of latencies. Repairs (routes taken off a node judged
/// failed) go ahead of all waiting work and may spend the reserve that plan work leaves in the bucket; no route is
/// created or replaced toward a node judged failed. EC2 errors never stop it: throttling and 5xx answers are retried
/// with exponential backoff and jitter; RouteLimitExceeded teaches it a smaller limit and it plans again; other errors
/// are recorded and retried at the next periodic check.
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

    // What a plan is made from, kept up to date.
    private RoutingView? _cluster;
    private ImmutableArray<Ec2RouteTable>? _tables;
    private RouteLayout? _layout;
    private bool _layoutStale = true;
    private string _planReason = "plan";

    // Work under way.
    private RouteWork _work;
    private bool _reading;
    private bool _readAgain;
    private bool _describing;
    private int _describeAttempt;
    private bool _describeAgain;
    private readonly List<RouteOperation> _doneWhileDescribing = new();
    private int _writesPending;
    private bool _budgetsPending;

    // What the view tells.
    private RoutePlan? _lastPlan;
    private string? _lastRefusal;
    private DateTimeOffset? _lastPassAt;
    private long _passes;
    private bool _plannedSinceIdle;

    private readonly Dictionary<SubnetId, ImmutableSortedSet<NodeName>> _failedBySubnet = new();
    private readonly Dictionary<NodeName, DateTimeOffset> _recoveredAt = new();
    private ImmutableSortedSet<SubnetId> _withoutHealthy = ImmutableSortedSet<SubnetId>.Empty;
    // For the supervisors' standby repair: who supervises each subnet (the latest sender of its status), the route lists by
    // subnet (computed again after a change), and the version last sent to each.
    private readonly Dictionary<SubnetId, IActorRef> _supervisors = new();
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
        _work = RouteWork.Start(TokenBucket.Full(settings.Ec2Rate.Burst, settings.Ec2Rate.PerSecond, clock.Now));
        Recover<SnapshotOffer>(offer => _state = SnapshotRecord.As<RouteManagerSnapshot>(offer, PersistenceId).ToState());
        Recover<IRouteEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            Context.System.EventStream.Publish(new Observed.RoutesNow(_state));
            _source.Subscribe(Context);
            Timers.StartPeriodicTimer("reconcile", new Reconcile("periodic check"), _settings.ReconcileInterval);
            Self.Tell(new Reconcile("route manager started"));
        });
        Commands();
    }

    public static Props Props(IEc2RouteTables ec2, IRoutingSource source, RouteSettings settings, IClock clock,
        NodeName? host = null, Func<NodeName, bool>? liveMember = null) =>
        Akka.Actor.Props.Create(() => new VpcRouteActor(ec2, source, settings, clock, host, liveMember));

    public const string Id = "vpc-routes";
    public override string PersistenceId => Id;
    public ITimerScheduler Timers { get; set; } = null!;

    // ---- what comes back from outside work, as messages to itself ---------------------------------------------------

    private sealed record ClusterRead(RoutingSnapshot Cluster) : INoSerializationVerificationNeeded;
    private sealed record ClusterReadFailed(Exception Cause) : INoSerializationVerificationNeeded;
    private sealed record TablesDescribed(IReadOnlyList<Ec2RouteTable> Tables) : INoSerializationVerificationNeeded;
    private sealed record DescribeFaulted(Exception Cause) : INoSerializationVerificationNeeded;
    private sealed record DescribeDue : INoSerializationVerificationNeeded;
    private sealed record CallSucceeded(RouteOperation Operation) : INoSerializationVerificationNeeded;
    /// <summary>An EC2 call that threw; not the journal's <see cref="Ec2CallFailed"/>, which records what came of it.</summary>
    private sealed record CallFaulted(StartedOperation Started, Exception Cause) : INoSerializationVerificationNeeded;
    private sealed record Replan : INoSerializationVerificationNeeded;
    private sealed record DispatchDue : INoSerializationVerificationNeeded;

    private void Commands()
    {
        Command<Reconcile>(command =>
        {
            _log.Debug("Route manager: reconcile ({0})", command.Reason);
            ReadCluster();
            Describe();
        });
        Command<ClusterRead>(read =>
        {
            _reading = false;
            _cluster = RoutingView.Of(read.Cluster);
            ClusterChanged();
            if (_readAgain) ReadCluster();
            PlanNow();
        });
        Command<ClusterReadFailed>(failed =>
        {
            _reading = false;
            _plannedSinceIdle = true;
            _log.Warning("Route manager: the cluster state could not be read: {0}; read again at the next check", failed.Cause.Message);
            UpdateIdle();
        });
        Command<OwnershipFeed.OwnershipChanged>(changed =>
        {
            if (_reading) _readAgain = true;
            if (_cluster is null) return;
            var before = _cluster;
            _cluster = _cluster.With(changed.Subnet);
            if (ReferenceEquals(before, _cluster)) return;
            ClusterChanged();
            if (!Timers.IsTimerActive("replan")) Timers.StartSingleTimer("replan", new Replan(), _settings.ReplanDelay);
        });
        Command<Akka.Cluster.Tools.PublishSubscribe.SubscribeAck>(_ => { });
        Command<TablesDescribed>(described => Described(described.Tables));
        Command<DescribeFaulted>(faulted => DescribeFailed(faulted.Cause));
        Command<DescribeDue>(_ => Describe());
        Command<CallSucceeded>(succeeded => Succeeded(succeeded.Operation));
        Command<CallFaulted>(faulted => Faulted(faulted.Started, faulted.Cause));
        Command<Replan>(_ => PlanNow());
        Command<DispatchDue>(_ => Dispatch());
        Command<GetRouteState>(_ => Sender.Tell(View()));
        Command<ForwarderFailed>(failed =>
        {
            // On receipt, before anything else: the supervisor moves the routes itself when this does not come (the manager is away).
            if (Replyable(Sender)) Sender.Tell(new FailoverNoted(failed.Subnet, failed.Node));
            Context.System.EventStream.Publish(new Observed.HealthNoted(failed));
            HealthChanged(failed.Subnet, f => f.Add(failed.Node));
        });
        Command<ForwarderRecovered>(recovered =>
        {
            _recoveredAt[recovered.Node] = recovered.At;
            Context.System.EventStream.Publish(new Observed.HealthNoted(recovered));
            HealthChanged(recovered.Subnet, f => f.Remove(recovered.Node));
        });
        Command<SubnetHealth>(health =>
        {
            if (Replyable(Sender))
            {
                _supervisors[health.Subnet] = Sender;
                if (RoutesThroughOf(health.Subnet) is { } routes && routes.Version != health.RoutesThroughVersion)
                    SendRoutesThrough(routes);
            }
            HealthChanged(health.Subnet, _ => health.Failed);
        });
        Command<SaveSnapshotSuccess>(saved => DeleteSnapshots(new SnapshotSelectionCriteria(saved.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(failed => _log.Warning(failed.Cause, "Route manager: snapshot not saved"));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    private RouteManagerView View() => new(_state.Tables, [.. _state.Owned.SelectMany(t => t.Value.Values.Select(r => (t.Key, r)))],
        _lastPlan, _lastRefusal, _lastPassAt, _passes, !Idle, [.. _failedBySubnet.Values.SelectMany(f => f)], _withoutHealthy,
        WaitingFor);

    /// <summary>Nothing waits, nothing is under way: the plan is carried out as far as EC2 allows.</summary>
    private bool Idle => _work.Idle && !_reading && !_describing && _writesPending == 0 && !Timers.IsTimerActive("replan")
        && !Timers.IsTimerActive("describe");

    /// <summary>
    /// "journal" while events are written, "cluster" while the cluster is read, "ec2" while a call or describe is under way,
    /// "retry" while work waits for time.
    /// </summary>
    private string? WaitingFor =>
        _writesPending > 0 ? "journal"
        : _reading ? "cluster"
        : _describing || _work.CallsInFlight > 0 ? "ec2"
        : !_work.Waiting.IsEmpty || Timers.IsTimerActive("describe") ? "retry"
        : null;

    private bool Replyable(IActorRef sender) => !sender.IsNobody() && !sender.Equals(Context.System.DeadLetters);

    // ---- keeping the inputs up to date -------------------------------------------------------------------------------

    private void ReadCluster()
    {
        if (_reading)
        {
            _readAgain = true;
            return;
        }
        _reading = true;
        _readAgain = false;
        _source.ReadAsync().PipeTo(Self, success: cluster => new ClusterRead(cluster), failure: e => new ClusterReadFailed(e));
    }

    private void ClusterChanged()
    {
        _layoutStale = true;
        _routesThrough = null;
    }

    private void Describe()
    {
        if (_describing)
        {
            _describeAgain = true;
            return;
        }
        Timers.Cancel("describe");
        _describing = true;
        _describeAgain = false;
        _doneWhileDescribing.Clear();
        _ec2.DescribeAsync(_settings.Tables)
            .PipeTo(Self, success: tables => new TablesDescribed(tables), failure: e => new DescribeFaulted(e));
    }

    /// <summary>
    /// EC2's tables as described, with the calls that went through while the describe was under way applied again (it may
    /// have been answered before them). The tables not known yet are adopted first.
    /// </summary>
    private void Described(IReadOnlyList<Ec2RouteTable> described)
    {
        _describing = false;
        _describeAttempt = 0;
        var tables = _doneWhileDescribing.Aggregate(described.ToImmutableArray(), RouteCalls.After);
        _doneWhileDescribing.Clear();
        _tables = tables;
        _layoutStale = true;
        Record(Reconciler.Adopted(_state, tables, _settings.Tables, _clock.Now), PlanNow);
        if (_describeAgain) Describe();
    }

    private void DescribeFailed(Exception cause)
    {
        _describing = false;
        var decision = FailedCallDecision.For(null, _describeAttempt, cause, _settings.RetryMaxAttempts, 0, _clock.Now);
        switch (decision)
        {
            case FailedCallDecision.RetryAfterBackoff retry:
                _describeAttempt = retry.Attempt;
                var delay = _settings.Backoff(Math.Min(retry.Attempt, _settings.RetryMaxAttempts), _jitter);
                _log.Info("Route manager: DescribeRouteTables answered {0}; retry {1} in {2:0} ms",
                    decision.Error.Code, retry.Attempt, delay.TotalMilliseconds);
                if (retry.Failed is { } failed) Record([failed], () => { });
                Timers.StartSingleTimer("describe", new DescribeDue(), delay);
                break;
            case FailedCallDecision.RecordAndRetryLater later:
                _describeAttempt = 0;
                _plannedSinceIdle = true; // a reconcile that could not plan is over too
                _log.Warning("Route manager: the route tables could not be described: {0}; described again at the next check",
                    decision.Error.Message);
                Record([later.Failed], () => { });
                break;
        }
        UpdateIdle();
    }

    /// <summary>
    /// Judged failed: not eligible as a target. Recovered less than the hold-down ago: not eligible while its subnet has
    /// another eligible node (the hold-down keeps routes from flapping back; it must not keep them on a dead node when the
    /// recovered one is all the subnet has). A change plans again at once.
    /// </summary>
    private void HealthChanged(SubnetId subnet, Func<ImmutableSortedSet<NodeName>, ImmutableSortedSet<NodeName>> change)
    {
        var before = _failedBySubnet.GetValueOrDefault(subnet, ImmutableSortedSet<NodeName>.Empty);
        var after = change(before);
        if (before.SetEquals(after)) return;
        _failedBySubnet[subnet] = after;
        PlanNow();
    }

    private ImmutableHashSet<NodeName> Failed => [.. _failedBySubnet.Values.SelectMany(f => f)];

    private RoutingSnapshot WithHealth(RoutingSnapshot cluster)
    {
        var now = _clock.Now;
        var failed = Failed;
        bool IsFailed(PlanNode n) => !n.Healthy || failed.Contains(n.Name);
        bool HeldDown(PlanNode n) => _recoveredAt.TryGetValue(n.Name, out var at) && now - at < _settings.HoldDown;
        var settled = cluster.Nodes.Where(n => !IsFailed(n) && !HeldDown(n)).Select(n => n.Subnet).ToHashSet();
        return cluster with
        {
            Nodes = [.. cluster.Nodes.Select(n =>
                IsFailed(n) || (HeldDown(n) && settled.Contains(n.Subnet)) ? n with { Healthy = false } : n)],
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

    // ---- planning ------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Plans from the kept inputs and replaces the waiting work with what differs: the layout again only when the cluster,
    /// the tables or their budgets changed; the targets every time (health).
    /// </summary>
    private void PlanNow()
    {
        Timers.Cancel("replan");
        if (_cluster is null || _tables is not { } tables)
        {
            UpdateIdle();
            return;
        }
        var cluster = WithHealth(_cluster.Snapshot());
        if (_host is { } host) cluster = WithoutHost(cluster, host, _liveMember);
        var input = Reconciler.Input(cluster, tables, _state, _settings.RouteLimit);
        if (!_budgetsPending && Reconciler.BudgetsObserved(_state, input, _clock.Now) is { } observed)
        {
            _budgetsPending = true;
            _layoutStale = true;
            Record([observed], () =>
            {
                _budgetsPending = false;
                PlanNow();
            });
            return;
        }
        if (_layoutStale || _layout is null)
        {
            _layout = RoutePlanner.Layout(input, out var shortfalls);
            _layoutStale = false;
            if (_layout is null)
            {
                Refused(string.Join("; ", shortfalls));
                return;
            }
        }
        _lastRefusal = null;
        var plan = RoutePlanner.AssignTargets(_layout, input, _state.AsPlan());
        _lastPlan = plan;
        _plannedSinceIdle = true;
        var failed = Failed;
        _work = _work.Replanned(Reconciler.Diff(_state, tables, plan, input, _planReason), failed);
        _planReason = "plan";
        Record(ReportWithoutHealthy(plan, input), () => { });
        Dispatch();
    }

    private void Refused(string refusal)
    {
        _log.Error("Route manager: no change made: the route budget is too small: {0}", refusal);
        _work = _work.Replanned([], Failed);
        _plannedSinceIdle = true;
        if (refusal != _lastRefusal) Record([new PlanRefused(refusal, _clock.Now, "budget")], () => { });
        _lastRefusal = refusal;
        UpdateIdle();
    }

    /// <summary>A subnet whose every node failed keeps its routes; that is recorded once and logged at error level on every plan.</summary>
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

    // ---- carrying out the work -----------------------------------------------------------------------------------------

    /// <summary>Starts what may start now, and looks again when a token or a backoff is due.</summary>
    private void Dispatch()
    {
        var now = _clock.Now;
        var (work, started, wakeAt) = _work.Take(now, Room(), _settings.Calls, Failed);
        _work = work;
        foreach (var operation in started) Start(operation);
        if (wakeAt is { } at) Timers.StartSingleTimer("dispatch", new DispatchDue(), at - now);
        UpdateIdle();
    }

    /// <summary>The routes each table may still take: its limit (configured, or learned from EC2) less the routes it holds.</summary>
    private Dictionary<string, int> Room() => (_tables ?? []).ToDictionary(t => t.Id, t =>
        Math.Min(_settings.RouteLimit, _state.LearnedLimits.GetValueOrDefault(t.Id, int.MaxValue)) - t.Routes.Count(r => !r.IsLocal));

    private void Start(StartedOperation started)
    {
        var operation = started.Operation;
        if (!RouteCalls.NeedsCall(operation))
        {
            if (operation is RouteOperation.DropClaim drop)
                _log.Warning("Route manager: {0} in {1} {2}; left alone", drop.Cidr, drop.Table, drop.Reason);
            Record([RouteCalls.Found(operation, _clock.Now)], () => Finished(operation));
            return;
        }
        Record(RouteCalls.RecordFirst(operation, _clock.Now), () => Call(operation)
            .PipeTo(Self, success: () => new CallSucceeded(operation), failure: e => new CallFaulted(started, e)));
    }

    private Task Call(RouteOperation operation) => operation switch
    {
        RouteOperation.DisableSourceDestCheck check => _ec2.DisableSourceDestCheckAsync(check.Eni),
        RouteOperation.Create create => _ec2.CreateRouteAsync(create.Table, create.Cidr, create.Eni),
        RouteOperation.Replace replace => _ec2.ReplaceRouteAsync(replace.Table, replace.Cidr, replace.Eni),
        RouteOperation.Delete delete => _ec2.DeleteRouteAsync(delete.Table, delete.Cidr),
        _ => throw new ArgumentException($"{operation} makes no EC2 call", nameof(operation)),
    };

    private void Succeeded(RouteOperation operation)
    {
        if (_tables is { } tables) _tables = RouteCalls.After(tables, operation);
        if (_describing) _doneWhileDescribing.Add(operation);
        Record([RouteCalls.Succeeded(operation, _clock.Now)], () => Finished(operation));
    }

    /// <summary>The operation's record is written: its key is free, and what waits may start.</summary>
    private void Finished(RouteOperation operation)
    {
        _work = _work.Finished(operation);
        Dispatch();
    }

    private void Faulted(StartedOperation started, Exception exception)
    {
        var operation = started.Operation;
        var routes = _tables?.FirstOrDefault(t => t.Id == operation.Table)?.Routes.Count(r => !r.IsLocal) ?? 0;
        var decision = FailedCallDecision.For(operation, started.Attempt, exception, _settings.RetryMaxAttempts, routes, _clock.Now);
        var error = decision.Error;
        var action = RouteCalls.ActionOf(operation);
        switch (decision)
        {
            case FailedCallDecision.RetryAfterBackoff retry:
                var delay = _settings.Backoff(Math.Min(retry.Attempt, _settings.RetryMaxAttempts), _jitter);
                _log.Info("Route manager: {0} {1} answered {2}; retry {3} in {4:0} ms", action, operation.Table, error.Code, retry.Attempt,
                    delay.TotalMilliseconds);
                _work = _work.RetryLater(operation, retry.Attempt, _clock.Now + delay, error.IsThrottling, _clock.Now, Failed);
                if (retry.Failed is { } failed) Record([failed], () => { });
                Dispatch();
                break;
            case FailedCallDecision.LearnRouteLimit learn:
                _log.Warning("Route manager: {0} holds no more than {1} routes; planning again within that",
                    learn.Learned.Table, learn.Learned.Limit);
                _planReason = "budget";
                _layoutStale = true;
                Record([learn.Learned], () =>
                {
                    _work = _work.Finished(operation);
                    Describe();
                });
                break;
            case FailedCallDecision.DescribeAgain:
                _work = _work.Finished(operation);
                Describe();
                break;
            case FailedCallDecision.RecordAlreadyGone gone:
                if (_tables is { } tables) _tables = RouteCalls.After(tables, operation);
                Record([gone.Deleted], () => Finished(operation));
                break;
            case FailedCallDecision.RecordAndRetryLater later:
                _log.Warning("Route manager: {0} {1} failed: {2}; recorded, and tried again at the next check", action, operation.Table,
                    error.Message);
                _work = _work.RetryLater(operation, 0, _clock.Now + _settings.ReconcileInterval, false, _clock.Now, Failed);
                Record([later.Failed], Dispatch);
                break;
        }
    }

    /// <summary>
    /// When a plan is carried out and nothing else is under way, one more "pass" is done (what tests and the simulation
    /// wait for); the supervisors are told the routes through their nodes when those changed and no repair is under way
    /// (a list in the middle of a failover would be out of date at once).
    /// </summary>
    private void UpdateIdle()
    {
        if (Idle && _plannedSinceIdle)
        {
            _plannedSinceIdle = false;
            _passes++;
            _lastPassAt = _clock.Now;
        }
        if (_routesThrough is null && !_work.Repairing(Failed)) TellChangedRoutes();
    }

    // ---- the standby repair's lists -------------------------------------------------------------------------------------

    /// <summary>
    /// The list for one subnet's supervisor: the confirmed routes whose target is a node of the subnet, and the subnet's
    /// ENIs; null before the cluster is known. A claimed route not yet confirmed is left out: a standby move would make a
    /// new manager take the claim for someone else's route.
    /// </summary>
    private RoutesThrough? RoutesThroughOf(SubnetId subnet)
    {
        if (_cluster is null) return null;
        if (_routesThrough is null)
        {
            var nodes = _cluster.Parts.Values.SelectMany(p => p.Nodes).ToList();
            var subnetOf = nodes.ToDictionary(n => n.Name, n => n.Subnet);
            var routes = _state.Owned
                .SelectMany(t => t.Value.Values.Where(r => r.Confirmed).Select(r => new RouteThrough(t.Key, r.Cidr, r.Target)))
                .Where(r => subnetOf.ContainsKey(r.Node))
                .ToLookup(r => subnetOf[r.Node]);
            _routesThrough = nodes.GroupBy(n => n.Subnet).ToImmutableDictionary(g => g.Key, g => RoutesThrough.Of(
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

    // ---- the journal -----------------------------------------------------------------------------------------------------

    /// <summary>
    /// Persists the events without holding other messages back (a failure must not wait for a write), applies each once
    /// written, then runs <paramref name="then"/>: at once when there are none. Akka writes them in order, batching what
    /// comes while a write is under way.
    /// </summary>
    private void Record(IEnumerable<IRouteEvent> events, Action then)
    {
        var list = events.ToList();
        if (list.Count == 0)
        {
            then();
            return;
        }
        var left = list.Count;
        _writesPending++;
        var started = Stopwatch.GetTimestamp();
        PersistAllAsync(list, e =>
        {
            _state = _state.Apply(e);
            if (e is RouteCreated or RouteReplaced or RouteDeleted or RouteClaimDropped) _routesThrough = null;
            Context.System.EventStream.Publish(e);
            if (LastSequenceNr % _settings.SnapshotEvery == 0) SaveSnapshot(_state);
            if (--left > 0) return;
            Context.System.EventStream.Publish(new Observed.JournalWritten("routes", Stopwatch.GetElapsedTime(started)));
            Context.System.EventStream.Publish(new Observed.RoutesNow(_state));
            _writesPending--;
            then();
            UpdateIdle();
        });
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        Context.System.EventStream.Publish(new Observed.JournalWriteFailed("routes", cause.Message));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        Context.System.EventStream.Publish(new Observed.JournalWriteFailed("routes", cause.Message));
        base.OnPersistRejected(cause, @event, sequenceNr);
    }
}
