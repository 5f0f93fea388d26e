using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Cluster;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using Romana.Contracts.Cni;
using Romana.Host.Cli;
using Romana.Host.Composition;
using Romana.Host.Dataplane;
using Xunit.Abstractions;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Membership;

/// <summary>
/// The daemon's admin API in a cluster: three `romana daemon`s in this process (romana.cluster.enabled = on, one
/// PostgreSQL journal, every message checked by the serializer), each asked through its own Unix socket as `romana cluster
/// status` and `romana node remove` ask it.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DaemonAdminClusterTests(PostgreSqlServer server, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly InProcessDaemonCluster _cluster = new(server, "admin");

    private Dictionary<string, RomanaDaemon> Daemons => _cluster.Daemons;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [SkippableFact]
    public async Task Members_agree_on_the_route_manager_a_live_node_is_not_removed_and_a_stopped_one_is_with_its_addresses_released()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        foreach (var node in new[] { "n1", "n2", "n3" }) await StartAsync(node);
        await EventuallyAsync("three members up, seen by each", () => Task.FromResult(Daemons.Values.All(d =>
            Cluster.Get(d.System).State.Members.Count(m => m.Status == MemberStatus.Up) == 3) ? (object)true : null));
        // A pod on each node; three on n2.
        var pods = new Dictionary<string, Ipv4>();
        foreach (var (node, count) in new[] { ("n1", 1), ("n2", 3), ("n3", 1) })
            for (var i = 0; i < count; i++)
            {
                var key = $"{node}-pod-{i}/eth0";
                var allocate = new Allocate(new NodeName(node), new AllocationKey(key));
                pods[key] = (await EventuallyAsync($"an address for {key}", async () =>
                    await Daemons[node].Ipam.AskAsync(allocate) as AddressAssigned)).Address;
            }

        // n1's IPAM front door started before n2 and n3 joined through their own daemons: asked about them, it learns the
        // subnets' members and answers from their node actors (the policy files source reads every node's pods this way).
        foreach (var node in new[] { "n2", "n3" })
        {
            var held = await Daemons["n1"].Ipam.AskAsync(new GetAllocations(new(node)));
            Assert.True(held is AllocationsOf, $"{node}: {held}");
            Assert.Equal(pods.Where(p => p.Key.StartsWith($"{node}-", StringComparison.Ordinal)).Select(p => p.Value).Order(),
                ((AllocationsOf)held).Allocations.Select(a => a.Address).Order());
        }
        Assert.Equal("not-found", Assert.IsType<Failed>(await Daemons["n1"].Ipam.AskAsync(new GetAllocations(new("n9")))).Error.CodeText);

        // CLUSTER: every member lists the three by their node names, and they agree on where the route singleton runs.
        var views = new Dictionary<string, ClusterView>();
        foreach (var node in Daemons.Keys)
            views[node] = await EventuallyAsync($"{node}'s view with a route manager", async () =>
                (await AskAsync(node, new DaemonRequest(DaemonProtocol.Cluster, "", ""))).Cluster is { RouteManager: not null } view
                    && view.Members.Length == 3 ? view : null);
        foreach (var (node, view) in views)
        {
            Assert.Equal((node, true), (view.Self, view.Enabled));
            Assert.Equal(["n1", "n2", "n3"], view.Members.Select(m => m.Node).Order());
            Assert.All(view.Members, m => Assert.Equal(("Up", true, "subnet-a"), (m.Status, m.Reachable, m.Subnet)));
            Assert.Equal(Cluster.Get(Daemons[node].System).SelfAddress.ToString(), view.SelfAddress);
            output.WriteLine($"{node}: route manager {view.RouteManager}; members {string.Join(", ", view.Members.Select(m => m.Node))}");
        }
        var routeManager = Assert.Single(views.Values.Select(v => v.RouteManager).Distinct())!;
        Assert.Equal("n1", routeManager); // the first to join is the oldest
        // `romana cluster status`, as a person reads it: a row per member and the route manager's host.
        var (exit, table, error) = await Processes.RunAsync("dotnet",
            [Path.Combine(AppContext.BaseDirectory, "romana.dll"), "cluster", "status", "--socket", SocketOf("n3")], Paths.RepositoryRoot);
        output.WriteLine(table);
        Assert.Equal((0, ""), (exit, error));
        Assert.Contains("route manager: node n1", table);
        foreach (var node in Daemons.Keys)
            Assert.Matches($"{node} +. subnet-a +. {Regex.Escape(views[node].SelfAddress!)} +. Up +. yes +. "
                + (node == "n1" ? "route manager" : node == "n3" ? "this daemon" : " "), table);
        await EventuallyAsync($"the route singleton running on {routeManager}", async () =>
            await RunsRouteSingletonAsync(Daemons[routeManager].System) ? (object)true : null);
        foreach (var other in Daemons.Keys.Where(n => n != routeManager))
            Assert.False(await RunsRouteSingletonAsync(Daemons[other].System), $"{other} runs the route singleton too");

        // n2 is alive: refused from every other member, and nothing changes.
        var n2Address = views["n1"].Members.Single(m => m.Node == "n2").Address;
        foreach (var asker in new[] { "n1", "n3" })
        {
            var refused = await AskAsync(asker, Remove("n2"));
            Assert.Equal((false, "conflict"), (refused.Ok, refused.Code));
            Assert.Equal($"node n2 is an Up and reachable member of the cluster at {n2Address}: stop its daemon first", refused.Error);
        }
        Assert.Equal("invalid", (await AskAsync("n1", Remove("n1"))).Code);
        Assert.Equal("not-found", (await AskAsync("n1", Remove("n9"))).Code);
        Assert.Equal(3, Assert.IsType<AllocationsOf>(await Daemons["n2"].Ipam.AskAsync(new GetAllocations(new("n2")))).Allocations.Length);
        Assert.Empty(await ReleasesOfAsync("n2"));
        var before = Assert.IsType<SubnetView>(await Daemons["n1"].Ipam.AskAsync(new GetSubnet(new SubnetId("subnet-a")))).Subnet;
        var n2Blocks = before.Owners.Where(o => o.Node == new NodeName("n2")).Select(o => o.Block).ToList();
        Assert.NotEmpty(n2Blocks);

        // n2's daemon stops (it leaves the cluster); its pods' addresses stay its own until the node is removed.
        await _cluster.StopAsync("n2");
        await EventuallyAsync<object>("n2 gone from the others' views", async () =>
        {
            foreach (var node in Daemons.Keys)
                if ((await AskAsync(node, new DaemonRequest(DaemonProtocol.Cluster, "", ""))).Cluster!.Members.Any(m => m.Node == "n2"))
                    return null;
            return (object)true;
        });
        Assert.Empty(await ReleasesOfAsync("n2"));

        // Removed, through n3's socket: the subnet may first wait for n2's holder to be gone, or for its entity to settle
        // after moving (each such answer changes nothing, and asking again is safe).
        var removed = await EventuallyAsync("NODE-REMOVE n2 done", async () =>
        {
            var reply = await AskAsync("n3", Remove("n2"));
            if (reply.Ok) return reply;
            output.WriteLine($"NODE-REMOVE n2: {reply.Code}: {reply.Error}");
            Assert.True(reply.Code is "unavailable" || reply.Error!.Contains("held by the live daemon"), reply.Error);
            return null;
        });
        Assert.Equal(("n2", "subnet-a", 3), (removed.Node, removed.Subnet, removed.Released));
        var released = Assert.Single(await ReleasesOfAsync("n2"));
        Assert.Equal(DaemonAdminRequests.RemoveReason, released.Reason);
        Assert.Equal(pods.Where(p => p.Key.StartsWith("n2-")).Select(p => p.Value).Order(),
            released.Addresses.Select(a => a.Address).Order());
        Assert.All(released.Addresses, a => Assert.Equal(DaemonAdminRequests.RemoveReason, a.Reason));
        var after = Assert.IsType<SubnetView>(await Daemons["n1"].Ipam.AskAsync(new GetSubnet(new SubnetId("subnet-a")))).Subnet;
        Assert.DoesNotContain(after.Members, m => m.Node == new NodeName("n2"));
        Assert.DoesNotContain(after.Owners, o => o.Node == new NodeName("n2"));
        Assert.Equal("not-found", (await AskAsync("n1", Remove("n2"))).Code);

        // n2's blocks are granted again: n3 takes addresses until it holds one of them (the subnet grants its lowest free block).
        var more = new List<Ipv4>();
        for (var i = 0; !await OwnsAnyAsync("n3", n2Blocks); i++)
        {
            Assert.True(i < 64, $"n3 was never granted one of n2's former blocks {string.Join(", ", n2Blocks)}");
            more.Add(Assert.IsType<AddressAssigned>(
                await Daemons["n3"].Ipam.AskAsync(new Allocate(new("n3"), new($"n3-more-{i}/eth0")))).Address);
        }
        // The pods on the surviving nodes keep their addresses, and nothing new is handed out twice.
        foreach (var (key, address) in pods.Where(p => !p.Key.StartsWith("n2-")))
        {
            var node = key[..2];
            Assert.Equal(address, Assert.IsType<AddressAssigned>(await Daemons[node].Ipam.AskAsync(new GetAddress(new(key)))).Address);
            Assert.DoesNotContain(address, more);
        }
        Assert.Equal(more.Count, more.Distinct().Count());
    }

    private static DaemonRequest Remove(string node) => new(DaemonProtocol.NodeRemove, "", "", Node: node);

    private Task<DaemonReply> AskAsync(string node, DaemonRequest request) =>
        DaemonSocketClient.SendAsync(SocketOf(node), request, TimeSpan.FromSeconds(60));

    private string SocketOf(string node) => _cluster.SocketOf(node);

    private async Task<bool> OwnsAnyAsync(string node, List<Ipv4Cidr> blocks) =>
        Assert.IsType<BlocksOf>(await Daemons[node].Ipam.AskAsync(new GetBlocks(new(node)))).Blocks.Any(blocks.Contains);

    /// <summary>The release events in the node's journal, read through Akka.Persistence.Query as `romana audit` reads them.</summary>
    private async Task<List<NodeMessages.AddressesReleased>> ReleasesOfAsync(string node)
    {
        await using var audit = await RomanaHost.StartAuditAsync(_cluster.Journal.Settings);
        return [.. (await audit.Audit.ByPersistenceIdAsync($"node-{node}")).OfType<NodeMessages.AddressesReleased>()];
    }

    /// <summary>Whether the route manager singleton runs in this member: its manager's child, named as the singleton.</summary>
    private static async Task<bool> RunsRouteSingletonAsync(ActorSystem system)
    {
        try
        {
            var identity = await system.ActorSelection($"/user/{VpcRouteActor.Id}/{VpcRouteActor.Id}")
                .Ask<ActorIdentity>(new Identify(null), TimeSpan.FromSeconds(3));
            return identity.Subject is not null;
        }
        catch (AskTimeoutException)
        {
            return false;
        }
    }

    private Task StartAsync(string node) => _cluster.StartAsync(node);

    private static Task<T> EventuallyAsync<T>(string what, Func<Task<T?>> attempt) where T : class =>
        InProcessDaemonCluster.EventuallyAsync(what, attempt);
}
