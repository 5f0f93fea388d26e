using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Addressing;
using Romana.Actors.Health;
using Romana.Actors.Persistence;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using Romana.Host.Composition;
using Romana.Host.Dataplane;
using Romana.Host.Persistence;
using static Romana.Actors.Health.HealthMessages;
using ClusterSettings = Romana.Host.Composition.ClusterSettings;

namespace Romana.Actors.Tests.Membership;

/// <summary>
/// Forwarder supervisors in a cluster of three actor systems in this process, talking over loopback remoting (so the
/// registrations and answers really cross the network through Romana's serializer), every message checked by the
/// serializer (serialize-messages = on; see <see cref="InProcessOnlySerializer"/>). A and B are nodes of s1 (A the
/// oldest, the route singleton's host), C of s2. The supervisor of s1 must run on C, the only member outside s1; that
/// of s2 on B (outside s2, and not the singleton's host while another candidate exists). When B's actor system goes
/// away without leaving, C's supervisor judges B failed from cluster reachability alone (its probes still answer), long
/// before the split-brain resolver would down it.
/// </summary>
[Collection(ClusterCollection.Name)]
public class ClusterHealthPlacementTests
{
    private const string Fast = """
        akka.actor.serialize-messages = on
        akka.loglevel = WARNING
        akka.cluster.failure-detector { heartbeat-interval = 200ms, acceptable-heartbeat-pause = 1s, threshold = 8 }
        akka.cluster.sharding.rebalance-interval = 1s
        akka.coordinated-shutdown.run-by-actor-system-terminate = off
        """;

    private static readonly Akka.Configuration.Config Config =
        ConfigurationFactory.ParseString(Fast).WithFallback(ConfigurationFactory.ParseString(InProcessOnlySerializer.Hocon));

    /// <summary>Probes that always answer: only cluster reachability can fail a node here.</summary>
    internal sealed class AlwaysAnswers : IHealthProbe
    {
        public Task<bool> ProbeAsync(NodeName node, Ipv4 ip, TimeSpan timeout, CancellationToken cancellation = default) =>
            Task.FromResult(true);
    }

    /// <summary>Stands in for the route manager: records what the supervisors tell it.</summary>
    private sealed class Recorder : ReceiveActor
    {
        public Recorder(ConcurrentQueue<(string Host, object Message)> seen, string host) => ReceiveAny(m => seen.Enqueue((host, m)));
    }

    private static async Task<RomanaHost> MemberAsync(string name, string subnet, int port, int seedPort, TempJournal journal,
        ConcurrentQueue<(string, object)> seen)
    {
        var settings = ClusterSettings.Default with
        {
            Enabled = true,
            Port = port,
            SeedNodes = [$"akka.tcp://romana@127.0.0.1:{seedPort}"],
            StableAfter = TimeSpan.FromMinutes(2),
        };
        var node = new NodeIdentity(new NodeName(name), new SubnetId(subnet), Ipv4.Parse("127.0.0.1"));
        return await RomanaHost.StartAsync(Config, akka => akka
                .AddRomanaPersistence(journal.Settings)
                .AddRomanaCluster(settings, [ClusterHosting.NodeRole, ClusterHosting.SubnetRole(node.Subnet)])
                .WithActors((system, registry) =>
                    registry.Register<VpcRouteActor>(system.ActorOf(Props.Create(() => new Recorder(seen, name)), "recorder")))
                .AddRomanaClusterHealth(),
            services => services
                .AddSingleton<IHealthProbe>(new AlwaysAnswers())
                .AddSingleton(node)
                .AddHostedService(sp => new ForwarderHealthRegistration(sp, TimeSpan.FromMilliseconds(300))),
            ClusterSettings.SystemName);
    }

    /// <summary>The subnets whose supervisor runs on this member.</summary>
    internal static async Task<IReadOnlySet<string>> ShardsOn(RomanaHost host)
    {
        var region = host.Registry.Get<ForwarderHealth>();
        var state = await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, TimeSpan.FromSeconds(5));
        return state.Shards.Where(s => s.EntityIds.Count > 0).Select(s => s.ShardId).ToHashSet();
    }

    [Fact]
    public async Task Supervisors_run_away_from_their_subnet_and_the_singleton_host_and_suspect_an_unreachable_member_at_once()
    {
        using var journalA = new TempJournal();
        using var journalB = new TempJournal();
        using var journalC = new TempJournal();
        var seen = new ConcurrentQueue<(string Host, object Message)>();
        var seedPort = ClusterMembershipTests.FreePort();
        await using var a = await MemberAsync("a", "s1", seedPort, seedPort, journalA, seen);
        await ClusterMembershipTests.AwaitUpAsync(TimeSpan.FromSeconds(30), 1, a.System);
        var b = await MemberAsync("b", "s1", 0, seedPort, journalB, seen);
        await using var c = await MemberAsync("c", "s2", 0, seedPort, journalC, seen);
        await ClusterMembershipTests.AwaitUpAsync(TimeSpan.FromSeconds(30), 3, a.System, b.System, c.System);

        var deadline = DateTime.UtcNow.AddSeconds(40);
        while (true)
        {
            var (onA, onB, onC) = (await ShardsOn(a), await ShardsOn(b), await ShardsOn(c));
            if (onC.SetEquals(["s1"]) && onB.SetEquals(["s2"]) && onA.Count == 0) break;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"supervisors on a: [{string.Join(",", onA)}], b: [{string.Join(",", onB)}], " +
                    $"c: [{string.Join(",", onC)}]; wanted s1 on c and s2 on b");
            await Task.Delay(200);
        }
        // C's supervisor of s1 comes to know both nodes of s1 from their own registrations across the network (each daemon
        // registers again every other probe interval, so a supervisor that has just moved learns them within a second or so).
        deadline = DateTime.UtcNow.AddSeconds(10);
        SubnetHealth s1;
        while (true)
        {
            s1 = await c.Registry.Get<ForwarderHealth>()
                .Ask<SubnetHealth>(new GetSubnetHealth(new SubnetId("s1")), TimeSpan.FromSeconds(5));
            if (s1.Watched.Count == 2 || DateTime.UtcNow > deadline) break;
            await Task.Delay(100);
        }
        Assert.Equal(["a", "b"], s1.Watched.Select(n => n.Value).ToArray());
        Assert.Empty(s1.Failed);
        // What crossed the network (the registrations, the answer) went through Romana's serializer.
        var watch = new WatchNode(new("s1"), new("a"), Ipv4.Parse("127.0.0.1"));
        Assert.IsType<RomanaSerializer>(a.System.Serialization.FindSerializerFor(watch));
        Assert.IsType<RomanaSerializer>(a.System.Serialization.FindSerializerFor(s1));

        // B goes away without leaving: its probe would still answer, the cluster's failure detector does not.
        var gone = DateTime.UtcNow;
        await b.System.Terminate();
        deadline = DateTime.UtcNow.AddSeconds(15);
        ForwarderFailed? failed = null;
        while (failed is null)
        {
            failed = seen.Select(s => s.Message).OfType<ForwarderFailed>().FirstOrDefault(f => f.Node.Value == "b");
            if (DateTime.UtcNow > deadline) throw new TimeoutException("b was never judged failed");
            await Task.Delay(50);
        }
        Assert.Equal("s1", failed.Subnet.Value);
        Assert.Contains("unreachable", failed.Reason);
        Assert.True(DateTime.UtcNow - gone < TimeSpan.FromSeconds(10), $"judged after {DateTime.UtcNow - gone}");
        Assert.Contains(seen, s => s.Host == "c" && s.Message is ForwarderFailed f && f.Node.Value == "b");
        // Not downed meanwhile: the judgement did not wait for the split-brain resolver (stable-after 2 min here).
        Assert.Contains(Akka.Cluster.Cluster.Get(c.System).State.Members, m => m.Address.Port != seedPort
            && Akka.Cluster.Cluster.Get(c.System).State.Unreachable.Contains(m));
    }
}
