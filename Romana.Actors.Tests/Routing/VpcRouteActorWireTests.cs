using System.Collections.Concurrent;
using Akka.Actor;
using Amazon.EC2.Model;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using Romana.Host.Ec2;
using Romana.Host.Persistence;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Tests.Routing;

/// <summary>The route manager through the real AWSSDK.EC2 client, over HTTP, against the EC2 model's Query API server.</summary>
public class VpcRouteActorWireTests
{
    private static readonly string[] Mutating = ["CreateRoute", "ReplaceRoute", "DeleteRoute", "ModifyNetworkInterfaceAttribute"];

    private static int MutatingCalls(RouteLab lab) => lab.Ec2.Calls.Count(c => Mutating.Contains(c.Action));

    [Fact]
    public async Task From_empty_it_converges_with_one_call_per_route_and_leaves_foreign_routes_alone()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync();
        var plan = await lab.ConvergedAsync();

        var routes = plan.Tables.Sum(t => t.Routes.Length);
        Assert.Equal(routes, lab.Ec2.CountOf("CreateRoute"));
        Assert.Equal(RouteLab.Cluster.Nodes.Length, lab.Ec2.CountOf("ModifyNetworkInterfaceAttribute"));
        Assert.All(RouteLab.Cluster.Nodes, n => Assert.False(lab.Ec2.SourceDestCheck(n.Eni)));
        foreach (var table in new[] { "rtb-a", "rtb-b", "rtb-c" })
        {
            Assert.Contains(("0.0.0.0/0", "igw-1"), lab.Ec2.RoutesOf(table));
            Assert.Contains(("10.0.0.0/16", "local"), lab.Ec2.RoutesOf(table));
        }
        // Every table routes every subnet, its own included (rtb-a serves s1 alone and still routes s1's pods, for the
        // instances of s1 that are not nodes); with room for all 7 blocks, each goes straight to its owner in every table.
        foreach (var table in plan.Tables)
            foreach (var block in RouteLab.Cluster.Blocks)
                Assert.Equal(block.Owner, table.Routes.Where(r => r.Cidr.Contains(block.Block)).MaxBy(r => r.Cidr.PrefixLength)!.Target);
        Assert.Contains(plan.Table("rtb-a")!.Routes, r => r.Cidr.ToString() == "100.64.0.0/24");
        Assert.Contains(plan.Table("rtb-c")!.Routes, r => r.Cidr.ToString() == "100.64.2.0/24");
        var view = await lab.ViewAsync();
        Assert.Equal(["rtb-a", "rtb-b", "rtb-c"], view.Tables);
        Assert.Equal(routes, view.Routes.Length);
        Assert.All(view.Routes, r => Assert.True(r.Route.Confirmed));
    }

    [Fact]
    public async Task The_managers_own_host_forwards_for_no_other_node_until_its_subnets_other_node_fails()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync(host: new("a1"));
        var plan = await lab.ConvergedAsync();
        // s1 (a1, a2) is reached from the shared table through a2 only, a1's own blocks included.
        var toS1 = plan.Table("rtb-c")!.Routes.Where(r => r.Cidr.ToString().StartsWith("100.64.0.", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(toS1);
        Assert.All(toS1, r => Assert.Equal("eni-a2", r.Eni));

        // The supervisor judges a2 failed: a1 is s1's last healthy node, so it is the target again (health first, then the host rule).
        var passes = (await lab.ViewAsync()).Passes;
        var failed = new Romana.Actors.Health.HealthMessages.ForwarderFailed(new("s1"), new("a2"), DateTimeOffset.UtcNow, "test");
        lab.Manager!.Tell(failed, Akka.Actor.ActorRefs.NoSender);
        lab.Source.SetHealth("a2", false);
        var repaired = await lab.ConvergedAsync(afterPasses: passes);
        var toS1After = repaired.Table("rtb-c")!.Routes.Where(r => r.Cidr.ToString().StartsWith("100.64.0.", StringComparison.Ordinal));
        Assert.All(toS1After, r => Assert.Equal("eni-a1", r.Eni));
        Assert.NotEmpty(toS1After);
    }

    [Fact]
    public async Task A_subnets_published_change_is_planned_without_reading_the_cluster_again()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync();
        await lab.ConvergedAsync();
        var reads = lab.Source.Reads;

        // s2 publishes a new member b3 (with an ENI) owning a new block: the manager follows it from the feed alone.
        var s2 = RouteLab.Cluster.Subnets[1];
        var published = new SubnetSnapshot(s2.Id, s2.PodPrefix, 26,
            [.. RouteLab.Cluster.Nodes.Where(n => n.Subnet == s2.Id).Select(n => new SubnetMemberSnapshot(n.Name, n.Ip, n.Eni)),
                new SubnetMemberSnapshot(new("b3"), Ipv4.Parse("10.0.0.9"), "eni-b3")],
            [.. RouteLab.Cluster.Blocks.Where(b => b.Owner.Value.StartsWith('b')).Select(b => new BlockOwnerSnapshot(b.Block, b.Owner)),
                new BlockOwnerSnapshot(Ipv4Cidr.Parse("100.64.1.128/26"), new("b3"))], []);
        lab.System!.EventStream.Publish(new OwnershipFeed.OwnershipChanged(published));

        await UntilAsync(() => lab.Ec2.SourceDestCheck("eni-b3") == false ? "off" : null, TimeSpan.FromSeconds(10),
            "the new node's source/destination check was not turned off");
        Assert.Equal(reads, lab.Source.Reads);
    }

    [Fact]
    public async Task A_node_in_hold_down_takes_its_subnets_routes_when_the_subnets_other_node_fails()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync(RouteLab.Settings with { HoldDown = TimeSpan.FromMinutes(10) });
        await lab.ConvergedAsync();
        static bool ToS1(PlannedRoute r) => r.Cidr.ToString().StartsWith("100.64.0.", StringComparison.Ordinal);

        // a2 fails and recovers: held down, s1 stays on a1. Then a1 fails: a2, held down or not, is all s1 has.
        foreach (var (message, node, healthy) in new (Romana.Actors.Health.IHealthEvent, string, bool)[]
        {
            (new Romana.Actors.Health.HealthMessages.ForwarderFailed(new("s1"), new("a2"), DateTimeOffset.UtcNow, "test"), "a2", false),
            (new Romana.Actors.Health.HealthMessages.ForwarderRecovered(new("s1"), new("a2"), DateTimeOffset.UtcNow, "test"), "a2", true),
        })
        {
            var before = (await lab.ViewAsync()).Passes;
            lab.Manager!.Tell(message, Akka.Actor.ActorRefs.NoSender);
            lab.Source.SetHealth(node, healthy);
            var plan = await lab.ConvergedAsync(afterPasses: before);
            Assert.All(plan.Table("rtb-c")!.Routes.Where(ToS1), r => Assert.Equal("eni-a1", r.Eni));
        }
        var passes = (await lab.ViewAsync()).Passes;
        lab.Manager!.Tell(new Romana.Actors.Health.HealthMessages.ForwarderFailed(new("s1"), new("a1"), DateTimeOffset.UtcNow, "test"),
            Akka.Actor.ActorRefs.NoSender);
        lab.Source.SetHealth("a1", false);
        var repaired = await lab.ConvergedAsync(afterPasses: passes);
        Assert.NotEmpty(repaired.Table("rtb-c")!.Routes.Where(ToS1));
        Assert.All(repaired.Table("rtb-c")!.Routes.Where(ToS1), r => Assert.Equal("eni-a2", r.Eni));
    }

    [Fact]
    public async Task A_restarted_manager_recovers_from_its_journal_and_sends_nothing_when_nothing_differs()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync();
        await lab.ConvergedAsync();
        var before = MutatingCalls(lab);

        await lab.StartAsync();
        await lab.ConvergedAsync();
        Assert.Equal(before, MutatingCalls(lab));
        Assert.True(lab.Ec2.CountOf("DescribeRouteTables") >= 2);
    }

    /// <summary>
    /// A new incarnation in the same process (after a journal failure, or the simulation's restartRouteManager) recovers
    /// what the last one recorded, from events and a snapshot, on every journal: it knows the routes as its own and sends
    /// nothing when nothing differs. On the journal in memory it once recovered nothing (Akka's memory journal replays the
    /// tagging adapter's wrapper, and its snapshot store the state object), so it left routes to a failed node alone.
    /// </summary>
    [Theory]
    [InlineData(JournalKind.Sqlite)]
    [InlineData(JournalKind.Memory)]
    public async Task A_manager_restarted_in_its_process_recovers_its_routes_from_events_and_snapshot(JournalKind kind)
    {
        await using var lab = new RouteLab(kind == JournalKind.Memory ? JournalSettings.InMemory() : null);
        await lab.StartAsync(RouteLab.Settings with { SnapshotEvery = 4 });
        await lab.ConvergedAsync();
        var before = await lab.ViewAsync();
        var calls = MutatingCalls(lab);
        Assert.NotEmpty(before.Routes);

        lab.Manager!.Tell(new RouteManagerSupervisor.Restart()); // what is asked after it goes to the new incarnation
        var recovered = await lab.ViewAsync();
        static IEnumerable<string> Known(RouteManagerMessages.RouteManagerView view) =>
            view.Routes.Select(r => $"{r.Table} {r.Route}").Order(StringComparer.Ordinal);
        Assert.Equal(Known(before), Known(recovered));
        await lab.ConvergedAsync();
        Assert.Equal(calls, MutatingCalls(lab));
    }

    [Fact]
    public async Task Routes_changed_or_deleted_by_hand_are_repaired_and_the_journal_says_drift_repair()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync();
        var plan = await lab.ConvergedAsync();
        var deleted = plan.Table("rtb-a")!.Routes[0];
        var changed = plan.Table("rtb-b")!.Routes[0];
        await lab.Client.DeleteRouteAsync(new DeleteRouteRequest
        {
            RouteTableId = "rtb-a", DestinationCidrBlock = deleted.Cidr.ToString()
        });
        await lab.Client.ReplaceRouteAsync(new ReplaceRouteRequest
        {
            RouteTableId = "rtb-b", DestinationCidrBlock = changed.Cidr.ToString(), NetworkInterfaceId = "eni-someone-else"
        });

        var passes = (await lab.ViewAsync()).Passes;
        lab.Reconcile("periodic check");
        var repaired = await lab.ConvergedAsync(afterPasses: passes);
        Assert.Contains(deleted, repaired.Table("rtb-a")!.Routes);
        Assert.Contains(changed, repaired.Table("rtb-b")!.Routes);
        Assert.Equal(2, lab.Journal.CountEventsWhere("payload LIKE '%drift repair%'"));
    }

    [Fact]
    public async Task Under_throttling_and_server_errors_it_backs_off_and_still_converges()
    {
        await using var lab = new RouteLab();
        lab.Ec2.Throttle = new Ec2Throttle(Burst: 3, RefillPerSecond: 5);
        lab.Ec2.ErrorRate = 0.2;
        await lab.StartAsync();
        await lab.ConvergedAsync(TimeSpan.FromSeconds(60));
        lab.Ec2.ErrorRate = 0;
        Assert.True(lab.Ec2.Calls.Count > lab.Ec2.CountOf("DescribeRouteTables") + MutatingCallsWanted(lab), "no call was retried");
    }

    private static int MutatingCallsWanted(RouteLab lab) => lab.PlanInEc2().Tables.Sum(t => t.Routes.Length)
        + RouteLab.Cluster.Nodes.Length;

    [Fact]
    public async Task A_smaller_real_limit_than_configured_is_learned_and_the_plan_fits_it()
    {
        await using var lab = new RouteLab();
        // rtb-c serves two subnets, so it needs a route to each of the four; with room it would hold more specific ones
        // too. Its real limit is 6, the igw route counts: five pod routes at most, where 50 are configured.
        lab.Ec2.SetRouteLimit("rtb-c", 6);
        await lab.StartAsync();
        var plan = await lab.ConvergedAsync();
        Assert.InRange(plan.Table("rtb-c")!.Routes.Length, 4, 5);
        Assert.Contains(lab.Ec2.Calls, c => c.Action == "CreateRoute" && c.Parameters["RouteTableId"] == "rtb-c");
        Assert.Equal(1, lab.Journal.CountEvents("RouteLimitLearned"));
    }

    [Fact]
    public async Task When_a_forwarder_fails_only_its_routes_move_and_the_reason_is_failover()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync();
        var plan = await lab.ConvergedAsync();
        var forwarder = plan.Table("rtb-b")!.Routes.Single(r => r.Cidr.ToString() == "100.64.0.0/24").Target;
        var untouched = plan.Tables.SelectMany(t => t.Routes.Select(r => (t.Table, r))).Where(x => x.r.Target != forwarder).ToList();
        var creates = lab.Ec2.CountOf("CreateRoute");

        lab.Source.SetHealth(forwarder.Value, false);
        var passes = (await lab.ViewAsync()).Passes;
        lab.Reconcile("health changed");
        var after = await lab.ConvergedAsync(afterPasses: passes);
        Assert.DoesNotContain(after.Tables.SelectMany(t => t.Routes), r => r.Target == forwarder);
        Assert.All(untouched, x => Assert.Contains(x.r, after.Table(x.Table)!.Routes));
        Assert.Equal(creates, lab.Ec2.CountOf("CreateRoute"));
        Assert.True(lab.Journal.CountEventsWhere("manifest = 'RouteReplaced' AND payload LIKE '%failover%'") >= 1);

        // The node recovers: the subnet routes that moved go back to it, since where they are now the block route under each
        // (100.64.0.64/26 -> a2) gains nothing; nothing else moves, and no route is created or deleted.
        var (replaces, deletes) = (lab.Ec2.CountOf("ReplaceRoute"), lab.Ec2.CountOf("DeleteRoute"));
        var moved = after.Tables.Sum(t => t.Routes.Count(r => !plan.Table(t.Table)!.Routes.Contains(r)));
        lab.Source.SetHealth(forwarder.Value, true);
        passes = (await lab.ViewAsync()).Passes;
        lab.Reconcile("health changed");
        var recovered = await lab.ConvergedAsync(afterPasses: passes);
        Assert.Equal(plan.Tables.SelectMany(t => t.Routes), recovered.Tables.SelectMany(t => t.Routes));
        Assert.Equal(replaces + moved, lab.Ec2.CountOf("ReplaceRoute"));
        Assert.Equal((creates, deletes), (lab.Ec2.CountOf("CreateRoute"), lab.Ec2.CountOf("DeleteRoute")));
    }

    [Fact]
    public async Task A_route_taken_by_someone_else_at_a_wanted_destination_is_never_touched()
    {
        await using var lab = new RouteLab();
        lab.Ec2.PutRoute("rtb-a", "100.64.1.0/24", "pcx-peering"); // someone routes s2's prefix to a peering connection
        await lab.StartAsync();
        while ((await lab.ViewAsync()) is { Passes: 0 } or { Busy: true }) await Task.Delay(50);
        Assert.Contains(("100.64.1.0/24", "pcx-peering"), lab.Ec2.RoutesOf("rtb-a"));
        Assert.DoesNotContain(lab.Ec2.Calls,
            c => c.Action != "DescribeRouteTables" && c.Parameters.GetValueOrDefault("DestinationCidrBlock") == "100.64.1.0/24"
            && c.Parameters["RouteTableId"] == "rtb-a");
    }

    /// <summary>Stands in for a subnet's supervisor: keeps what the route manager tells it.</summary>
    private sealed class Recorder : ReceiveActor
    {
        public Recorder(ConcurrentQueue<object> seen) => ReceiveAny(seen.Enqueue);
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

    [Fact]
    public async Task It_acknowledges_a_failure_on_receipt_and_keeps_the_subnets_supervisor_told_of_the_routes_through_its_nodes()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync();
        await lab.ConvergedAsync();
        var seen = new ConcurrentQueue<object>();
        var supervisor = lab.System!.ActorOf(Props.Create(() => new Recorder(seen)));
        var (s1, a1, a2) = (new SubnetId("s1"), new NodeName("a1"), new NodeName("a2"));

        // A status from a supervisor that holds no list: it gets the confirmed routes through s1's nodes and their ENIs.
        lab.Manager!.Tell(new SubnetHealth(s1, [a1, a2], []), supervisor);
        var first = await UntilAsync(() => seen.OfType<RoutesThrough>().FirstOrDefault(), TimeSpan.FromSeconds(5), "no route list");
        var owned = (await lab.ViewAsync()).Routes.Where(r => r.Route.Target == a1 || r.Route.Target == a2)
            .Select(r => (r.Table, r.Route.Cidr, r.Route.Target)).Order().ToList();
        Assert.Equal(owned, first.Routes.Select(r => (r.Table, r.Cidr, r.Node)).Order());
        Assert.Contains(first.Routes, r => r.Node == a2);
        Assert.Equal(new Dictionary<NodeName, string> { [a1] = "eni-a1", [a2] = "eni-a2" }, first.Enis);
        // A status that names the version held gets nothing more.
        lab.Manager.Tell(new SubnetHealth(s1, [a1, a2], [], first.Version), supervisor);
        await Task.Delay(500);
        Assert.Single(seen.OfType<RoutesThrough>());

        // EC2 answers slowly now: the acknowledgement comes long before the pass has moved anything.
        lab.Ec2.Latency = TimeSpan.FromSeconds(2);
        lab.Manager.Tell(new ForwarderFailed(s1, a2, DateTimeOffset.UtcNow, "test"), supervisor);
        var noted = await UntilAsync(() => seen.OfType<FailoverNoted>().FirstOrDefault(), TimeSpan.FromSeconds(1), "no acknowledgement");
        Assert.Equal((s1, a2), (noted.Subnet, noted.Node));
        Assert.Contains(lab.Ec2.RouteTables.SelectMany(t => t.Routes), r => r.Target == "eni-a2");
        lab.Ec2.Latency = TimeSpan.Zero;

        // Once the failover pass has moved the routes, the supervisor is told the new list without asking.
        var second = await UntilAsync(() => seen.OfType<RoutesThrough>().Skip(1).FirstOrDefault(), TimeSpan.FromSeconds(20),
            "no new route list after the failover");
        Assert.DoesNotContain(second.Routes, r => r.Node == a2);
        Assert.NotEqual(first.Version, second.Version);
        Assert.DoesNotContain(lab.Ec2.RouteTables.SelectMany(t => t.Routes), r => r.Target == "eni-a2");
    }

    /// <summary>Probes that say what the test says.</summary>
    private sealed class ScriptedProbe : Romana.Actors.Health.IHealthProbe
    {
        public ConcurrentDictionary<NodeName, bool> Down { get; } = new();

        public Task<bool> ProbeAsync(NodeName node, Ipv4 ip, TimeSpan timeout, CancellationToken cancellation = default) =>
            Task.FromResult(!Down.ContainsKey(node));
    }

    /// <summary>
    /// The hand-over in one process: s1's supervisor holds the manager's route list, judges a2 failed and tells a route manager
    /// that no longer answers; it moves a2's routes itself. The manager that starts next from the journal takes them as it
    /// finds them, with no EC2 call, and the audit shows both writers.
    /// </summary>
    [Fact]
    public async Task Routes_a_supervisor_moved_while_the_manager_was_away_are_taken_as_found_without_a_call()
    {
        await using var lab = new RouteLab();
        await lab.StartAsync();
        var plan = await lab.ConvergedAsync();
        var throughA2 = plan.Tables.SelectMany(t => t.Routes.Where(r => r.Target.Value == "a2").Select(r => (t.Table, r.Cidr)))
            .ToList();
        Assert.NotEmpty(throughA2);
        var (s1, a1, a2) = (new SubnetId("s1"), new NodeName("a1"), new NodeName("a2"));
        var routes = await lab.Manager!.Ask<RoutesThrough>(new SubnetHealth(s1, [a1, a2], []), TimeSpan.FromSeconds(5));

        var gone = lab.System!.ActorOf(Props.Create(() => new Recorder(new ConcurrentQueue<object>())), "gone-manager");
        var probe = new ScriptedProbe();
        var settings = Romana.Actors.Configuration.HealthSettings.Default with
        {
            ProbeInterval = TimeSpan.FromMilliseconds(50),
            ProbeTimeout = TimeSpan.FromMilliseconds(40),
        };
        var supervisor = lab.System.ActorOf(Romana.Actors.Health.SubnetHealthSupervisor.Props(s1, probe, settings, gone,
            SystemClock.Instance, ec2: new Romana.Host.Aws.AwsEc2RouteTables(lab.Client)));
        supervisor.Tell(new WatchNode(s1, a1, Ipv4.Parse("10.0.0.1")));
        supervisor.Tell(new WatchNode(s1, a2, Ipv4.Parse("10.0.0.2")));
        supervisor.Tell(routes, gone);
        // The supervisor lives in the manager's actor system, which the restart below ends: wait for its record of the move.
        var recorded = new ConcurrentQueue<object>();
        lab.System.EventStream.Subscribe(lab.System.ActorOf(Props.Create(() => new Recorder(recorded))),
            typeof(ForwarderRoutesMovedByStandby));
        probe.Down[a2] = true;
        await UntilAsync(() => recorded.OfType<ForwarderRoutesMovedByStandby>().FirstOrDefault(), TimeSpan.FromSeconds(10),
            "the supervisor did not record moving a2's routes");
        Assert.All(throughA2, x =>
            Assert.Equal("eni-a1", lab.Ec2.RoutesOf(x.Table).Single(r => r.Destination == x.Cidr.ToString()).Target));

        // A new manager starts from the journal, with a2 judged failed.
        lab.Source.SetHealth("a2", false);
        var before = MutatingCalls(lab);
        await lab.StartAsync();
        var after = await lab.ConvergedAsync();
        Assert.Equal(before, MutatingCalls(lab));
        Assert.All(throughA2, x => Assert.Equal("a1", after.Table(x.Table)!.Routes.Single(r => r.Cidr == x.Cidr).Target.Value));
        var view = await lab.ViewAsync();
        Assert.All(throughA2, x => Assert.Equal("a1", view.Routes.Single(r => r.Table == x.Table && r.Route.Cidr == x.Cidr)
            .Route.Target.Value));

        await lab.StopAsync();
        await using var audit = await Romana.Host.Composition.RomanaHost.StartAuditAsync(lab.Journal.Settings);
        var changes = await Romana.Actors.Audit.AuditQueries.RoutesAsync(audit.Audit, null, null);
        foreach (var (table, cidr) in throughA2)
        {
            var moves = changes.Where(c => c.Table == table && c.Cidr == cidr && c.Change != "created").ToList();
            Assert.Equal(["replaced by standby", "replaced"], moves.Select(c => c.Change));
            Assert.All(moves, c => Assert.Equal(((NodeName?)a2, (NodeName?)a1), (c.From, c.To)));
            Assert.Equal("the route manager did not answer within 300 ms", moves[0].Reason);
            Assert.Equal("moved by the supervisor of subnet s1 while the route manager was away", moves[1].Reason);
        }
    }
}
