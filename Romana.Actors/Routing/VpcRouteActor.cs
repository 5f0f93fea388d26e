using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
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
/// </summary>
public sealed class VpcRouteActor : ReceivePersistentActor, IWithTimers
{
    private readonly IEc2RouteTables _ec2;
    private readonly IRoutingSource _source;
    private readonly RouteSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Random _jitter = new();
    private RouteManagerState _state = RouteManagerState.Empty;
    private Pass? _pass;
    private string? _again;
    private RoutePlan? _lastPlan;
    private string? _lastRefusal;
    private DateTimeOffset? _lastPassAt;
    private long _passes;
    private readonly Dictionary<SubnetId, ImmutableSortedSet<NodeName>> _failedBySubnet = new();
    private readonly Dictionary<NodeName, DateTimeOffset> _recoveredAt = new();
    private ImmutableSortedSet<SubnetId> _withoutHealthy = ImmutableSortedSet<SubnetId>.Empty;

    public VpcRouteActor(IEc2RouteTables ec2, IRoutingSource source, RouteSettings settings, IClock clock)
    {
        _ec2 = ec2;
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

    public static Props Props(IEc2RouteTables ec2, IRoutingSource source, RouteSettings settings, IClock clock) =>
        Akka.Actor.Props.Create(() => new VpcRouteActor(ec2, source, settings, clock));

    public const string Id = "vpc-routes";
    public override string PersistenceId => Id;
    public ITimerScheduler Timers { get; set; } = null!;

    private void Idle()
    {
        Command<Reconcile>(command => StartPass(command.Reason));
        Common();
    }

    private void Reconciling()
    {
        Command<Reconcile>(command => _again ??= command.Reason);
        Command<Continue>(step => step.Run());
        Common();
    }

    private void Common()
    {
        Command<GetRouteState>(_ => Sender.Tell(new RouteManagerView(_state.Tables,
            [.. _state.Owned.SelectMany(t => t.Value.Values.Select(r => (t.Key, r)))], _lastPlan, _lastRefusal, _lastPassAt, _passes, _pass is not null,
            [.. _failedBySubnet.Values.SelectMany(f => f)], _withoutHealthy, _pass?.WaitingFor)));
        Command<Health.HealthMessages.ForwarderFailed>(failed => HealthChanged(failed.Subnet, f => f.Add(failed.Node), "failover"));
        Command<Health.HealthMessages.ForwarderRecovered>(recovered =>
        {
            _recoveredAt[recovered.Node] = recovered.At;
            HealthChanged(recovered.Subnet, f => f.Remove(recovered.Node), "node recovered");
        });
        Command<Health.HealthMessages.SubnetHealth>(health => HealthChanged(health.Subnet, _ => health.Failed, "health status"));
        Command<SaveSnapshotSuccess>(saved => DeleteSnapshots(new SnapshotSelectionCriteria(saved.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(failed => _log.Warning(failed.Cause, "Route manager: snapshot not saved"));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
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

    /// <summary>Judged failed, or recovered less than the hold-down ago: not eligible as a target.</summary>
    private RoutingSnapshot WithHealth(RoutingSnapshot cluster)
    {
        var now = _clock.Now;
        return cluster with
        {
            Nodes = [.. cluster.Nodes.Select(n => n.Healthy
                && !(_failedBySubnet.TryGetValue(n.Subnet, out var failed) && failed.Contains(n.Name))
                && !(_recoveredAt.TryGetValue(n.Name, out var at) && now - at < _settings.HoldDown)
                    ? n : n with { Healthy = false })],
        };
    }

    // ---- a pass ----------------------------------------------------------------------------------------------------

    private void StartPass(string reason)
    {
        _pass = new Pass(reason) { WaitingFor = "cluster" };
        Become(Reconciling);
        Self.RunThen(_source.ReadAsync(), cluster =>
        {
            _pass.Cluster = WithHealth(cluster);
            Describe();
        }, e => EndPass($"the cluster state could not be read: {e.Message}"));
    }

    private void Describe()
    {
        _pass!.WaitingFor = "ec2";
        Self.RunThen(_ec2.DescribeAsync(_settings.Tables), Plan, e => Failed("DescribeRouteTables", "", e, Describe));
    }

    private void Plan(IReadOnlyList<Ec2RouteTable> tables)
    {
        var pass = _pass!;
        pass.WaitingFor = null;
        pass.Tables = tables;
        var adopted = tables.Where(t => !_state.Tables.Contains(t.Id))
            .Select(t => (IRouteEvent)new RouteTableAdopted(t.Id, _clock.Now, $"selected by {_settings.Tables}"));
        Record(adopted, () =>
        {
            var input = Reconciler.Input(pass.Cluster!, tables, _state, _settings.RouteLimit);
            var budgets = input.Tables.ToImmutableDictionary(t => t.Id, t => t.Budget);
            var serves = input.Tables.ToImmutableDictionary(t => t.Id, t => input.Subnets.Where(s => s.RouteTable == t.Id).Select(s => s.Id).ToImmutableArray());
            if (!budgets.OrderBy(b => b.Key).SequenceEqual(_state.Budgets.OrderBy(b => b.Key))
                || !serves.All(s => _state.Serves.TryGetValue(s.Key, out var known) && known.SequenceEqual(s.Value)))
            {
                Record([new RouteBudgetsObserved(budgets, _clock.Now, "tables described", serves)], () => Plan(tables));
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
            pass.RouteCounts = tables.ToDictionary(t => t.Id, t => t.Routes.Count(r => !r.IsLocal));
            pass.Operations = Reconciler.Diff(_state, tables, plan, input, pass.Reason == "budget" ? "budget" : "plan");
            Record(ReportWithoutHealthy(plan, input), Execute);
        });
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

    private void Execute()
    {
        var pass = _pass!;
        if (pass.Next == pass.Operations.Length)
        {
            EndPass(null);
            return;
        }
        var now = _clock.Now;
        switch (pass.Operations[pass.Next])
        {
            case RouteOperation.Confirm confirm:
                Record([new RouteCreated(confirm.Table, confirm.Cidr, confirm.Target, confirm.Eni, now, confirm.Reason)], Advance);
                break;
            case RouteOperation.DropClaim drop:
                _log.Warning("Route manager: {0} in {1} {2}; left alone", drop.Cidr, drop.Table, drop.Reason);
                Record([new RouteClaimDropped(drop.Table, drop.Cidr, now, drop.Reason)], Advance);
                break;
            case RouteOperation.Delete { Call: false } gone:
                Record([new RouteDeleted(gone.Table, gone.Cidr, gone.Target, now, gone.Reason)], Advance);
                break;
            case RouteOperation.DisableSourceDestCheck check:
                Call("ModifyNetworkInterfaceAttribute", "", () => _ec2.DisableSourceDestCheckAsync(check.Eni),
                    () => Record([new SourceDestCheckDisabled(check.Node, check.Eni, _clock.Now, check.Reason)], Advance));
                break;
            case RouteOperation.Create create:
                Record(create.Claimed ? [] : [new RouteClaimed(create.Table, create.Cidr, create.Target, create.Eni, now, create.Reason)], () =>
                    Call("CreateRoute", create.Table, () => _ec2.CreateRouteAsync(create.Table, create.Cidr, create.Eni), () =>
                    {
                        pass.RouteCounts[create.Table]++;
                        Record([new RouteCreated(create.Table, create.Cidr, create.Target, create.Eni, _clock.Now, create.Reason)], Advance);
                    }));
                break;
            case RouteOperation.Replace replace:
                Call("ReplaceRoute", replace.Table, () => _ec2.ReplaceRouteAsync(replace.Table, replace.Cidr, replace.Eni), () =>
                    Record([new RouteReplaced(replace.Table, replace.Cidr, replace.Previous, replace.Target, replace.Eni, _clock.Now, replace.Reason)], Advance));
                break;
            case RouteOperation.Delete delete:
                Call("DeleteRoute", delete.Table, () => _ec2.DeleteRouteAsync(delete.Table, delete.Cidr), () =>
                {
                    pass.RouteCounts[delete.Table]--;
                    Record([new RouteDeleted(delete.Table, delete.Cidr, delete.Target, _clock.Now, delete.Reason)], Advance);
                });
                break;
        }
    }

    private void Advance()
    {
        _pass!.Attempt = 0;
        _pass.Next++;
        Execute();
    }

    private void Call(string action, string table, Func<Task> call, Action succeeded)
    {
        _pass!.WaitingFor = "ec2";
        Self.RunThen(call(), () =>
        {
            _pass!.WaitingFor = null;
            succeeded();
        }, e => Failed(action, table, e, () => Call(action, table, call, succeeded)));
    }

    private void Failed(string action, string table, Exception exception, Action retry)
    {
        var pass = _pass!;
        pass.WaitingFor = null;
        var error = exception as Ec2Error ?? new Ec2Error("Unavailable", 503, exception.Message);
        var operation = pass.Next < pass.Operations.Length ? pass.Operations[pass.Next] : null;
        if (error.IsRetryable && pass.Attempt < _settings.RetryMaxAttempts)
        {
            var delay = _settings.Backoff(++pass.Attempt, _jitter);
            _log.Info("Route manager: {0} {1} answered {2}; retry {3} in {4:0} ms", action, table, error.Code, pass.Attempt, delay.TotalMilliseconds);
            pass.WaitingFor = "retry";
            Timers.StartSingleTimer("retry", new Continue(retry), delay);
            return;
        }
        if (error.IsRouteLimit && operation is RouteOperation.Create create)
        {
            var limit = pass.RouteCounts[create.Table];
            _log.Warning("Route manager: {0} holds no more than {1} routes; planning again within that", create.Table, limit);
            Record([new RouteLimitLearned(create.Table, limit, _clock.Now, "budget")], () => EndPass(null, again: "budget"));
            return;
        }
        if (error.IsAlreadyExists && operation is RouteOperation.Create)
        {
            // Claimed and not confirmed: the next describe tells whether the route that is there is Romana's.
            Advance();
            return;
        }
        if (error.IsRouteNotFound && operation is RouteOperation.Delete delete)
        {
            Record([new RouteDeleted(delete.Table, delete.Cidr, delete.Target, _clock.Now, "already gone from EC2")], Advance);
            return;
        }
        _log.Warning("Route manager: {0} {1} failed: {2}; recorded, and tried again on the next pass", action, table, error.Message);
        Record([new Ec2CallFailed(action, table, error.Code, error.Message, _clock.Now, "retried on the next pass")], () =>
        {
            if (error.IsRetryable) EndPass($"EC2 kept answering {error.Code}");
            else Advance();
        });
    }

    private void EndPass(string? problem, string? again = null)
    {
        if (problem is not null) _log.Warning("Route manager: pass ended early: {0}", problem);
        Timers.Cancel("retry");
        _pass = null;
        _passes++;
        _lastPassAt = _clock.Now;
        Become(Idle);
        var next = again ?? _again;
        _again = null;
        if (next is not null) Self.Tell(new Reconcile(next));
    }

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
            Context.System.EventStream.Publish(e);
            if (LastSequenceNr % _settings.SnapshotEvery == 0) SaveSnapshot(_state);
            if (--left == 0) then();
        });
    }

    private sealed class Pass(string reason)
    {
        public string Reason { get; } = reason;
        public RoutingSnapshot? Cluster { get; set; }
        public IReadOnlyList<Ec2RouteTable>? Tables { get; set; }
        public ImmutableArray<RouteOperation> Operations { get; set; } = [];
        public Dictionary<string, int> RouteCounts { get; set; } = new();
        public int Next { get; set; }
        public int Attempt { get; set; }
        /// <summary>What the pass waits for: the cluster's state, an EC2 answer, or a retry's backoff.</summary>
        public string? WaitingFor { get; set; }
    }
}
