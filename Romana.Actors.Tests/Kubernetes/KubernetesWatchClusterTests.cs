using System.Diagnostics;
using Akka.Cluster;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Kubernetes;
using Romana.Actors.Tests.Support;
using Romana.Host.Composition;
using Romana.Host.Dataplane;
using Xunit.Abstractions;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Kubernetes;

/// <summary>
/// The watches in real daemons: `romana daemon`s in this process, members of one cluster on PostgreSQL (every message
/// checked by the serializer), with romana.kubernetes pointed at a local API server (KubernetesClient over HTTP).
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class KubernetesWatchClusterTests(PostgreSqlServer server, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly InProcessDaemonCluster _cluster = new(server, "k8s", vpcCidr: "127.0.0.0/24");
    private LocalKubeApiServer _api = null!;

    private Dictionary<string, RomanaDaemon> Daemons => _cluster.Daemons;

    public async Task InitializeAsync() => _api = await LocalKubeApiServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        await _api.DisposeAsync();
    }

    private static readonly SubnetId Subnet = new("subnet-a");

    [SkippableFact]
    public async Task A_Node_joins_a_deleted_Node_leaves_only_once_its_daemon_is_gone_and_a_Node_Romana_cannot_place_is_skipped()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        // n1 and n2 have daemons; n3 is a Node whose daemon has not started; "stray" has no InternalIP in any subnet's vpc-cidr.
        _api.Put(LocalKubeApiServer.Node("n1", "127.0.0.11", instance: "i-n1"));
        _api.Put(LocalKubeApiServer.Node("n2", "127.0.0.12", instance: "i-n2"));
        var n3 = LocalKubeApiServer.Node("n3", "127.0.0.13", zone: "us-east-1b", instance: "i-0abc3", uid: "uid-n3");
        _api.Put(n3);
        _api.Put(LocalKubeApiServer.Node("stray", "192.168.9.9"));
        await StartAsync("n1");
        await StartAsync("n2");
        await EventuallyAsync("two members up", () => Task.FromResult(Daemons.Values.All(d =>
            Cluster.Get(d.System).State.Members.Count(m => m.Status == MemberStatus.Up) == 2) ? (object)true : null));

        // n3 joins from its Node alone: its IP, the instance of its providerID, no ENI (its daemon will tell it), the cause.
        var joined = await EventuallyAsync("n3 a member of subnet-a", async () =>
            (await SubnetAsync()).Members.FirstOrDefault(m => m.Node == new NodeName("n3")));
        Assert.Equal(("127.0.0.13", "i-0abc3", null), (joined.Ip.ToString(), joined.InstanceId, joined.Eni));
        var n3Joined = (await EventsAsync("subnet-subnet-a")).OfType<SubnetMessages.NodeJoined>().Single(e => e.Node == new NodeName("n3"));
        Assert.StartsWith("Kubernetes Node n3 (uid uid-n3) added: InternalIP 127.0.0.13 in subnet subnet-a's vpc-cidr 127.0.0.0/24, " +
            "zone us-east-1b, instance i-0abc3", n3Joined.Reason);
        // The daemons' own joins and the watch's agree: one member each, with the ENI the daemon knows.
        var members = (await SubnetAsync()).Members;
        Assert.Equal(["n1", "n2", "n3"], members.Select(m => m.Node.Value).Order());
        Assert.Equal("eni-n2", members.Single(m => m.Node == new NodeName("n2")).Eni);
        Assert.All(Daemons.Values, d => Assert.False(d.Terminated.IsCompleted));

        // n2's daemon holds two addresses. Its Node is deleted while the daemon is a member: nothing leaves.
        foreach (var key in new[] { "c1/eth0", "c2/eth0" })
            Assert.IsType<AddressAssigned>(await Daemons["n2"].Ipam.AskAsync(new Allocate(new NodeName("n2"), new AllocationKey(key))));
        _api.Delete(_api.Get<k8s.Models.V1Node>("n2"));
        // n3's Node is deleted too: no daemon holds it, so it leaves at once, with the cause.
        _api.Delete(n3);
        await EventuallyAsync("n3 gone from subnet-a", async () =>
            (await SubnetAsync()).Members.Any(m => m.Node == new NodeName("n3")) ? null : (object)true);
        var n3Left = (await EventsAsync("subnet-subnet-a")).OfType<SubnetMessages.NodeLeft>().Single(e => e.Node == new NodeName("n3"));
        Assert.StartsWith("Kubernetes Node n3 deleted (watch DELETED at resourceVersion", n3Left.Reason);
        // n4 is a member with no Node (its Node was deleted while no watch ran): the next list finds it and it leaves.
        Assert.IsType<Succeeded>(await Daemons["n1"].Ipam.AskAsync(new AddNode(new("n4"), Subnet, "127.0.0.14", MembershipOnly: true)));
        Assert.Contains((await SubnetAsync()).Members, m => m.Node == new NodeName("n4"));
        _api.Compact(tellOpenWatches: true); // 410: the Node watch lists again
        await EventuallyAsync("n4 gone from subnet-a", async () =>
            (await SubnetAsync()).Members.Any(m => m.Node == new NodeName("n4")) ? null : (object)true);
        var n4Left = (await EventsAsync("subnet-subnet-a")).OfType<SubnetMessages.NodeLeft>().Single(e => e.Node == new NodeName("n4"));
        Assert.Matches(@"^Kubernetes Node n4 deleted \(no Node n4 in the list at resourceVersion \d+: deleted while unwatched\)$",
            n4Left.Reason);
        await Task.Delay(TimeSpan.FromSeconds(3)); // ten retry intervals of the watch
        Assert.Contains((await SubnetAsync()).Members, m => m.Node == new NodeName("n2"));
        Assert.Equal(2, Assert.IsType<AllocationsOf>(await Daemons["n2"].Ipam.AskAsync(new GetAllocations(new("n2")))).Allocations.Length);
        Assert.Empty((await EventsAsync("node-n2")).OfType<NodeMessages.AddressesReleased>());

        // Its daemon stops: now n2 leaves, its addresses released and its blocks returned, each with the Node's deletion as cause.
        var n2Blocks = (await SubnetAsync()).Owners.Where(o => o.Node == new NodeName("n2")).Select(o => o.Block).ToList();
        Assert.NotEmpty(n2Blocks);
        await _cluster.StopAsync("n2");
        await EventuallyAsync("n2 gone from subnet-a", async () =>
            (await SubnetAsync()).Members.Any(m => m.Node == new NodeName("n2")) ? null : (object)true);
        var released = Assert.Single((await EventsAsync("node-n2")).OfType<NodeMessages.AddressesReleased>());
        Assert.Equal(2, released.Addresses.Length);
        Assert.All(released.Addresses, a => Assert.StartsWith("Kubernetes Node n2 deleted", a.Reason));
        var reclaimed = (await EventsAsync("subnet-subnet-a")).OfType<SubnetMessages.BlockReclaimed>()
            .Where(e => e.From == new NodeName("n2")).ToList();
        Assert.Equal(n2Blocks.Order(), reclaimed.Select(r => r.Block).Order());
        Assert.All(reclaimed, r => Assert.StartsWith("Kubernetes Node n2 deleted", r.Reason));
        Assert.DoesNotContain((await SubnetAsync()).Members, m => m.Node.Value == "stray");
        Assert.False(Daemons["n1"].Terminated.IsCompleted);
    }

    [SkippableFact]
    public async Task A_pod_deleted_while_the_watch_was_down_has_its_address_released_after_the_grace_with_the_reason()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        _api.Put(LocalKubeApiServer.Node("n1", "127.0.0.11", instance: "i-n1"));
        _api.Put(LocalKubeApiServer.Pod("default", "web", "n1", uid: "uid-web"));
        _api.Put(LocalKubeApiServer.Pod("default", "db", "n1", uid: "uid-db"));
        _api.Put(LocalKubeApiServer.Pod("default", "elsewhere", "n2", uid: "uid-elsewhere"));
        await StartAsync("n1");
        var ipam = Daemons["n1"].Ipam;
        var node = new NodeName("n1");
        var web = Assigned(await ipam.AskAsync(new Allocate(node, new("c-web/eth0"), "default/web", PodUid: "uid-web")));
        var db = Assigned(await ipam.AskAsync(new Allocate(node, new("c-db/eth0"), "default/db", PodUid: "uid-db")));
        // Not Kubernetes's (no pod): never touched. A pod of another node under this node's key: that pod is not on n1.
        var plain = Assigned(await ipam.AskAsync(new Allocate(node, new("c-plain/eth0"))));
        var stray = Assigned(await ipam.AskAsync(new Allocate(node, new("c-stray/eth0"), "default/elsewhere", PodUid: "uid-elsewhere")));
        await InformerTests.UntilAsync("the pod watch of n1",
            () => _api.Watches("/api/v1/pods").Any(w => w.FieldSelector == "spec.nodeName=n1"));

        // The watch goes down; db is deleted meanwhile. Nothing is released while the watch is down, however long.
        _api.RefuseWatches = true;
        _api.DropWatches();
        var deletedAt = _api.Delete(_api.Get<k8s.Models.V1Pod>("default/db"));
        await Task.Delay(TimeSpan.FromSeconds(4)); // twice the grace
        Assert.Contains(db, await HeldAsync());
        // The watch resumes from the last resourceVersion it saw, gets the delete, and after the grace db's address goes.
        _api.RefuseWatches = false;
        var clock = Stopwatch.StartNew();
        await EventuallyAsync("db's address released", async () => (await HeldAsync()).Contains(db) ? null : (object)true);
        output.WriteLine($"released {clock.Elapsed.TotalSeconds:0.0}s after the watch came back (grace 2s)");
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(2), $"released after {clock.Elapsed}, before the grace");
        var resumed = _api.Watches("/api/v1/pods").Last(w => w.FieldSelector == "spec.nodeName=n1");
        Assert.True(long.Parse(resumed.ResourceVersion!) < deletedAt,
            $"resumed from {resumed.ResourceVersion}, not before the delete at {deletedAt}");

        var events = await EventsAsync("node-n1");
        var allocated = events.OfType<NodeMessages.AddressesAllocated>().SelectMany(e => e.Addresses).Single(a => a.Address == db);
        Assert.Equal(("default/db", "uid-db"), (allocated.Pod, allocated.PodUid));
        var release = events.OfType<NodeMessages.AddressesReleased>().SelectMany(e => e.Addresses).Where(a => a.Address == db).ToList();
        Assert.StartsWith("pod default/db (uid uid-db) no longer exists on node n1 in Kubernetes (missing for",
            Assert.Single(release).Reason);
        Assert.EndsWith("released by the Pod watch", release[0].Reason);

        // The pod of another node is not on n1: its address goes too; web (alive) and the address with no pod stay.
        await EventuallyAsync("the address of a pod not on n1 released",
            async () => (await HeldAsync()).Contains(stray) ? null : (object)true);
        var held = await HeldAsync();
        Assert.Contains(web, held);
        Assert.Contains(plain, held);
    }

    private static Ipv4 Assigned(IpamReply reply) => Assert.IsType<AddressAssigned>(reply).Address;

    private async Task<List<Ipv4>> HeldAsync() =>
        [.. Assert.IsType<AllocationsOf>(await Daemons["n1"].Ipam.AskAsync(new GetAllocations(new("n1")))).Allocations
            .Select(a => a.Address)];

    private async Task<SubnetSnapshot> SubnetAsync() =>
        Assert.IsType<SubnetView>(await Daemons["n1"].Ipam.AskAsync(new GetSubnet(Subnet))).Subnet;

    private async Task<List<object>> EventsAsync(string persistenceId)
    {
        await using var audit = await RomanaHost.StartAuditAsync(_cluster.Journal.Settings);
        return [.. await audit.Audit.ByPersistenceIdAsync(persistenceId)];
    }

    private Task StartAsync(string node) => _cluster.StartAsync(node, $$"""
        kubernetes {
          enabled = on, api-server = "{{_api.Url}}"
          backoff { min = 100ms, max = 500ms }
          nodes.retry-interval = 300ms
          pods { grace = 2s, check-interval = 200ms }
        }
        """);

    private static Task<T> EventuallyAsync<T>(string what, Func<Task<T?>> attempt) where T : class =>
        InProcessDaemonCluster.EventuallyAsync(what, attempt);
}
