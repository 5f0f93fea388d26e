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
using Romana.Host.Composition;
using Romana.Host.Documents;
using Romana.Host.Ec2;
using Romana.Host.Ipam;
using Romana.Host.Persistence;
using Romana.Host.Routing;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Host.Simulation;

/// <summary>
/// How to run: where the journal goes (default: a temporary file),
/// EC2's latency, the step, a callback as virtual time advances, and what stops the run (an interrupted command).
/// </summary>
public sealed record SimulationOptions(string? JournalPath = null, TimeSpan? Ec2Latency = null, TimeSpan? Step = null,
    Action<TimeSpan>? OnTime = null, IReadOnlyList<TimeSpan>? CaptureAt = null, CancellationToken Cancel = default);

/// <summary>The live state at a moment: what the IPAM actors and the route manager answered.</summary>
public sealed record Capture(DateTimeOffset At, IpamMessages.IpamStateView Ipam, ImmutableArray<(string Table, OwnedRoute Route)> Routes);

public sealed record TimelineEntry(double At, string Event, ImmutableSortedDictionary<string, string> Details);

public sealed record Failover(string Node, double FailedAt, double? DetectedAt, double? RoutesRepairedAt, int RoutesMoved);

public sealed record SimulationResult(ImmutableArray<TimelineEntry> Timeline, ImmutableArray<Failover> Failovers, PlanDocument Final,
    Violation? Violation, double? ViolationAt, int InvariantChecks, string Journal, TimeSpan Simulated, TimeSpan Elapsed,
    DateTimeOffset Start, ImmutableArray<Capture> Captures);

/// <summary>
/// Runs a scenario on the production actors — IPAM, forwarder supervisors and probes, the route manager — with an
/// in-memory EC2 and simulated nodes, under Akka's test scheduler: virtual time moves in small steps, and after each
/// step the run waits until every actor has done what that moment asked of it. After every scenario event, once health
/// judgements match the truth and the routes have settled, the reachability checker walks every (subnet, block) pair of
/// what EC2 holds.
/// </summary>
public sealed class SimulationRun : IAsyncDisposable
{
    private static readonly string[] Quiet = ["RouteClaimed", "RouteTableAdopted", "SourceDestCheckDisabled"];

    private readonly Scenario _scenario;
    private readonly ClusterTopology _topology;
    private readonly FreshJournal? _temporaryJournal;
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
    private long _passMark;
    private RouteManagerView? _routeManager;
    private int _pendingDelays;
    private int _checks;

    private readonly Action<TimeSpan>? _onTime;
    private readonly CancellationToken _cancel;
    private readonly Queue<TimeSpan> _captureAt;
    private readonly List<Capture> _captures = new();

    private SimulationRun(Scenario scenario, SimulationOptions options, FreshJournal? temporary)
    {
        _onTime = options.OnTime;
        _cancel = options.Cancel;
        _captureAt = new Queue<TimeSpan>((options.CaptureAt ?? []).Order());
        _scenario = scenario;
        _topology = TopologyCarver.Carve(scenario.Cluster.Topology);
        _temporaryJournal = temporary;
        _journal = temporary?.Settings ?? JournalSettings.Sqlite(options.JournalPath!);
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
        var temporary = options.JournalPath is null ? await FreshJournal.SqliteAsync() : null;
        await using var run = new SimulationRun(scenario, options, temporary);
        return await run.RunAsync(progress);
    }

    private async Task<SimulationResult> RunAsync(Action<string>? progress)
    {
        var started = DateTime.UtcNow;
        await StartAsync(progress);
        Violation? violation = null;
        double? violationAt = null;
        var next = 0;
        var checkDue = true;
        progress?.Invoke($"running {_scenario.Until.TotalSeconds:0.#} s of cluster life in steps of {_step.TotalMilliseconds:0} ms");
        while (true)
        {
            _cancel.ThrowIfCancellationRequested();
            while (next < _scenario.Events.Count && _scenario.Events[next].At <= Elapsed)
            {
                await ApplyAsync(_scenario.Events[next++]);
                checkDue = true;
                await SettleAsync();
            }
            if (checkDue && await ConvergedAsync())
            {
                checkDue = false;
                _checks++;
                if (await CheckAsync() is { } found && violation is null)
                {
                    violation = found;
                    violationAt = Elapsed.TotalSeconds;
                    _timeline.Add(Entry(Elapsed, "invariantViolated", ("violation", found.ToString())));
                }
            }
            if (Elapsed >= _scenario.Until) break;
            // Fine steps while the route manager works, so that EC2's latency is not rounded up to a coarse step.
            _scheduler.Advance(_routeManager?.Busy == true ? FineStep : _step);
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
        var timeline = _timeline.OrderBy(e => e.At).ToImmutableArray();
        return new SimulationResult(timeline, Failovers(timeline), final, violation, violationAt, _checks,
            _temporaryJournal is null ? Path.GetFullPath(_journal.SqlitePath) : "(temporary)", _scenario.Until, DateTime.UtcNow - started,
            _start, [.. _captures]);
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
            .AddRomanaIpam(_topology)
            .AddRomanaRoutes(_topology)
            .AddRomanaHealth(_topology)
            .WithActors((system, _) => system.ActorOf(EventRecorder.Props(_events), "recorder")), services => services
            .AddSingleton<IClock>(sp => new SchedulerClock(sp.GetRequiredService<ActorSystem>().Scheduler))
            .AddSingleton<IEc2RouteTables>(sp => CreateEc2(sp.GetRequiredService<ActorSystem>(), sp.GetRequiredService<IClock>()))
            .AddSingleton<IHealthProbe>(_nodes)
            .AddSingleton(routeSettings)
            .AddSingleton(_health), "romana-simulation");
        // Start on a multiple of the probe interval, so that every run sees the probes at the same moments.
        var interval = _health.ProbeInterval.Ticks;
        _scheduler.AdvanceTo(new DateTimeOffset((_scheduler.Now.UtcTicks / interval + 1) * interval, TimeSpan.Zero));
        _start = _scheduler.Now;
        _routes = _romana.Registry.Get<VpcRouteActor>();
        _forwarderHealth = _romana.Registry.Get<ForwarderHealth>();

        await ClusterPlanning.LoadAsync(_scenario.Cluster with { Nodes = _members }, _romana.Ipam, _cancel);
        foreach (var node in _members) Watch(node);
        _routes.Tell(new Reconcile("cluster loaded"));
        await SettleAsync();
        progress?.Invoke("route manager: first pass");
    }

    /// <summary>EC2 in memory, its latency in the virtual time of <paramref name="system"/>'s test scheduler.</summary>
    private IEc2RouteTables CreateEc2(ActorSystem system, IClock clock)
    {
        _scheduler = (TestScheduler)system.Scheduler;
        _ec2 = new Ec2Lab(clock) { Latency = Ec2Latency, Delay = VirtualDelay };
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
                _nodes.Fail(new NodeName(fail.Node));
                _timeline.Add(Entry(at, "fail", ("node", fail.Node)));
                break;
            case ScenarioEvent.Recover recover:
                _nodes.Recover(new NodeName(recover.Node));
                _timeline.Add(Entry(at, "recover", ("node", recover.Node)));
                break;
            case ScenarioEvent.AddNode add:
                await ClusterPlanning.AddNodeAsync(_romana.Ipam, add.Node);
                await ClusterPlanning.AllocatePodsAsync(_romana.Ipam, add.Node, _cancel);
                _members.Add(add.Node);
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
                _nodes.Recover(new NodeName(remove.Node)); // gone, not down
                _forwarderHealth.Tell(new HealthMessages.UnwatchNode(new SubnetId(member.Subnet), new NodeName(remove.Node)));
                _routes.Tell(new Reconcile("node removed"));
                _timeline.Add(Entry(at, "removeNode", ("node", remove.Node)));
                break;
            case ScenarioEvent.ThrottleEc2 throttle:
                _ec2.Throttle = new Ec2Throttle(0, 0); // an empty bucket that never refills: every mutating call is throttled
                _scheduler.ScheduleOnce(throttle.For, () =>
                {
                    _ec2.Throttle = null;
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

    // ---- waiting for the actors ------------------------------------------------------------------------------------

    /// <summary>
    /// Asks every supervisor and the route manager until nothing new happened in one round: an actor that is persisting
    /// answers after its write, so when the answers come back with nothing new, the moment is done.
    /// </summary>
    private async Task SettleAsync()
    {
        for (var round = 0; round < 10_000; round++)
        {
            var before = (_events.Count, _ec2.Calls.Count);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var view = _routes.Ask<RouteManagerView>(new GetRouteState(), timeout.Token);
            await Task.WhenAll(_topology.Subnets
                .Select(s => _forwarderHealth.Ask<HealthMessages.SubnetHealth>(new HealthMessages.Sync(s.Id), timeout.Token))
                .Append<Task>(view));
            _routeManager = await view;
            // Reading the cluster is real work (IPAM), and so is handling an EC2 answer that came: wait for them. An EC2
            // call still under its latency, or a backoff, waits for virtual time.
            var realWork = _routeManager.WaitingFor == "cluster"
                || (_routeManager.WaitingFor == "ec2" && Volatile.Read(ref _pendingDelays) == 0);
            if (realWork) await Task.Delay(1);
            else if ((_events.Count, _ec2.Calls.Count) == before) break;
        }
        Collect();
    }

    /// <summary>Converged: the nodes judged failed are the nodes that are down, and a pass since then left nothing to do.</summary>
    private async Task<bool> ConvergedAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var view = await _routes.Ask<RouteManagerView>(new GetRouteState(), timeout.Token);
        var down = _nodes.Down.Where(n => _members.Any(m => m.Name == n.Value)).ToHashSet();
        if (!down.SetEquals(view.Failed))
        {
            _passMark = view.Passes;
            return false;
        }
        return !view.Busy && view.Passes > _passMark && view.LastPlan is not null;
    }

    /// <summary>
    /// DESIGN.md section 2 on what EC2 holds,
    /// with the true health (subnets whose every node is down cannot be reached and are left out).
    /// </summary>
    private async Task<Violation?> CheckAsync()
    {
        var cluster = await new IpamRoutingSource(_romana.Ipam.FrontDoor, _topology, TimeSpan.FromSeconds(30)).ReadAsync();
        var nodes = cluster.Nodes.Select(n => n with { Healthy = n.Healthy && !_nodes.IsDown(n.Name) }).ToList();
        var dark = nodes.GroupBy(n => n.Subnet).Where(g => g.All(n => !n.Healthy)).Select(g => g.Key).ToHashSet();
        var owners = nodes.ToDictionary(n => n.Name);
        var input = new RoutingInput(cluster.Subnets, [.. nodes], [.. cluster.Blocks.Where(b => !dark.Contains(owners[b.Owner].Subnet))],
            []);
        var violation = ReachabilityChecker.FirstViolation(input, InEc2(nodes));
        _timeline.Add(Entry(Elapsed, violation is null ? "invariantsHeld" : "invariantsChecked",
            ("pairs", $"{input.Subnets.Length * input.Blocks.Length}")));
        return violation;
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
            var moved = detected is null
                ? []
                : timeline.Where(e => e.Event == "routeReplaced" && e.Details["from"] == node && e.At >= detected && e.At <= recovered)
                    .ToList();
            failovers.Add(new Failover(node, fail.At, detected, moved.Count > 0 ? moved.Max(e => e.At) : detected, moved.Count));
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
        if (_temporaryJournal is not null) await _temporaryJournal.DisposeAsync();
    }
}
