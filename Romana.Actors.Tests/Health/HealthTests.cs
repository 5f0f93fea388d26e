using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence.TestKit;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Health;
using Romana.Host.Health;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Tests.Health;

public class ProbeCounterTests
{
    private static (ProbeCounter, bool) Run(params bool[] answers)
    {
        var counter = ProbeCounter.Initial;
        var changed = false;
        foreach (var answer in answers) (counter, changed) = counter.Observe(answer, 3, 3);
        return (counter, changed);
    }

    [Fact]
    public void One_or_two_lost_probes_never_fail_a_node()
    {
        Assert.True(Run(false, true, false, false, true, false).Item1.Healthy);
    }

    [Fact]
    public void Three_misses_in_a_row_fail_it_and_three_answers_in_a_row_recover_it()
    {
        var (failed, changed) = Run(true, false, false, false);
        Assert.False(failed.Healthy);
        Assert.True(changed);
        Assert.False(Run(false, false, false, true, true, false, true).Item1.Healthy);
        Assert.True(Run(false, false, false, true, true, true).Item1.Healthy);
    }

    [Fact]
    public void A_flapping_node_is_never_judged_either_way()
    {
        Assert.True(Run([.. Enumerable.Range(0, 40).Select(i => i % 2 == 0)]).Item1.Healthy);
    }
}

public class TcpHealthProbeTests
{
    [Fact]
    public async Task A_listening_daemon_answers_and_a_closed_port_does_not()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var probe = new TcpHealthProbe(port);
        Assert.True(await probe.ProbeAsync(new("n"), Ipv4.Parse("127.0.0.1"), TimeSpan.FromSeconds(2)));
        listener.Stop();
        Assert.False(await probe.ProbeAsync(new("n"), Ipv4.Parse("127.0.0.1"), TimeSpan.FromSeconds(2)));
    }
}

/// <summary>Probe answers the test decides: every node answers unless it is in <see cref="Down"/>.</summary>
internal sealed class ScriptedProbe : IHealthProbe
{
    public ConcurrentDictionary<NodeName, bool> Down { get; } = new();
    public volatile bool Throw;

    public Task<bool> ProbeAsync(NodeName node, Ipv4 ip, TimeSpan timeout, CancellationToken cancellation = default) =>
        Throw ? throw new InvalidOperationException("probe crashed") : Task.FromResult(!Down.ContainsKey(node));
}

/// <summary>A subnet's supervisor with probes the test controls, and a probe in place of the route manager.</summary>
public class SubnetHealthSupervisorTests() : Akka.TestKit.Xunit2.TestKit(ConfigurationFactory.ParseString("""
    akka.loglevel = WARNING
    akka.persistence {
      journal { plugin = "akka.persistence.journal.inmem" }
      snapshot-store { plugin = "akka.persistence.snapshot-store.local", local.dir = "obj/test-snapshots" }
    }
    """))
{
    private static readonly HealthSettings Fast = HealthSettings.Default with
    {
        ProbeInterval = TimeSpan.FromMilliseconds(50),
        ProbeTimeout = TimeSpan.FromMilliseconds(40),
        StatusInterval = TimeSpan.FromMinutes(1),
    };

    private (IActorRef Supervisor, Akka.TestKit.TestProbe Routes, ScriptedProbe Probe) Start(string subnet)
    {
        var probe = new ScriptedProbe();
        var routes = CreateTestProbe();
        var supervisor = Sys.ActorOf(SubnetHealthSupervisor.Props(new SubnetId(subnet), probe, Fast, routes, SystemClock.Instance));
        foreach (var node in new[] { "a", "b" })
            supervisor.Tell(new WatchNode(new SubnetId(subnet), new NodeName(node), Ipv4.Parse("10.0.0.1")));
        return (supervisor, routes, probe);
    }

    [Fact]
    public void A_node_that_stops_answering_is_judged_failed_and_the_route_manager_is_told()
    {
        var (_, routes, probe) = Start("s1");
        probe.Down[new NodeName("a")] = true;
        var failed = routes.FishForMessage<ForwarderFailed>(m => m is ForwarderFailed, TimeSpan.FromSeconds(3));
        Assert.Equal("a", failed.Node.Value);
        Assert.Equal("3 probes in a row unanswered", failed.Reason);
        var health = routes.FishForMessage<SubnetHealth>(m => m is SubnetHealth { Failed.Count: 1 }, TimeSpan.FromSeconds(3));
        Assert.Equal(["a"], health.Failed.Select(n => n.Value));

        probe.Down.TryRemove(new NodeName("a"), out _);
        Assert.Equal("a", routes.FishForMessage<ForwarderRecovered>(m => m is ForwarderRecovered, TimeSpan.FromSeconds(3)).Node.Value);
    }

    [Fact]
    public void A_crashing_probe_is_restarted_and_keeps_judging()
    {
        var (_, routes, probe) = Start("s2");
        probe.Throw = true;
        var during = routes.ReceiveWhile<object>(TimeSpan.FromMilliseconds(300), m => m);
        Assert.DoesNotContain(during, m => m is ForwarderFailed); // crashes are no verdict
        probe.Throw = false;
        probe.Down[new NodeName("b")] = true;
        Assert.Equal("b", routes.FishForMessage<ForwarderFailed>(m => m is ForwarderFailed, TimeSpan.FromSeconds(3)).Node.Value);
    }

    [Fact]
    public async Task Judgements_survive_a_restart_of_the_supervisor()
    {
        var (supervisor, routes, probe) = Start("s3");
        probe.Down[new NodeName("a")] = true;
        routes.FishForMessage<ForwarderFailed>(m => m is ForwarderFailed, TimeSpan.FromSeconds(3));
        Watch(supervisor);
        Sys.Stop(supervisor);
        ExpectTerminated(supervisor);

        var again = Sys.ActorOf(SubnetHealthSupervisor.Props(new SubnetId("s3"), probe, Fast, routes, SystemClock.Instance));
        var health = await again.Ask<SubnetHealth>(new GetSubnetHealth(new SubnetId("s3")), TimeSpan.FromSeconds(3));
        Assert.Equal(["a"], health.Failed.Select(n => n.Value));
    }
}

/// <summary>A supervisor whose journal is slow: its judgement must not wait for the write to reach the route manager.</summary>
public class SubnetHealthSlowJournalTests() : Akka.TestKit.Xunit2.TestKit(ConfigurationFactory.ParseString("""
    akka.loglevel = WARNING
    akka.persistence {
      journal { plugin = "akka.persistence.journal.test", test.class = "Akka.Persistence.TestKit.TestJournal, Akka.Persistence.TestKit" }
      snapshot-store {
        plugin = "akka.persistence.snapshot-store.test", test.class = "Akka.Persistence.TestKit.TestSnapshotStore, Akka.Persistence.TestKit"
      }
    }
    """))
{
    private static readonly TimeSpan SlowWrite = TimeSpan.FromSeconds(4);

    private ITestJournal Journal => TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null));

    [Fact]
    public async Task A_judgement_reaches_the_route_manager_while_the_journal_is_still_writing_it_and_is_written_all_the_same()
    {
        var settings = HealthSettings.Default with
        {
            ProbeInterval = TimeSpan.FromMilliseconds(50),
            ProbeTimeout = TimeSpan.FromMilliseconds(40),
            StatusInterval = TimeSpan.FromMinutes(1),
        };
        var subnet = new SubnetId("slow");
        var probe = new ScriptedProbe();
        var routes = CreateTestProbe();
        var supervisor = Sys.ActorOf(SubnetHealthSupervisor.Props(subnet, probe, settings, routes, SystemClock.Instance));
        foreach (var node in new[] { "a", "b" })
            supervisor.Tell(new WatchNode(subnet, new NodeName(node), Ipv4.Parse("10.0.0.1")));
        await Journal.OnWrite.PassWithDelay(SlowWrite);

        var judged = System.Diagnostics.Stopwatch.StartNew();
        probe.Down[new NodeName("a")] = true;
        // Three probes 50 ms apart judge it; the write of that judgement takes 4 s and the route manager must not wait for it.
        Assert.Equal("a", routes.FishForMessage<ForwarderFailed>(m => m is ForwarderFailed, TimeSpan.FromSeconds(2)).Node.Value);
        Assert.True(judged.Elapsed < SlowWrite, $"told after {judged.Elapsed.TotalMilliseconds:0} ms");
        // Meanwhile it keeps judging: b fails too, told at once although the first write is not done.
        probe.Down[new NodeName("b")] = true;
        Assert.Equal("b", routes.FishForMessage<ForwarderFailed>(m => m is ForwarderFailed, TimeSpan.FromSeconds(2)).Node.Value);
        Assert.True(judged.Elapsed < SlowWrite, $"b told after {judged.Elapsed.TotalMilliseconds:0} ms");

        // Both judgements reach the journal once the writes are done (the second is sent when the first completes, so the
        // supervisor stays up meanwhile): another incarnation, which watches no node and so writes nothing, recovers them.
        var deadline = DateTime.UtcNow + SlowWrite * 5;
        while (true)
        {
            var again = Sys.ActorOf(SubnetHealthSupervisor.Props(subnet, probe, settings, CreateTestProbe(), SystemClock.Instance));
            var failed = (await again.Ask<SubnetHealth>(new GetSubnetHealth(subnet), TimeSpan.FromSeconds(3))).Failed;
            if (failed.Count == 2 || DateTime.UtcNow > deadline)
            {
                Assert.Equal(["a", "b"], failed.Select(n => n.Value));
                break;
            }
            Watch(again);
            Sys.Stop(again);
            ExpectTerminated(again);
            await Task.Delay(500);
        }
    }
}
