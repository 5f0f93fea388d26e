using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using Romana.Host.Composition;

namespace Romana.Actors.Tests.Routing;

/// <summary>
/// Two actor systems on loopback port 0 form a cluster;
/// the route manager singleton moves from one to the other in the middle of a pass.
/// </summary>
[Collection(ClusterCollection.Name)]
public class RouteManagerHandOverTests
{
    private static readonly Config ClusterConfig = ConfigurationFactory.ParseString("""
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
        akka.cluster.min-nr-of-members = 1
        akka.cluster.singleton.hand-over-retry-interval = 200ms
        """);

    /// <summary>
    /// A member composed as a daemon composes it, the route manager a cluster singleton; it does not join yet. One call at a
    /// time, so that the work takes long enough to hand over in the middle of it.
    /// </summary>
    private static Task<RomanaHost> MemberAsync(RouteLab lab) =>
        lab.ComposeAsync(RouteLab.Settings with { Calls = new CallBudget(0, 1) }, ClusterConfig, RouteManagerPlacement.ClusterSingleton);

    private static async Task UpAsync(params ActorSystem[] members)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (members.Any(m => Cluster.Get(m).State.Members.Count(x => x.Status == MemberStatus.Up) < members.Length))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the cluster did not form");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task The_new_singleton_recovers_and_finishes_the_pass_without_duplicates_or_deleting_wanted_routes()
    {
        await using var lab = new RouteLab();
        lab.Ec2.Latency = TimeSpan.FromMilliseconds(150); // a pass takes a few seconds: time to hand over in the middle
        await using var firstHost = await MemberAsync(lab);
        await using var secondHost = await MemberAsync(lab);
        var (first, second) = (firstHost.System, secondHost.System);
        Cluster.Get(first).Join(Cluster.Get(first).SelfAddress);
        Cluster.Get(second).Join(Cluster.Get(first).SelfAddress);
        await UpAsync(first, second);

        // The oldest member runs the manager; once it has created a route or two, it leaves.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (lab.Ec2.CountOf("CreateRoute") < 2)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the first singleton never created a route");
            await Task.Delay(20);
        }
        await CoordinatedShutdown.Get(first).Run(CoordinatedShutdown.ClusterLeavingReason.Instance);

        // The new singleton (on the second member) has planned and carried its plan out; then EC2 is looked at.
        var manager = secondHost.Registry.Get<VpcRouteActor>();
        var finished = DateTime.UtcNow.AddSeconds(60);
        while (await manager.Ask<RouteManagerMessages.RouteManagerView>(new RouteManagerMessages.GetRouteState(), TimeSpan.FromSeconds(10))
            is not { Busy: false, Passes: > 0 })
        {
            if (DateTime.UtcNow > finished) throw new TimeoutException("the new singleton did not finish its work");
            await Task.Delay(100);
        }
        var plan = await lab.ConvergedAsync(TimeSpan.FromSeconds(60), anyManager: true);
        var creates = lab.Ec2.Calls.Where(c => c.Action == "CreateRoute")
            .GroupBy(c => (c.Parameters["RouteTableId"], c.Parameters["DestinationCidrBlock"])).ToList();
        Assert.Equal(plan.Tables.Sum(t => t.Routes.Length), creates.Count);
        Assert.All(creates, c => Assert.Single(c));
        Assert.Equal(0, lab.Ec2.CountOf("DeleteRoute"));
        var left = DateTime.UtcNow.AddSeconds(20);
        while (!Cluster.Get(second).State.Members.All(m => m.Address == Cluster.Get(second).SelfAddress))
        {
            if (DateTime.UtcNow > left) throw new TimeoutException("the first member did not leave");
            await Task.Delay(100);
        }
    }
}
