using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Configuration;
using Amazon.EC2;
using Amazon.Runtime;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Health;
using Romana.Actors.Tests.Support;
using Romana.Host.Aws;
using Romana.Host.Composition;
using Romana.Host.Ec2;
using Romana.Host.Persistence;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Tests.Health;

/// <summary>
/// A subnet's supervisor (a1, a2, a3 of s1) whose probes the test controls, on a SQLite journal, with every message checked
/// by Romana's serializer (serialize-messages = on), talking to EC2's model through AWSSDK.EC2 over HTTP; a stand-in plays
/// the route manager. The stand-in has told the supervisor which routes are Romana's (as the manager does on a status),
/// then a2 stops answering.
/// </summary>
public sealed class StandbyRepairSupervisorTests : IAsyncLifetime
{
    private static readonly SubnetId S1 = new("s1");
    private static readonly NodeName A1 = new("a1"), A2 = new("a2"), A3 = new("a3");

    private static readonly HealthSettings Fast = HealthSettings.Default with
    {
        ProbeInterval = TimeSpan.FromMilliseconds(50),
        ProbeTimeout = TimeSpan.FromMilliseconds(40),
        StatusInterval = TimeSpan.FromMinutes(1),
        StandbyRepairAfter = TimeSpan.FromMilliseconds(300),
        StandbyRepairCheck = TimeSpan.FromSeconds(1),
    };

    /// <summary>Romana's routes through s1's nodes, as the route manager would send them.</summary>
    private static readonly RoutesThrough Owned = RoutesThrough.Of(S1,
        [new RouteThrough("rtb-a", Ipv4Cidr.Parse("100.64.0.0/24"), A2), new RouteThrough("rtb-a", Ipv4Cidr.Parse("100.64.0.64/26"), A2),
            new RouteThrough("rtb-a", Ipv4Cidr.Parse("100.64.0.128/26"), A1),
            new RouteThrough("rtb-b", Ipv4Cidr.Parse("100.64.0.0/24"), A2)],
        new Dictionary<NodeName, string> { [A1] = "eni-a1", [A2] = "eni-a2", [A3] = "eni-a3" });

    private readonly Ec2Lab _ec2 = new();
    private readonly Ec2QueryApiServer _endpoint;
    private readonly AmazonEC2Client _client;
    private readonly TempJournal _journal = new();
    private readonly ScriptedProbe _probe = new();
    private readonly ConcurrentQueue<(DateTimeOffset At, string Table, string Destination, string? Target)> _changes = new();
    private RomanaHost? _host;

    public StandbyRepairSupervisorTests()
    {
        _endpoint = Ec2QueryApiServer.Start(_ec2);
        _client = AwsEc2RouteTables.CreateClient("us-east-1", _endpoint.Url, TimeSpan.FromSeconds(10), new BasicAWSCredentials("t", "t"));
        _ec2.AddRouteTable("rtb-a", vpcCidr: "10.0.0.0/16");
        _ec2.AddRouteTable("rtb-b", vpcCidr: "10.0.0.0/16");
        _ec2.PutRoute("rtb-a", "0.0.0.0/0", "igw-1");
        _ec2.PutRoute("rtb-a", "100.64.0.0/24", "eni-a2");
        _ec2.PutRoute("rtb-a", "100.64.0.64/26", "eni-a2");
        _ec2.PutRoute("rtb-a", "100.64.0.128/26", "eni-a1");
        _ec2.PutRoute("rtb-a", "192.168.0.0/16", "eni-a2"); // someone else's route to the same ENI: never Romana's to move
        _ec2.PutRoute("rtb-b", "100.64.0.0/24", "eni-a2");
        _ec2.RouteChanged += change => _changes.Enqueue((DateTimeOffset.UtcNow, change.Table, change.Destination, change.Target));
    }

    private sealed class ScriptedProbe : IHealthProbe
    {
        public ConcurrentDictionary<NodeName, bool> Down { get; } = new();

        public Task<bool> ProbeAsync(NodeName node, Ipv4 ip, TimeSpan timeout, CancellationToken cancellation = default) =>
            Task.FromResult(!Down.ContainsKey(node));
    }

    /// <summary>A route manager that is gone: it receives and never answers.</summary>
    private sealed class Silent : ReceiveActor
    {
        public Silent(ConcurrentQueue<object> seen) => ReceiveAny(seen.Enqueue);
    }

    /// <summary>
    /// A route manager that acknowledges a failure on receipt and, when <paramref name="moveAfter"/> is given, moves the
    /// failed node's routes to a3 itself that long after (not through the call log: only the supervisor's calls are there).
    /// </summary>
    private sealed class Acknowledging : ReceiveActor, IWithTimers
    {
        public Acknowledging(ConcurrentQueue<object> seen, Ec2Lab ec2, TimeSpan? moveAfter)
        {
            Receive<ForwarderFailed>(failed =>
            {
                seen.Enqueue(failed);
                Sender.Tell(new FailoverNoted(failed.Subnet, failed.Node));
                if (moveAfter is { } after) Timers.StartSingleTimer("move", new Move(), after);
            });
            Receive<Move>(_ =>
            {
                foreach (var route in Owned.Routes.Where(r => r.Node == A2)) ec2.PutRoute(route.Table, route.Cidr.ToString(), "eni-a3");
            });
            ReceiveAny(seen.Enqueue);
        }

        public ITimerScheduler Timers { get; set; } = null!;

        private sealed record Move : INoSerializationVerificationNeeded;
    }

    /// <summary>
    /// The supervisor on the journal, watching a1 to a3, holding the manager's list; <paramref name="manager"/> stands in.
    /// </summary>
    private async Task<IActorRef> StartAsync(Func<ConcurrentQueue<object>, Props> manager, ConcurrentQueue<object> seen)
    {
        _host = await RomanaHost.StartAsync(ConfigurationFactory.ParseString("""
                akka.loglevel = WARNING
                akka.actor.serialize-messages = on
                """).WithFallback(ConfigurationFactory.ParseString(InProcessOnlySerializer.Hocon)),
            akka => akka.AddRomanaPersistence(_journal.Settings));
        var system = _host.System;
        var routeManager = system.ActorOf(manager(seen), "route-manager");
        var supervisor = system.ActorOf(SubnetHealthSupervisor.Props(S1, _probe, Fast, routeManager, SystemClock.Instance,
            ec2: new AwsEc2RouteTables(_client)), "supervisor");
        foreach (var (node, i) in new[] { A1, A2, A3 }.Select((n, i) => (n, i)))
            supervisor.Tell(new WatchNode(S1, node, new Ipv4(0x0A000001u + (uint)i)));
        supervisor.Tell(Owned, routeManager);
        // The status names the list once the supervisor holds it.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while ((await supervisor.Ask<SubnetHealth>(new GetSubnetHealth(S1), TimeSpan.FromSeconds(3))).RoutesThroughVersion != Owned.Version)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the supervisor did not take the route list");
            await Task.Delay(20);
        }
        return supervisor;
    }

    private static async Task<T> UntilAsync<T>(Func<T?> found, TimeSpan within, string what) where T : class
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            if (found() is { } value) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what} within {within.TotalSeconds} s");
            await Task.Delay(20);
        }
    }

    private string? TargetOf(string table, string destination) =>
        _ec2.RoutesOf(table).Where(r => r.Destination == destination).Select(r => r.Target).FirstOrDefault();

    private List<string> ThroughA2() =>
        [.. Owned.Routes.Where(r => r.Node == A2).Select(r => $"{r.Table} {r.Cidr} {TargetOf(r.Table, r.Cidr.ToString())}")];

    /// <summary>The supervisor's stream, read back through Akka.Persistence.Query once its host has stopped.</summary>
    /// <summary>
    /// The health stream once the standby's record of its move is written (EC2 shows the move before the supervisor's write
    /// completes, and stopping the host first would lose it).
    /// </summary>
    private async Task<IReadOnlyList<IRomanaEvent>> RecordedMoveAsync()
    {
        await UntilAsync(() => _journal.CountEvents(nameof(ForwarderRoutesMovedByStandby)) > 0 ? "" : null, TimeSpan.FromSeconds(5),
            "the standby's move not recorded");
        return await HealthStreamAsync();
    }

    private async Task<IReadOnlyList<IRomanaEvent>> HealthStreamAsync()
    {
        await _host!.DisposeAsync();
        _host = null;
        await using var audit = await RomanaHost.StartAuditAsync(_journal.Settings);
        var events = await audit.Audit.ByPersistenceIdAsync("health-s1");
        // Every health event folds into a replay (the audit's, and the supervisor's own recovery use the same Apply).
        await AuditQueries.ReplayAsync(audit.Audit, null);
        return events;
    }

    [Fact]
    public async Task When_the_route_manager_does_not_answer_the_supervisor_moves_the_failed_nodes_routes_itself()
    {
        var seen = new ConcurrentQueue<object>();
        await StartAsync(s => Props.Create(() => new Silent(s)), seen);

        _probe.Down[A2] = true;
        var failed = await UntilAsync(() => seen.OfType<ForwarderFailed>().FirstOrDefault(), TimeSpan.FromSeconds(3), "a2 not judged");
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (ThroughA2().Any(r => !r.EndsWith("eni-a1", StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"not moved: {string.Join("; ", ThroughA2())}");
            await Task.Delay(20);
        }

        // Not before standby-repair-after: the manager had its chance to answer.
        var moves = _changes.Where(c => c.Target == "eni-a1").ToList();
        Assert.Equal(3, moves.Count);
        Assert.All(moves, m =>
            Assert.InRange(m.At - failed.At, Fast.StandbyRepairAfter, Fast.StandbyRepairAfter + TimeSpan.FromSeconds(2)));
        // Nothing else was touched: someone else's route to eni-a2, Romana's route through a1, the internet route.
        Assert.Equal("eni-a2", TargetOf("rtb-a", "192.168.0.0/16"));
        Assert.Equal("eni-a1", TargetOf("rtb-a", "100.64.0.128/26"));
        Assert.Equal("igw-1", TargetOf("rtb-a", "0.0.0.0/0"));
        Assert.Equal(3, _ec2.CountOf("ReplaceRoute"));
        Assert.Equal(0, _ec2.CountOf("CreateRoute") + _ec2.CountOf("DeleteRoute"));
        Assert.DoesNotContain(seen, m => m is FailoverNoted);

        var events = await RecordedMoveAsync();
        var moved = Assert.Single(events.OfType<ForwarderRoutesMovedByStandby>());
        Assert.Equal((S1, A2, A1), (moved.Subnet, moved.Node, moved.To));
        Assert.Equal([("rtb-a", "100.64.0.0/24"), ("rtb-a", "100.64.0.64/26"), ("rtb-b", "100.64.0.0/24")],
            moved.Routes.Select(r => (r.Table, r.Cidr.ToString())).Order());
        Assert.All(moved.Routes, r => Assert.Equal(("eni-a2", "eni-a1"), (r.FromEni, r.ToEni)));
        Assert.Equal("the route manager did not answer within 300 ms", moved.Reason);
        Assert.IsType<ForwarderFailed>(events[0]);
    }

    [Fact]
    public async Task When_the_route_manager_acknowledges_and_moves_the_routes_the_supervisor_makes_no_ec2_write()
    {
        var seen = new ConcurrentQueue<object>();
        // The manager moves the routes after 600 ms: later than standby-repair-after, within standby-repair-check.
        await StartAsync(s => Props.Create(() => new Acknowledging(s, _ec2, TimeSpan.FromMilliseconds(600))), seen);

        _probe.Down[A2] = true;
        await UntilAsync(() => seen.OfType<ForwarderFailed>().FirstOrDefault(), TimeSpan.FromSeconds(3), "a2 not judged");
        // The supervisor looks once more, standby-repair-check after the acknowledgement, and finds the routes moved.
        await UntilAsync(() => _ec2.CountOf("DescribeRouteTables") > 0 ? "" : null, TimeSpan.FromSeconds(5), "no check");
        await Task.Delay(500);

        Assert.All(ThroughA2(), r => Assert.EndsWith("eni-a3", r, StringComparison.Ordinal));
        Assert.Equal(0, _ec2.CountOf("ReplaceRoute") + _ec2.CountOf("CreateRoute") + _ec2.CountOf("DeleteRoute"));
        Assert.Empty((await HealthStreamAsync()).OfType<ForwarderRoutesMovedByStandby>());
    }

    [Fact]
    public async Task When_the_route_manager_acknowledges_and_dies_before_moving_them_the_supervisor_moves_them_at_the_check()
    {
        var seen = new ConcurrentQueue<object>();
        await StartAsync(s => Props.Create(() => new Acknowledging(s, _ec2, null)), seen);

        _probe.Down[A2] = true;
        var failed = await UntilAsync(() => seen.OfType<ForwarderFailed>().FirstOrDefault(), TimeSpan.FromSeconds(3), "a2 not judged");
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (ThroughA2().Any(r => !r.EndsWith("eni-a1", StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"not moved: {string.Join("; ", ThroughA2())}");
            await Task.Delay(20);
        }
        // Acknowledged: not moved at standby-repair-after, but at the check after the acknowledgement.
        Assert.All(_changes.Where(c => c.Target == "eni-a1"), m => Assert.True(m.At - failed.At >= Fast.StandbyRepairCheck,
            $"moved {(m.At - failed.At).TotalMilliseconds:0} ms after the judgement"));

        var moved = Assert.Single((await RecordedMoveAsync()).OfType<ForwarderRoutesMovedByStandby>());
        Assert.Equal(3, moved.Routes.Length);
        Assert.StartsWith("the route manager acknowledged the failure but the routes still pointed at a2", moved.Reason);
    }

    [Fact]
    public async Task A_failed_ec2_call_is_not_recorded_as_done_and_is_tried_again_at_the_next_check()
    {
        var seen = new ConcurrentQueue<object>();
        _ec2.Throttle = new Ec2Throttle(Burst: 0, RefillPerSecond: 0); // every mutating call: RequestLimitExceeded
        await StartAsync(s => Props.Create(() => new Silent(s)), seen);

        _probe.Down[A2] = true;
        await UntilAsync(() => _ec2.CountOf("ReplaceRoute") >= 3 ? "" : null, TimeSpan.FromSeconds(5), "no replace tried");
        await Task.Delay(200);
        Assert.All(ThroughA2(), r => Assert.EndsWith("eni-a2", r, StringComparison.Ordinal));
        Assert.Equal(0, _journal.CountEvents("ForwarderRoutesMovedByStandby"));

        _ec2.Throttle = null;
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (ThroughA2().Any(r => !r.EndsWith("eni-a1", StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"not moved after the throttle: {string.Join("; ", ThroughA2())}");
            await Task.Delay(20);
        }
        var moved = Assert.Single((await RecordedMoveAsync()).OfType<ForwarderRoutesMovedByStandby>());
        Assert.Equal(3, moved.Routes.Length);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        _client.Dispose();
        await _endpoint.DisposeAsync();
        _journal.Dispose();
    }
}
