using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Akka.TestKit;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Health;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Topology;
using Romana.Host.Audit;
using Romana.Host.Composition;
using Romana.Host.Documents;
using Romana.Host.Ec2;
using Romana.Host.Ipam;
using Romana.Host.Observability;
using Romana.Host.Persistence;
using Romana.Host.Routing;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Host.Simulation;

/// <summary>
/// How to run: where the journal goes (default: memory, kept by nobody),
/// EC2's latency, the step, a callback as virtual time advances, and what stops the run (an interrupted command).
/// </summary>
public sealed record SimulationOptions(string? JournalPath = null, TimeSpan? Ec2Latency = null, TimeSpan? Step = null,
    Action<TimeSpan>? OnTime = null, IReadOnlyList<TimeSpan>? CaptureAt = null, CancellationToken Cancel = default,
    AuditSettings? Audit = null);

/// <summary>The live state at a moment: what the IPAM actors and the route manager answered.</summary>
public sealed record Capture(DateTimeOffset At, IpamMessages.IpamStateView Ipam, ImmutableArray<(string Table, OwnedRoute Route)> Routes);

public sealed record TimelineEntry(double At, string Event, ImmutableSortedDictionary<string, string> Details);

/// <summary>
/// A node's failure: when it failed, when its supervisor judged it failed, and when its routes were repaired: the first
/// moment EC2 held no route to it and every pod of its subnet was reachable again (null: never, within the run).
/// </summary>
public sealed record Failover(string Node, double FailedAt, double? DetectedAt, double? RoutesRepairedAt, int RoutesMoved);

/// <param name="Violation">The first route that should never exist (a loop, a route outside its subnet): the run fails.</param>
/// <param name="ConvergedAt">When every pod was first reachable from every source (null: never, within the run).</param>
/// <param name="NotConverged">At the end of the run, a pair still unreachable since <paramref name="NotConvergedSince"/>.</param>
public sealed record SimulationResult(ImmutableArray<TimelineEntry> Timeline, ImmutableArray<Failover> Failovers, PlanDocument Final,
    Violation? Violation, double? ViolationAt, int InvariantChecks, string Journal, TimeSpan Simulated, TimeSpan Elapsed,
    DateTimeOffset Start, ImmutableArray<Capture> Captures, double? ConvergedAt = null, Violation? NotConverged = null,
    double? NotConvergedSince = null, int SourceDestChecksDisabled = 0, SimulationMetrics? Metrics = null);

/// <summary>
/// What /metrics would show at the end of the run (the daemon's collectors, composed the same way), and what the in-memory
/// EC2 counted itself, to compare them with: calls received by action, and the routes to cluster nodes each table holds.
/// </summary>
public sealed record SimulationMetrics(string Text, ImmutableSortedDictionary<string, int> Ec2Calls,
    ImmutableSortedDictionary<string, int> Ec2PodRoutes);

/// <summary>
/// Runs a scenario on the production actors — IPAM, forwarder supervisors and probes, the route manager — with an
/// in-memory EC2 (EC2's own rate limit for mutating calls included) and simulated nodes, under Akka's test scheduler:
/// virtual time moves in small steps, and after each step the run waits until every actor has done what that moment
/// asked of it. Whenever what EC2 holds or the truth (which nodes are down) changed, the reachability checker walks
/// every (source, block) pair of what EC2 holds against the truth: a route that should never exist is a violation; a pod
/// unreachable because its route is not in place yet, or still leads to a dead node, means not converged, and the run
/// says how long convergence took. A failover is repaired when EC2 holds no route to the dead node and every pod of its
/// subnet is reachable.
/// </summary>
public sealed class SimulationRun : IAsyncDisposable
{
    private static readonly string[] Quiet = ["RouteClaimed", "RouteTableAdopted", "SourceDestCheckDisabled", "RouteBudgetsObserved"];

    private readonly Scenario _scenario;
    private readonly ClusterTopology _topology;
    private readonly JournalSettings _journal;
    private readonly TimeSpan _step;
    private readonly HealthSettings _health;
    private readonly SimulatedNodes _nodes = new();
    private readonly ConcurrentQueue<IRomanaEvent> _events = new();
    private readonly List<TimelineEntry> _timeline = new();
    private readonly List<ClusterNode> _members;
    private Ec2Lab _ec2 = null!;
    private RomanaHost _romana = null!;
    private IActorRef _forwarderHealth = ActorRefs.Nobody;
    private TestScheduler _scheduler = null!;
    private IActorRef _routes = ActorRefs.Nobody;
    private DateTimeOffset _start;
    private RouteManagerView? _routeManager;
    private int _pendingDelays;
    private int _checks;
    private int _checksDisabled;

    // The truth, as checked: what IPAM holds (read again when nodes come or go), what EC2 holds (a change counter), and
    // the state of convergence and of each failure.
    private RoutingSnapshot? _cluster;
    private long _routeChanges;
    private long _observedChanges = -1;
    private bool _truthChanged = true;
    private double? _convergingSince = 0;
    private double? _convergedAt;
    private Violation? _unreachable;
    private readonly List<(string Node, double FailedAt)> _unrepaired = new();

    private readonly Action<TimeSpan>? _onTime;
    private readonly CancellationToken _cancel;
    private readonly Queue<TimeSpan> _captureAt;
    private readonly List<Capture> _captures = new();

    private SimulationRun(Scenario scenario, SimulationOptions options)
    {
        _onTime = options.OnTime;
        _cancel = options.Cancel;
        _captureAt = new Queue<TimeSpan>((options.CaptureAt ?? []).Order());
        _scenario = scenario;
        _topology = TopologyCarver.Carve(scenario.Cluster.Topology);
        // A run whose journal nobody keeps writes it to memory: the actors persist as always, and nothing waits on a disk.
        _journal = options.JournalPath is { } path ? JournalSettings.Sqlite(path) : JournalSettings.InMemory();
        _step = options.Step ?? TimeSpan.FromMilliseconds(50);
        _members = [.. scenario.Cluster.Nodes];
        var defaults = HealthSettings.Default;
        _health = defaults with
        {
            ProbeInterval = scenario.Health?.ProbeInterval ?? defaults.ProbeInterval,
            FailureThreshold = scenario.Health?.FailureThreshold ?? defaults.FailureThreshold,
            RecoveryThreshold = scenario.Health?.RecoveryThreshold ?? defaults.RecoveryThreshold,
        };
        _health = _health with { ProbeTimeout = _health.ProbeInterval * 0.8 };
        Ec2Latency = options.Ec2Latency ?? TimeSpan.FromMilliseconds(20);
    }

    private TimeSpan Ec2Latency { get; }
    private TimeSpan FineStep => TimeSpan.FromTicks(Math.Min(_step.Ticks, Ec2Latency.Ticks > 0 ? Ec2Latency.Ticks : _step.Ticks));
    private TimeSpan Elapsed => _scheduler.Now - _start;

    public static async Task<SimulationResult> RunAsync(Scenario scenario, SimulationOptions options, Action<string>? progress = null)
    {
        SimulationResult result;
        await using (var run = new SimulationRun(scenario, options)) result = await run.RunAsync(progress);
        // A kept journal gets its checkpoints (romana.audit.db beside it), so `romana audit replay` on it starts from one. They
        // are written once the run is over, not live: the run's actor system lives in virtual time (Akka's test scheduler),
        // where the live query's polling and the batches' timers would only move as the scenario advances the clock.
        var audit = options.Audit ?? AuditSettings.From(Config.Empty);
        if (options.JournalPath is { } path && audit.Projections.Enabled)
        {
            progress?.Invoke("audit: writing the journal's checkpoints");
            await AuditMaintenance.CatchUpAsync(JournalSettings.Sqlite(path), audit, reset: false, null, options.Cancel, progress);
        }
        return result;
    }

    private async Task<SimulationResult> RunAsync(Action<string>? progress)
    {
        var started = DateTime.UtcNow;
        await StartAsync(progress);
        Violation? violation = null;
        double? violationAt = null;
        var next = 0;
        progress?.Invoke($"running {_scenario.Until.TotalSeconds:0.#} s of cluster life in steps of {_step.TotalMilliseconds:0} ms");
        while (true)
        {
            _cancel.ThrowIfCancellationRequested();
            while (next < _scenario.Events.Count && _scenario.Events[next].At <= Elapsed)
            {
                await ApplyAsync(_scenario.Events[next++]);
                _truthChanged = true;
                await SettleAsync();
            }
            if (Observe() is { } found && violation is null)
            {
                violation = found;
                violationAt = Elapsed.TotalSeconds;
                _timeline.Add(Entry(Elapsed, "invariantViolated", ("violation", found.ToString())));
            }
            if (Elapsed >= _scenario.Until) break;
            // Fine steps while EC2 calls are under way, so that EC2's latency is not rounded up to a coarse step.
            _scheduler.Advance(_routeManager?.WaitingFor == "ec2" ? FineStep : _step);
            await SettleAsync();
            _onTime?.Invoke(Elapsed);
            while (_captureAt.TryPeek(out var capture) && capture <= Elapsed)
            {
                _captureAt.Dequeue();
                _captures.Add(await CaptureAsync());
            }
        }
        Collect();
        var final = await FinalAsync();
        await _romana.Registry.Get<MetricsFeed>().Ask<MetricsFeed.Flushed>(MetricsFeed.Flush.Instance, TimeSpan.FromSeconds(60));
        var metrics = new SimulationMetrics(await _romana.Services.GetRequiredService<RomanaMetrics>().ExportAsync(),
            _ec2.CallCounts.ToImmutableSortedDictionary(StringComparer.Ordinal),
            InEc2(_cluster!.Nodes).Tables.ToImmutableSortedDictionary(t => t.Table, t => t.Routes.Length, StringComparer.Ordinal));
        var timeline = _timeline.OrderBy(e => e.At).ToImmutableArray();
        return new SimulationResult(timeline, Failovers(timeline), final, violation, violationAt, _checks,
            _journal.Journal == JournalKind.Memory ? "(in memory)" : Path.GetFullPath(_journal.SqlitePath), _scenario.Until,
            DateTime.UtcNow - started, _start, [.. _captures], _convergedAt, _convergingSince is null ? null : _unreachable,
            _convergingSince, _checksDisabled, metrics);
    }

    // ---- setting up ------------------------------------------------------------------------------------------------

    /// <summary>
    /// The production composition with the simulation's adapters: virtual time (Akka's test scheduler, and a clock that
    /// reads it), the in-memory EC2 with its latency in virtual time, and simulated nodes answering probes.
    /// </summary>
    private async Task StartAsync(Action<string>? progress)
    {
        var config = ConfigurationFactory.ParseString("""
            akka.scheduler.implementation = "Akka.TestKit.TestScheduler, Akka.TestKit"
            akka.loglevel = OFF
            akka.stdout-loglevel = OFF
            """);
        var routeSettings = RouteSettings.Default with
        {
            Tables = new RouteTableSelector([], "romana.io/cluster", "simulation"),
            RouteLimit = _scenario.Cluster.RouteLimit,
        };
        progress?.Invoke($"IPAM: {_members.Count} nodes join, {_members.Sum(n => n.Pods):N0} pods get addresses");
        _romana = await RomanaHost.StartAsync(config, akka => akka
            .AddRomanaPersistence(_journal)
            .AddRomanaMetrics(_topology)
            .AddRomanaIpam(_topology)
            .AddRomanaRoutes(_topology)
            .AddRomanaHealth(_topology)
            .WithActors((system, _) => system.ActorOf(EventRecorder.Props(_events), "recorder")), services => services
            .AddSingleton<IClock>(sp => new SchedulerClock(sp.GetRequiredService<ActorSystem>().Scheduler))
            .AddSingleton<IEc2RouteTables>(sp => CreateEc2(sp.GetRequiredService<ActorSystem>(), sp.GetRequiredService<IClock>()))
            .AddSingleton<IHealthProbe>(_nodes)
            .AddSingleton(routeSettings)
            .AddSingleton(_health)
            .AddRomanaMetrics(), "romana-simulation");
        _routes = _romana.Registry.Get<VpcRouteActor>();
        _forwarderHealth = _romana.Registry.Get<ForwarderHealth>();

        // Virtual time stands still while the cluster loads, so the route manager's first describe (an EC2 call, answered
        // in virtual time) comes back only once the cluster is read whole: the first plan is the same on every run.
        await ClusterPlanning.LoadAsync(_scenario.Cluster with { Nodes = _members }, _romana.Ipam, _cancel);
        await ReadClusterAsync();
        _routes.Tell(new Reconcile("cluster loaded"));
        await SettleAsync();
        // Start on a multiple of the probe interval, so that every run sees the probes at the same moments.
        var interval = _health.ProbeInterval.Ticks;
        _scheduler.AdvanceTo(new DateTimeOffset((_scheduler.Now.UtcTicks / interval + 1) * interval, TimeSpan.Zero));
        _start = _scheduler.Now;
        foreach (var node in _members) Watch(node);
        await SettleAsync();
        progress?.Invoke("route manager: first pass");
    }

    /// <summary>EC2 in memory, its latency in the virtual time of <paramref name="system"/>'s test scheduler.</summary>
    private IEc2RouteTables CreateEc2(ActorSystem system, IClock clock)
    {
        _scheduler = (TestScheduler)system.Scheduler;
        _ec2 = new Ec2Lab(clock) { Latency = Ec2Latency, Delay = VirtualDelay, Throttle = Ec2Throttle.Ec2Default };
        _ec2.RouteChanged += _ => Interlocked.Increment(ref _routeChanges);
        var foreign = 0;
        foreach (var table in _scenario.Cluster.RouteTables)
        {
            _ec2.AddRouteTable(table.Id, routeLimit: _scenario.Cluster.RouteLimit, tags: [new("romana.io/cluster", "simulation")],
                vpcCidr: "10.0.0.0/8");
            for (var f = 0; f < table.ForeignRoutes; f++)
                _ec2.PutRoute(table.Id, $"192.168.{foreign++ % 256}.{f % 64 * 4}/30", $"pcx-foreign-{f}");
        }
        return new Ec2LabRouteTables(_ec2);
    }

    private void Watch(ClusterNode node) =>
        _forwarderHealth.Tell(new HealthMessages.WatchNode(new SubnetId(node.Subnet), new NodeName(node.Name), Ipv4.Parse(node.Ip)));

    /// <summary>EC2's latency, in virtual time: the call completes when the scheduler passes its due time.</summary>
    private Task VirtualDelay(TimeSpan delay)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Increment(ref _pendingDelays);
        _scheduler.ScheduleOnce(delay, () =>
        {
            Interlocked.Decrement(ref _pendingDelays);
            done.TrySetResult();
        });
        return done.Task;
    }

    // ---- scenario events -------------------------------------------------------------------------------------------

    private async Task ApplyAsync(ScenarioEvent e)
    {
        var at = Elapsed;
        switch (e)
        {
            case ScenarioEvent.Fail fail:
                Fail(fail.Node, at);
                break;
            case ScenarioEvent.FailForwarder forwarder:
                var node = await ForwarderOfAsync(forwarder.Subnet) ?? throw new ScenarioException(new DocumentError(null,
                    $"$.events[{forwarder.Index}].failForwarder", DocumentReader.Render(forwarder.Subnet),
                    "no route of this subnet is planned yet, so no node forwards for it"));
                Fail(node, at, ("forwarderOf", forwarder.Subnet));
                break;
            case ScenarioEvent.Recover recover:
                _nodes.Recover(new NodeName(recover.Node));
                _unrepaired.RemoveAll(f => f.Node == recover.Node);
                _timeline.Add(Entry(at, "recover", ("node", recover.Node)));
                break;
            case ScenarioEvent.AddNode add:
                await ClusterPlanning.AddNodeAsync(_romana.Ipam, add.Node);
                await ClusterPlanning.AllocatePodsAsync(_romana.Ipam, add.Node, _cancel);
                _members.Add(add.Node);
                await ReadClusterAsync();
                Watch(add.Node);
                _routes.Tell(new Reconcile("node added"));
                _timeline.Add(Entry(at, "addNode", ("node", add.Node.Name), ("subnet", add.Node.Subnet),
                    ("pods", add.Node.Pods.ToString())));
                break;
            case ScenarioEvent.RemoveNode remove:
                var member = _members.Single(m => m.Name == remove.Node);
                var reply = await _romana.Ipam.AskAsync(new IpamMessages.RemoveNode(new NodeName(remove.Node)));
                if (reply is IpamMessages.Failed failed)
                    throw new ScenarioException(new DocumentError(null, $"$.events[{remove.Index}].removeNode",
                        DocumentReader.Render(remove.Node), failed.Error.Message));
                _members.Remove(member);
                await ReadClusterAsync();
                _unrepaired.RemoveAll(f => f.Node == remove.Node);
                _nodes.Recover(new NodeName(remove.Node)); // gone, not down
                _forwarderHealth.Tell(new HealthMessages.UnwatchNode(new SubnetId(member.Subnet), new NodeName(remove.Node)));
                _routes.Tell(new Reconcile("node removed"));
                _timeline.Add(Entry(at, "removeNode", ("node", remove.Node)));
                break;
            case ScenarioEvent.ThrottleEc2 throttle:
                _ec2.Throttle = new Ec2Throttle(0, 0); // an empty bucket that never refills: every mutating call is throttled
                _scheduler.ScheduleOnce(throttle.For, () =>
                {
                    _ec2.Throttle = Ec2Throttle.Ec2Default;
                    lock (_timeline) _timeline.Add(Entry(Elapsed, "ec2ThrottleEnded"));
                });
                _timeline.Add(Entry(at, "ec2Throttle", ("for", $"{throttle.For.TotalSeconds:0.###}s")));
                break;
            case ScenarioEvent.RestartRouteManager:
                _routes.Tell(new RouteManagerSupervisor.Restart());
                _timeline.Add(Entry(at, "restartRouteManager"));
                break;
        }
    }

    private void Fail(string node, TimeSpan at, params (string Key, string Value)[] details)
    {
        _nodes.Fail(new NodeName(node));
        _unrepaired.Add((node, at.TotalSeconds));
        _timeline.Add(Entry(at, "fail", [("node", node), .. details]));
    }

    /// <summary>
    /// The node that the subnet's own route (its whole pod prefix) targets now: in EC2 if it is there, else in the route
    /// manager's plan.
    /// </summary>
    private async Task<string?> ForwarderOfAsync(string subnet)
    {
        var prefix = _topology.FindSubnet(new SubnetId(subnet))!.PodPrefix;
        var byEni = _cluster!.Nodes.Where(n => n.Eni.Length > 0).ToDictionary(n => n.Eni, n => n.Name.Value);
        foreach (var table in _scenario.Cluster.RouteTables)
            if (_ec2.RoutesOf(table.Id).FirstOrDefault(r => r.Destination == prefix.ToString()) is { Target: var eni }
                && byEni.TryGetValue(eni, out var inEc2))
                return inEc2;
        var view = await _routes.Ask<RouteManagerView>(new GetRouteState(), TimeSpan.FromSeconds(60));
        return view.LastPlan?.Tables.SelectMany(t => t.Routes).FirstOrDefault(r => r.Cidr == prefix)?.Target.Value;
    }

    // ---- waiting for the actors ------------------------------------------------------------------------------------

    /// <summary>
    /// Asks every supervisor and the route manager until nothing new happened in one round: an actor that is persisting
    /// answers after its write, so when the answers come back with nothing new, the moment is done.
    /// </summary>
    private async Task SettleAsync()
    {
        for (var round = 0; round < 10_000; round++)
        {
            var before = (_events.Count, _ec2.CallCount);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var view = _routes.Ask<RouteManagerView>(new GetRouteState(), timeout.Token);
            await Task.WhenAll(_forwarderHealth.Ask<HealthMessages.SyncedAll>(new HealthMessages.SyncAll(), timeout.Token), view);
            _routeManager = await view;
            // Writing events, reading the cluster (IPAM) and handling an EC2 answer that came are real work: wait for them
            // (a capture or a check taken meanwhile would miss what is being written). An EC2 call still under its
            // latency, or a backoff, waits for virtual time.
            var realWork = _routeManager.WaitingFor is "journal" or "cluster"
                || (_routeManager.WaitingFor == "ec2" && Volatile.Read(ref _pendingDelays) == 0);
            if (realWork) await Task.Delay(1);
            else if ((_events.Count, _ec2.CallCount) == before) break;
        }
        Collect();
    }

    private async Task ReadClusterAsync() =>
        _cluster = await new IpamRoutingSource(_romana.Ipam.FrontDoor, _topology, TimeSpan.FromSeconds(60)).ReadAsync(_cancel);

    /// <summary>
    /// When EC2's routes or the truth changed since the last look: DESIGN.md section 2 checked on what EC2 holds, with the
    /// true health (subnets whose every node is down cannot be reached and are left out). Returns a route that should never
    /// exist; an unreachable pod only keeps the cluster "converging", and the moment it ends is recorded. Each failure not
    /// yet repaired is looked at too.
    /// </summary>
    private Violation? Observe()
    {
        var changes = Interlocked.Read(ref _routeChanges);
        if (changes == _observedChanges && !_truthChanged) return null;
        _observedChanges = changes;
        _truthChanged = false;
        var (input, inEc2) = Truth();
        _checks++;
        var violation = ReachabilityChecker.FirstViolation(input, inEc2);
        RepairsSeen(input, inEc2);
        if (violation is { Kind: ViolationKind.Wrong }) return violation;
        if (violation is not null)
        {
            _convergingSince ??= Elapsed.TotalSeconds;
            _unreachable = violation;
        }
        else if (_convergingSince is { } since)
        {
            _convergedAt ??= Elapsed.TotalSeconds;
            _timeline.Add(Entry(Elapsed, "converged", ("after", $"{Elapsed.TotalSeconds - since:0.###}s"),
                ("pairs", $"{2 * input.Subnets.Length * input.Blocks.Length}")));
            _convergingSince = null;
            _unreachable = null;
        }
        return null;
    }

    /// <summary>The cluster with the true health, without the blocks of subnets that are all down, and what EC2 holds.</summary>
    private (RoutingInput Input, RoutePlan InEc2) Truth()
    {
        var cluster = _cluster!;
        var nodes = cluster.Nodes.Select(n => n with { Healthy = n.Healthy && !_nodes.IsDown(n.Name) }).ToList();
        var dark = nodes.GroupBy(n => n.Subnet).Where(g => g.All(n => !n.Healthy)).Select(g => g.Key).ToHashSet();
        var owners = nodes.ToDictionary(n => n.Name);
        var input = new RoutingInput(cluster.Subnets, [.. nodes],
            [.. cluster.Blocks.Where(b => owners.TryGetValue(b.Owner, out var o) && !dark.Contains(o.Subnet))], []);
        return (input, InEc2(nodes));
    }

    /// <summary>
    /// A failure is repaired once EC2 holds no route to the node and every pod of its subnet that a route covers is reachable
    /// (in the middle of a first convergence some are not routed yet: that is the plan's work, not the failover's).
    /// </summary>
    private void RepairsSeen(RoutingInput input, RoutePlan inEc2)
    {
        foreach (var (node, failedAt) in _unrepaired.ToList())
        {
            var name = new NodeName(node);
            if (inEc2.Tables.Any(t => t.Routes.Any(r => r.Target == name))) continue;
            var subnetOf = input.Nodes.ToDictionary(n => n.Name, n => n.Subnet);
            var own = input with { Blocks = [.. input.Blocks.Where(b => subnetOf[b.Owner] == subnetOf[name])] };
            if (ReachabilityChecker.FirstViolation(own, inEc2, routedOnly: true) is not null) continue;
            _unrepaired.Remove((node, failedAt));
            _timeline.Add(Entry(Elapsed, "routesRepaired", ("node", node), ("after", $"{Elapsed.TotalSeconds - failedAt:0.###}s")));
        }
    }

    private RoutePlan InEc2(IReadOnlyList<PlanNode> nodes)
    {
        var byEni = nodes.Where(n => n.Eni.Length > 0).ToDictionary(n => n.Eni, n => n.Name);
        return new RoutePlan([.. _scenario.Cluster.RouteTables.Select(t => new TablePlan(t.Id, 0,
            [.. _ec2.RoutesOf(t.Id).Where(r => byEni.ContainsKey(r.Target))
                .Select(r => new PlannedRoute(Ipv4Cidr.Parse(r.Destination), byEni[r.Target], r.Target))]))], 0, []);
    }

    // ---- what happened ---------------------------------------------------------------------------------------------

    private void Collect()
    {
        while (_events.TryDequeue(out var e))
        {
            if (e is SourceDestCheckDisabled) _checksDisabled++;
            if (Quiet.Contains(e.GetType().Name)) continue;
            var at = e.At - _start;
            lock (_timeline) _timeline.Add(e switch
            {
                HealthMessages.ForwarderFailed f => Entry(at, "forwarderFailed", ("node", f.Node.Value), ("subnet", f.Subnet.Value),
                    ("reason", f.Reason)),
                HealthMessages.ForwarderRecovered r => Entry(at, "forwarderRecovered", ("node", r.Node.Value), ("subnet", r.Subnet.Value),
                    ("reason", r.Reason)),
                RouteCreated c => Entry(at, "routeCreated", ("table", c.Table), ("cidr", c.Cidr.ToString()), ("target", c.Target.Value),
                    ("reason", c.Reason)),
                RouteReplaced r => Entry(at, "routeReplaced", ("table", r.Table), ("cidr", r.Cidr.ToString()),
                    ("from", r.PreviousTarget.Value), ("to", r.Target.Value), ("reason", r.Reason)),
                RouteDeleted d => Entry(at, "routeDeleted", ("table", d.Table), ("cidr", d.Cidr.ToString()), ("target", d.Target.Value),
                    ("reason", d.Reason)),
                NoHealthyForwarder n => Entry(at, "noHealthyForwarder", ("subnet", n.Subnet.Value), ("nodes", string.Join(",", n.Failed))),
                RouteLimitLearned l => Entry(at, "routeLimitLearned", ("table", l.Table), ("limit", l.Limit.ToString())),
                Ec2CallFailed f => Entry(at, "ec2CallFailed", ("action", f.Action), ("table", f.Table), ("code", f.Code)),
                PlanRefused p => Entry(at, "planRefused", ("shortfalls", p.Shortfalls)),
                _ => Entry(at, e.GetType().Name, ("reason", e.Reason)),
            });
        }
    }

    private static ImmutableArray<Failover> Failovers(ImmutableArray<TimelineEntry> timeline)
    {
        var failovers = new List<Failover>();
        foreach (var fail in timeline.Where(e => e.Event == "fail"))
        {
            var node = fail.Details["node"];
            var recovered = timeline.FirstOrDefault(e => e.Event == "recover" && e.Details["node"] == node && e.At >= fail.At)?.At
                ?? double.MaxValue;
            var detected = timeline.FirstOrDefault(e => e.Event == "forwarderFailed" && e.Details["node"] == node && e.At >= fail.At
                && e.At <= recovered)?.At;
            var moved = timeline.Count(e => e.Event == "routeReplaced" && e.Details["from"] == node
                && e.At >= fail.At && e.At <= recovered);
            var repaired = timeline.FirstOrDefault(e => e.Event == "routesRepaired" && e.Details["node"] == node && e.At >= fail.At
                && e.At <= recovered)?.At;
            failovers.Add(new Failover(node, fail.At, detected, repaired, moved));
        }
        return [.. failovers];
    }

    private async Task<Capture> CaptureAsync()
    {
        var ipam = (IpamMessages.IpamStateView)await _romana.Ipam.AskAsync(new IpamMessages.GetIpamState());
        var routes = await _routes.Ask<RouteManagerView>(new GetRouteState(), TimeSpan.FromSeconds(60));
        return new Capture(_scheduler.Now, ipam, routes.Routes);
    }

    private async Task<PlanDocument> FinalAsync()
    {
        var state = (IpamMessages.IpamStateView)await _romana.Ipam.AskAsync(new IpamMessages.GetIpamState());
        var view = await _routes.Ask<RouteManagerView>(new GetRouteState(), TimeSpan.FromSeconds(60));
        var file = _scenario.Cluster with
        {
            Nodes = [.. _members.Select(m => m with { Healthy = !view.Failed.Contains(new NodeName(m.Name)) })]
        };
        var input = ClusterPlanning.InputOf(file, _topology, state);
        var plan = view.LastPlan ?? new RoutePlan([], 0, []);
        return ClusterPlanning.Document(file, _topology, state, input, plan);
    }

    private TimelineEntry Entry(TimeSpan at, string name, params (string Key, string Value)[] details) =>
        new(Math.Round(at.TotalSeconds, 3), name, details.ToImmutableSortedDictionary(d => d.Key, d => d.Value));

    public async ValueTask DisposeAsync()
    {
        if (_romana is not null) await _romana.DisposeAsync();
    }
}
