using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Ipam;
using static Romana.Actors.Dataplane.HostAgentMessages;

namespace Romana.Actors.Tests.Dataplane;

internal static class Ownership
{
    public static readonly Ipv4Cidr PodCidr = Ipv4Cidr.Parse("100.64.0.0/16");

    /// <summary>A subnet whose nodes n1, n2, n3 are at 10.0.0.1-3, owning the given blocks.</summary>
    public static SubnetSnapshot Of(params (string Block, string Node)[] owners) => new(new SubnetId("s1"), PodCidr, 26,
        [.. new[] { "n1", "n2", "n3" }.Select((n, i) => new SubnetMemberSnapshot(new NodeName(n), Ipv4.Parse($"10.0.0.{i + 1}")))],
        [.. owners.Select(o => new BlockOwnerSnapshot(Ipv4Cidr.Parse(o.Block), new NodeName(o.Node)))], []);

    public static KeyValuePair<Ipv4Cidr, Ipv4> Route(string block, string via) =>
        KeyValuePair.Create(Ipv4Cidr.Parse(block), Ipv4.Parse(via));
}

public class HostRoutesTests
{
    [Fact]
    public void A_node_routes_every_other_nodes_blocks_via_that_nodes_ip_and_never_its_own()
    {
        var subnet = Ownership.Of(("100.64.0.0/26", "n1"), ("100.64.0.64/26", "n2"), ("100.64.0.128/26", "n3"), ("100.64.0.192/26", "n2"));
        Assert.Equal([Ownership.Route("100.64.0.64/26", "10.0.0.2"), Ownership.Route("100.64.0.128/26", "10.0.0.3"),
            Ownership.Route("100.64.0.192/26", "10.0.0.2")],
            HostRoutes.Wanted(subnet, new NodeName("n1")));
    }

    [Fact]
    public void The_difference_puts_new_and_repointed_routes_and_removes_withdrawn_ones_only()
    {
        var current = new Dictionary<Ipv4Cidr, Ipv4>([Ownership.Route("100.64.0.64/26", "10.0.0.2"),
            Ownership.Route("100.64.0.128/26", "10.0.0.3"), Ownership.Route("100.64.1.0/26", "10.0.0.3")]);
        var wanted = new Dictionary<Ipv4Cidr, Ipv4>([Ownership.Route("100.64.0.64/26", "10.0.0.2"),
            Ownership.Route("100.64.0.128/26", "10.0.0.2"), Ownership.Route("100.64.0.192/26", "10.0.0.3")]);
        var changes = HostRoutes.Diff(current, wanted);
        Assert.Equal([new HostRoute(Ipv4Cidr.Parse("100.64.0.128/26"), Ipv4.Parse("10.0.0.2")),
            new HostRoute(Ipv4Cidr.Parse("100.64.0.192/26"), Ipv4.Parse("10.0.0.3"))], changes.Put.ToArray());
        Assert.Equal([Ipv4Cidr.Parse("100.64.1.0/26")], changes.Remove.ToArray());
        Assert.True(HostRoutes.Diff(wanted, wanted).IsEmpty);
    }
}

/// <summary>A kernel in memory: the routes of Romana's table and every call made, and a switch that makes calls fail.</summary>
internal sealed class InMemoryHostNetwork : IHostNetwork
{
    public ConcurrentDictionary<Ipv4Cidr, Ipv4> Routes { get; } = new();
    public ConcurrentQueue<HostRouteChanges> Applied { get; } = new();
    public int Prepared;
    public volatile bool Failing;

    public Task PrepareAsync(Ipv4Cidr podCidr, CancellationToken cancel = default)
    {
        if (Failing) throw new IOException("netlink: operation not permitted");
        Interlocked.Increment(ref Prepared);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyDictionary<Ipv4Cidr, Ipv4>> ReadRoutesAsync(CancellationToken cancel = default) =>
        Task.FromResult<IReadOnlyDictionary<Ipv4Cidr, Ipv4>>(new Dictionary<Ipv4Cidr, Ipv4>(Routes));

    public Task ApplyAsync(HostRouteChanges changes, CancellationToken cancel = default)
    {
        if (Failing) throw new IOException("netlink: no such device");
        foreach (var route in changes.Put) Routes[route.Block] = route.Via;
        foreach (var block in changes.Remove) Routes.TryRemove(block, out _);
        Applied.Enqueue(changes);
        return Task.CompletedTask;
    }

    /// <summary>Pod addresses and veths a test says are still in use on this "host", and what uses them.</summary>
    public ConcurrentDictionary<string, string> InUse { get; } = new();

    public Task<IReadOnlyList<string?>> FindPodAddressUsesAsync(IReadOnlyList<PodAddressProbe> probes,
        CancellationToken cancel = default) =>
        Task.FromResult<IReadOnlyList<string?>>([.. probes.Select(p =>
            InUse.GetValueOrDefault(p.Address.ToString()) ?? (p.HostVeth is { } veth ? InUse.GetValueOrDefault(veth) : null))]);
}

public class HostAgentActorTests : TestKit
{
    private static readonly HostAgentSettings Settings = HostAgentSettings.Default with { ResyncInterval = TimeSpan.FromMilliseconds(200) };
    private readonly InMemoryHostNetwork _kernel = new();

    private IActorRef Agent(string self = "n1") =>
        Sys.ActorOf(HostAgentActor.Props(new NodeName(self), Ownership.PodCidr, _kernel, Settings));

    private HostRoutesNow Routes(IActorRef agent) => agent.Ask<HostRoutesNow>(new GetHostRoutes(), TimeSpan.FromSeconds(5)).Result;

    [Fact]
    public void Ownership_becomes_routes_and_a_later_change_touches_only_the_difference()
    {
        var agent = Agent();
        agent.Tell(new ApplyOwnership(Ownership.Of(("100.64.0.0/26", "n1"), ("100.64.0.64/26", "n2"), ("100.64.0.128/26", "n3")), "test"));
        Assert.Equal(2, Routes(agent).Routes.Count);
        Assert.Equal(1, _kernel.Prepared);

        agent.Tell(new ApplyOwnership(Ownership.Of(("100.64.0.0/26", "n1"), ("100.64.0.64/26", "n2"), ("100.64.0.192/26", "n2")), "test"));
        var now = Routes(agent);
        Assert.Equal([Ownership.Route("100.64.0.64/26", "10.0.0.2"), Ownership.Route("100.64.0.192/26", "10.0.0.2")], now.Routes);
        var last = _kernel.Applied.Last();
        Assert.Equal([new HostRoute(Ipv4Cidr.Parse("100.64.0.192/26"), Ipv4.Parse("10.0.0.2"))], last.Put.ToArray());
        Assert.Equal([Ipv4Cidr.Parse("100.64.0.128/26")], last.Remove.ToArray());
        Assert.Equal(new Dictionary<Ipv4Cidr, Ipv4>(now.Routes), new Dictionary<Ipv4Cidr, Ipv4>(_kernel.Routes));
    }

    [Fact]
    public void Routes_of_an_earlier_run_stay_until_the_first_ownership_arrives()
    {
        _kernel.Routes[Ipv4Cidr.Parse("100.64.0.64/26")] = Ipv4.Parse("10.0.0.2");
        _kernel.Routes[Ipv4Cidr.Parse("100.64.9.0/26")] = Ipv4.Parse("10.0.0.3");
        var agent = Agent();
        Assert.Equal(2, Routes(agent).Routes.Count);
        Assert.Empty(_kernel.Applied);

        agent.Tell(new ApplyOwnership(Ownership.Of(("100.64.0.64/26", "n2")), "test"));
        Assert.Equal([Ownership.Route("100.64.0.64/26", "10.0.0.2")], Routes(agent).Routes);
        Assert.Equal([Ipv4Cidr.Parse("100.64.9.0/26")], Assert.Single(_kernel.Applied).Remove.ToArray());
    }

    [Fact]
    public void A_route_deleted_by_hand_comes_back_at_the_next_resync()
    {
        var agent = Agent();
        agent.Tell(new ApplyOwnership(Ownership.Of(("100.64.0.64/26", "n2"), ("100.64.0.128/26", "n3")), "test"));
        Assert.Equal(2, Routes(agent).Routes.Count);
        _kernel.Routes.TryRemove(Ipv4Cidr.Parse("100.64.0.128/26"), out _);
        AwaitAssert(() => Assert.Equal(2, _kernel.Routes.Count), TimeSpan.FromSeconds(5));
        Assert.Equal([new HostRoute(Ipv4Cidr.Parse("100.64.0.128/26"), Ipv4.Parse("10.0.0.3"))], _kernel.Applied.Last().Put.ToArray());
    }

    [Fact]
    public void A_failing_kernel_is_reported_and_retried_until_it_works()
    {
        _kernel.Failing = true;
        var agent = Agent();
        agent.Tell(new ApplyOwnership(Ownership.Of(("100.64.0.64/26", "n2")), "test"));
        var failed = Routes(agent);
        Assert.Contains("operation not permitted", failed.LastError);
        Assert.Empty(_kernel.Routes);

        _kernel.Failing = false;
        AwaitAssert(() => Assert.Single(_kernel.Routes), TimeSpan.FromSeconds(5));
        Assert.Null(Routes(agent).LastError);
    }
}
