using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Amazon.EC2;
using Amazon.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Addressing;
using Romana.Actors.Health;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Routing;
using Romana.Actors.Tests.Support;
using Romana.Host.Aws;
using Romana.Host.Composition;
using Romana.Host.Dataplane;
using Romana.Host.Ec2;
using Romana.Host.Persistence;
using Xunit.Abstractions;
using static Romana.Actors.Health.HealthMessages;
using ClusterSettings = Romana.Host.Composition.ClusterSettings;

namespace Romana.Actors.Tests.Membership;

/// <summary>
/// The route singleton's host dies during another node's failover, in four actor systems of this process over loopback
/// remoting, every message checked by the serializer: a (s0, the oldest: the route singleton's host), b1 and b2 (s1), c
/// (s2). The route manager plans from a fixed cluster view and writes EC2's model through AWSSDK.EC2 over HTTP; s1's
/// supervisor runs on c. b2 is killed, a 300 ms later; the split-brain resolver's stable-after is two minutes, so nothing
/// is downed and the singleton does not move while the test runs. Only the supervisor's standby repair can move b2's
/// routes, and it must within seconds.
/// </summary>
[Collection(ClusterCollection.Name)]
public class StandbyRepairClusterTests(ITestOutputHelper output)
{
    private const string Fast = """
        akka.actor.serialize-messages = on
        akka.loglevel = WARNING
        akka.cluster.failure-detector { heartbeat-interval = 200ms, acceptable-heartbeat-pause = 1s, threshold = 8 }
        akka.cluster.sharding.rebalance-interval = 1s
        akka.coordinated-shutdown.run-by-actor-system-terminate = off
        """;

    private static readonly Config Config =
        ConfigurationFactory.ParseString(Fast).WithFallback(ConfigurationFactory.ParseString(InProcessOnlySerializer.Hocon));

    /// <summary>The cluster as the route manager reads it: one node per subnet but s1, whose nodes own a block each.</summary>
    private static readonly RoutingSnapshot View = new(
        [
            new PlanSubnet(new("s0"), Ipv4Cidr.Parse("100.64.0.0/24"), "rtb-x"),
            new PlanSubnet(new("s1"), Ipv4Cidr.Parse("100.64.1.0/24"), "rtb-x"),
            new PlanSubnet(new("s2"), Ipv4Cidr.Parse("100.64.2.0/24"), "rtb-x"),
        ],
        [Node("a", "s0"), Node("b1", "s1"), Node("b2", "s1"), Node("c", "s2")],
        [
            new PlanBlock(Ipv4Cidr.Parse("100.64.0.0/26"), new("a"), 3), new PlanBlock(Ipv4Cidr.Parse("100.64.1.0/26"), new("b1"), 3),
            new PlanBlock(Ipv4Cidr.Parse("100.64.1.64/26"), new("b2"), 3), new PlanBlock(Ipv4Cidr.Parse("100.64.2.0/26"), new("c"), 3),
        ]);

    private static PlanNode Node(string name, string subnet) => new(new(name), new(subnet), Ipv4.Parse("127.0.0.1"), $"eni-{name}", true);

    private static async Task<RomanaHost> MemberAsync(string name, string subnet, int port, int seedPort, TempJournal journal,
        string ec2)
    {
        var settings = ClusterSettings.Default with
        {
            Enabled = true,
            Port = port,
            SeedNodes = [$"akka.tcp://romana@127.0.0.1:{seedPort}"],
            StableAfter = TimeSpan.FromMinutes(2),
        };
        var node = new NodeIdentity(new NodeName(name), new SubnetId(subnet), Ipv4.Parse("127.0.0.1"));
        var client = AwsEc2RouteTables.CreateClient("us-east-1", ec2, TimeSpan.FromSeconds(10),
            new BasicAWSCredentials("t", "t"));
        return await RomanaHost.StartAsync(Config, akka => akka
                .AddRomanaPersistence(journal.Settings)
                .AddRomanaCluster(settings,
                    [ClusterHosting.NodeRole, ClusterHosting.SubnetRole(node.Subnet), ClusterHosting.NameRole(node.Name)])
                .AddRomanaRoutes(null, RouteManagerPlacement.ClusterSingleton, node.Name)
                .AddRomanaClusterHealth(),
            services => services
                .AddSingleton<IHealthProbe>(new ClusterHealthPlacementTests.AlwaysAnswers())
                .AddSingleton(node)
                .AddSingleton<IEc2RouteTables>(new AwsEc2RouteTables(client))
                .AddSingleton<IRoutingSource>(new StaticRoutingSource(View))
                .AddSingleton(RouteLab.Settings with { Tables = new RouteTableSelector(["rtb-x"]) })
                .AddHostedService(sp => new ForwarderHealthRegistration(sp, TimeSpan.FromMilliseconds(300))),
            ClusterSettings.SystemName);
    }

    private static async Task UntilAsync(TimeSpan within, string what, Func<Task<bool>> holds)
    {
        var deadline = DateTime.UtcNow + within;
        while (!await holds())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what} within {within.TotalSeconds} s");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task When_the_singletons_host_dies_during_a_failover_the_supervisor_moves_the_routes_before_any_hand_over()
    {
        var ec2 = new Ec2Lab();
        ec2.AddRouteTable("rtb-x", subnetIds: ["subnet-s0", "subnet-s1", "subnet-s2"], vpcCidr: "10.0.0.0/16");
        ec2.PutRoute("rtb-x", "0.0.0.0/0", "igw-1"); // someone else's
        await using var endpoint = Ec2QueryApiServer.Start(ec2);
        using var journalA = new TempJournal();
        using var journalB1 = new TempJournal();
        using var journalB2 = new TempJournal();
        using var journalC = new TempJournal();
        var seedPort = ClusterMembershipTests.FreePort();
        var a = await MemberAsync("a", "s0", seedPort, seedPort, journalA, endpoint.Url);
        await ClusterMembershipTests.AwaitUpAsync(TimeSpan.FromSeconds(30), 1, a.System);
        await using var b1 = await MemberAsync("b1", "s1", 0, seedPort, journalB1, endpoint.Url);
        var b2 = await MemberAsync("b2", "s1", 0, seedPort, journalB2, endpoint.Url);
        await using var c = await MemberAsync("c", "s2", 0, seedPort, journalC, endpoint.Url);
        await ClusterMembershipTests.AwaitUpAsync(TimeSpan.FromSeconds(30), 4, a.System, b1.System, b2.System, c.System);

        // s1's supervisor runs on c (the only member outside s1 that is not the singleton's host) and holds the route list,
        // and EC2 sends some of s1's pods through b2.
        var started = Stopwatch.StartNew();
        await UntilAsync(TimeSpan.FromSeconds(40), "s1's supervisor on c",
            async () => (await ClusterHealthPlacementTests.ShardsOn(c)).Contains("s1"));
        await UntilAsync(TimeSpan.FromSeconds(90), "EC2 routing every subnet, s1 partly through b2", () => Task.FromResult(
            ec2.RoutesOf("rtb-x").Any(r => r.Target == "eni-b2")
            && new[] { "eni-a", "eni-c" }.All(eni => ec2.RoutesOf("rtb-x").Any(r => r.Target == eni))));
        await UntilAsync(TimeSpan.FromSeconds(20), "the route list at s1's supervisor", async () =>
        {
            var health = await c.Registry.Get<ForwarderHealth>()
                .Ask<SubnetHealth>(new GetSubnetHealth(new SubnetId("s1")), TimeSpan.FromSeconds(5));
            return health.Watched.Count == 2 && health.RoutesThroughVersion != 0;
        });
        output.WriteLine($"converged {started.Elapsed.TotalSeconds:0.0} s after the members were up: "
            + string.Join(", ", ec2.RoutesOf("rtb-x")));
        var throughB2 = ec2.RoutesOf("rtb-x").Where(r => r.Target == "eni-b2").Select(r => r.Destination).ToList();
        var others = ec2.RoutesOf("rtb-x").Where(r => r.Target != "eni-b2").ToList();

        // b2 dies, and 300 ms later the singleton's host.
        var killed = Stopwatch.StartNew();
        await b2.System.Terminate();
        await Task.Delay(300);
        await a.System.Terminate();

        await UntilAsync(TimeSpan.FromSeconds(15), "b2's routes moved",
            () => Task.FromResult(!ec2.RoutesOf("rtb-x").Any(r => r.Target == "eni-b2")));
        var repaired = killed.Elapsed;
        output.WriteLine($"repaired {repaired.TotalSeconds:0.00} s after b2 was killed: {string.Join(", ", ec2.RoutesOf("rtb-x"))}");
        Assert.All(throughB2, d => Assert.Contains((d, "eni-b1"), ec2.RoutesOf("rtb-x")));
        Assert.All(others, r => Assert.Contains(r, ec2.RoutesOf("rtb-x"))); // nothing else touched, the foreign route included
        // No hand-over happened: no member is downed or gone yet (the failure detector may not even have marked the second
        // dead member unreachable by now), so the singleton cannot have moved.
        var cluster = Akka.Cluster.Cluster.Get(c.System).State;
        Assert.Equal(4, cluster.Members.Count);
        Assert.All(cluster.Members, m => Assert.Equal(Akka.Cluster.MemberStatus.Up, m.Status));
        Assert.True(repaired < TimeSpan.FromSeconds(10), $"repaired {repaired.TotalSeconds:0.0} s after the kill");
        // The supervisor records its move once the EC2 calls have answered, a moment after EC2 shows it.
        await UntilAsync(TimeSpan.FromSeconds(5), "the standby's move recorded in c's journal", () => Task.FromResult(
            journalC.CountEventsWhere("manifest = 'ForwarderRoutesMovedByStandby' AND payload LIKE '%did not answer within 300 ms%'")
                == 1));
    }
}
