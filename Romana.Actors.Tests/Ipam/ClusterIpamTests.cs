using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Addressing;
using Romana.Actors.Dataplane;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Dataplane;
using Romana.Actors.Tests.Membership;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;
using Romana.Host.Composition;
using Romana.Host.Ipam;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>
/// The IPAM across daemons: several actor systems in this process joined into one Akka.Cluster over loopback, on one real
/// PostgreSQL journal, every message checked by the serializer (akka.actor.serialize-messages = on). Each system is one
/// daemon: its node's actor local, subnets and zones sharded.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterIpamTests(PostgreSqlServer server) : IAsyncLifetime
{
    private static readonly ClusterTopology Topology = Topologies.OneSubnet("10.0.0.0/24", 28);
    private static readonly SubnetId Subnet = new("s1");
    private readonly List<RomanaHost> _members = [];
    private FreshJournal? _journal;
    /// <summary>The first member's remoting port: every member has it as its seed node, so it joins as it starts.</summary>
    private readonly int _seedPort = ClusterMembershipTests.FreePort();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var member in _members) await member.DisposeAsync();
        if (_journal is not null) await _journal.DisposeAsync();
    }

    [SkippableFact]
    public async Task Two_daemons_in_one_subnet_never_hand_out_the_same_address_and_blocks_are_granted_across_the_network()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        var (a, b) = (await StartMemberAsync("a"), await StartMemberAsync("b"));
        await FormClusterAsync();
        await JoinSubnetAsync(a, "a", "10.1.0.1");
        await JoinSubnetAsync(b, "b", "10.1.0.2");

        var onA = Enumerable.Range(0, 40).Select(i => a.Ipam.AskAsync(new Allocate(new("a"), new($"pod-a-{i}"))));
        var onB = Enumerable.Range(0, 40).Select(i => b.Ipam.AskAsync(new Allocate(new("b"), new($"pod-b-{i}"))));
        var replies = await Task.WhenAll(onA.Concat(onB));

        var addresses = replies.Select(r => Assert.IsType<AddressAssigned>(r).Address).ToList();
        Assert.Equal(addresses.Count, addresses.Distinct().Count());
        // 40 addresses need three /28 blocks on each node; the subnet's entity lives on one member only, so the other's
        // grants crossed the network.
        var owners = ((SubnetView)await a.Ipam.AskAsync(new GetSubnet(Subnet))).Subnet.Owners;
        Assert.True(owners.Count(o => o.Node == new NodeName("a")) >= 3);
        Assert.True(owners.Count(o => o.Node == new NodeName("b")) >= 3);
        foreach (var (member, node) in new[] { (a, "a"), (b, "b") })
        {
            var blocks = ((BlocksOf)await member.Ipam.AskAsync(new GetBlocks(new(node)))).Blocks;
            Assert.Equal(owners.Where(o => o.Node == new NodeName(node)).Select(o => o.Block).Order(), blocks.Order());
        }
        // A daemon serves its own node only.
        var other = Assert.IsType<Failed>(await a.Ipam.AskAsync(new Allocate(new("b"), new("pod-x"))));
        Assert.Contains("not served by this daemon", other.Error.Message);
    }

    [SkippableFact]
    public async Task A_second_live_daemon_claiming_the_same_node_name_is_refused()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        var (a, _) = (await StartMemberAsync("a"), await StartMemberAsync("b"));
        await FormClusterAsync();
        await JoinSubnetAsync(a, "a", "10.1.0.1");
        Assert.IsType<AddressAssigned>(await a.Ipam.AskAsync(new Allocate(new("a"), new("pod-1"))));

        var twin = await StartMemberAsync("a");
        await FormClusterAsync();
        // (Unavailable while the new member's regions find their coordinators.)
        var refused = await EventuallyAsync(async () =>
            await twin.Ipam.AskAsync(new AddNode(new("a"), Subnet, "10.1.0.1")) is Failed { Error.Code: not IpamErrorCode.Unavailable } f
                ? f
                : null);
        Assert.Equal(IpamErrorCode.Conflict, refused.Error.Code);
        Assert.Contains("already held by the live daemon", refused.Error.Message);
        // The refused daemon's node actor is stopped; the first daemon keeps serving.
        Assert.IsType<Failed>(await twin.Ipam.AskAsync(new Allocate(new("a"), new("pod-2"))));
        Assert.IsType<AddressAssigned>(await a.Ipam.AskAsync(new Allocate(new("a"), new("pod-2"))));
    }

    [SkippableFact]
    public async Task A_subnet_entity_moving_with_its_member_leaving_recovers_from_the_journal_and_keeps_every_grant()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        var names = new[] { "a", "b", "c" };
        var members = new List<RomanaHost>();
        foreach (var name in names) members.Add(await StartMemberAsync(name));
        await FormClusterAsync();
        for (var i = 0; i < names.Length; i++) await JoinSubnetAsync(members[i], names[i], $"10.1.0.{i + 1}");
        var held = new List<Ipv4>();
        for (var i = 0; i < names.Length; i++)
            for (var k = 0; k < 20; k++)
            {
                var reply = await members[i].Ipam.AskAsync(new Allocate(new(names[i]), new($"pod-{k}")));
                held.Add(Assert.IsType<AddressAssigned>(reply).Address);
            }
        var before = ((SubnetView)await members[0].Ipam.AskAsync(new GetSubnet(Subnet))).Subnet;

        var host = await HostOfSubnetAsync(members);
        var leaving = members[host];
        _members.Remove(leaving);
        await leaving.DisposeAsync(); // leaves the cluster: the shard is handed over, its node keeps everything
        members.RemoveAt(host);
        var survivorNames = names.Where((_, i) => i != host).ToArray();

        var after = await EventuallyAsync(async () => await members[0].Ipam.AskAsync(new GetSubnet(Subnet)) as SubnetView);
        Assert.Equal(string.Join(", ", before.Owners), string.Join(", ", after.Subnet.Owners));
        Assert.Equal(string.Join(", ", before.Members), string.Join(", ", after.Subnet.Members));
        // The subnet grants again from its new member, never one of the departed node's blocks or addresses.
        var more = new List<Ipv4>();
        for (var k = 20; k < 40; k++)
            more.Add(Assert.IsType<AddressAssigned>(await EventuallyAsync(async () =>
                await members[0].Ipam.AskAsync(new Allocate(new(survivorNames[0]), new($"pod-{k}"))) as AddressAssigned)).Address);
        Assert.Empty(more.Intersect(held));
        var owners = ((SubnetView)await members[1].Ipam.AskAsync(new GetSubnet(Subnet))).Subnet.Owners;
        Assert.True(before.Owners.All(owners.Contains));
    }

    [SkippableFact]
    public async Task A_block_granted_to_another_node_reaches_a_host_agent_within_a_second()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        var network = new InMemoryHostNetwork();
        var (a, b) = (await StartMemberAsync("a", network), await StartMemberAsync("b"));
        await FormClusterAsync();
        await JoinSubnetAsync(a, "a", "10.1.0.1");
        await JoinSubnetAsync(b, "b", "10.1.0.2");
        // The first block: the subscription has spread through the cluster by the time it arrives.
        var first = Assert.IsType<AddressAssigned>(await b.Ipam.AskAsync(new Allocate(new("b"), new("pod-0"))));
        await EventuallyAsync(() => Task.FromResult(network.Routes.Keys.Any(r => r.Contains(first.Address)) ? (object)true : null));

        // The next block, timed from the grant's answer to the route in the agent's table.
        Ipv4 next = first.Address;
        for (var k = 1; k <= 16; k++)
            next = Assert.IsType<AddressAssigned>(await b.Ipam.AskAsync(new Allocate(new("b"), new($"pod-{k}")))).Address;
        var clock = Stopwatch.StartNew();
        var via = Ipv4.Parse("10.1.0.2");
        while (!network.Routes.Any(r => r.Key.Contains(next) && r.Value == via) && clock.Elapsed < TimeSpan.FromSeconds(5))
            await Task.Delay(10);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the route to {next}'s block took {clock.Elapsed.TotalMilliseconds:0} ms");
    }

    /// <summary>
    /// A reservation across two subnets whose entities may live on different members, asked at either daemon: the
    /// ledger (a sharded entity of its own) holds it in both, fencing each node in its own daemon, and records it only when
    /// both agree.
    /// </summary>
    [SkippableFact]
    public async Task A_reservation_across_subnets_is_all_or_nothing_whichever_daemon_is_asked()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        // s1 10.0.0.0/26, s2 .64/26, s3 .128/26, padding .192/26.
        var topology = TopologyCarver.Carve(new TopologySpec("10.0.0.0/24", 28,
            [new ZoneSpec("z1", [new SubnetSpec("s1"), new SubnetSpec("s2"), new SubnetSpec("s3")])]));
        var (s1, s2) = (new SubnetId("s1"), new SubnetId("s2"));
        var a = await StartMemberAsync("a", topology: topology, subnet: s1);
        var b = await StartMemberAsync("b", topology: topology, subnet: s2);
        await FormClusterAsync();
        await JoinSubnetAsync(a, "a", "10.1.0.1", s1);
        await JoinSubnetAsync(b, "b", "10.1.0.2", s2);
        Assert.Equal("10.0.0.64", (await AllocatedAsync(b, "b", "pb")).ToString());
        Assert.IsType<AddressAssigned>(await a.Ipam.AskAsync(new Allocate(new("a"), new("pa"))));
        Assert.IsType<Succeeded>(await a.Ipam.AskAsync(new Release(new AllocationKey("pa"), null)));

        var refused = await EventuallyAsync(async () =>
            await a.Ipam.AskAsync(new Reserve("10.0.0.0/25")) is Failed { Error.Code: not IpamErrorCode.Unavailable } f ? f : null);
        Assert.Equal(IpamErrorCode.Conflict, refused.Error.Code);
        Assert.Contains("subnet s2: reservation 10.0.0.0/25 would cover 10.0.0.64, held by key 'pb' on node b", refused.Error.Message);
        foreach (var subnet in new[] { s1, s2 })
            Assert.Empty(((SubnetView)await a.Ipam.AskAsync(new GetSubnet(subnet))).Subnet.Reservations);

        Assert.IsType<Succeeded>(await b.Ipam.AskAsync(new Release(new AllocationKey("pb"), null)));
        Assert.IsType<Succeeded>(await b.Ipam.AskAsync(new Reserve("10.0.0.0/25")));
        Assert.IsType<Succeeded>(await b.Ipam.AskAsync(new Reserve("10.0.0.192/26")));
        Assert.Equal(IpamErrorCode.Exhausted, Assert.IsType<Failed>(await a.Ipam.AskAsync(new Allocate(new("a"), new("pa2")))).Error.Code);
        Assert.Equal(IpamErrorCode.Exhausted, Assert.IsType<Failed>(await b.Ipam.AskAsync(new Allocate(new("b"), new("pb2")))).Error.Code);
        var state = (IpamStateView)await a.Ipam.AskAsync(new GetIpamState());
        Assert.Equal(["10.0.0.0/25", "10.0.0.192/26"], state.Reservations.Select(r => r.ToString()));
        Assert.Equal(["10.0.0.0/25"], state.Subnets.Single(x => x.Subnet == s1).Reservations.Select(r => r.ToString()));
        Assert.Equal(["10.0.0.0/25"], state.Subnets.Single(x => x.Subnet == s2).Reservations.Select(r => r.ToString()));

        Assert.IsType<Succeeded>(await a.Ipam.AskAsync(new Unreserve("10.0.0.0/25")));
        Assert.IsType<AddressAssigned>(await a.Ipam.AskAsync(new Allocate(new("a"), new("pa3"))));
        Assert.Equal("10.0.0.64", (await AllocatedAsync(b, "b", "pb3")).ToString());
    }

    private static async Task<Ipv4> AllocatedAsync(RomanaHost member, string node, string key) =>
        Assert.IsType<AddressAssigned>(await member.Ipam.AskAsync(new Allocate(new(node), new(key)))).Address;

    // ---- the cluster -------------------------------------------------------------------------------------------------

    private async Task<RomanaHost> StartMemberAsync(string node, IHostNetwork? network = null, ClusterTopology? topology = null,
        SubnetId? subnet = null)
    {
        var (ipamTopology, ownSubnet) = (topology ?? Topology, subnet ?? Subnet);
        _journal ??= await server.CreateJournalAsync();
        var port = _members.Count == 0 ? _seedPort : 0;
        var config = ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            akka.actor.provider = cluster
            akka.actor.serialize-messages = on
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{port}} }
            akka.cluster.seed-nodes = ["akka.tcp://romana@127.0.0.1:{{_seedPort}}"]
            akka.cluster.pub-sub.gossip-interval = 200ms
            romana.ipam.cluster.register-interval = 300ms
            """).WithFallback(ConfigurationFactory.ParseString(InProcessOnlySerializer.Hocon));
        var journal = _journal.Settings;
        var host = await RomanaHost.StartAsync(config, akka =>
        {
            akka.AddRomanaPersistence(journal).AddRomanaIpam(ipamTopology, IpamPlacement.Cluster, new NodeName(node), ownSubnet);
            if (network is not null) akka.AddRomanaDataplane(new NodeName(node), ipamTopology.PodCidr, ownSubnet, IpamPlacement.Cluster);
        }, services =>
        {
            if (network is not null) services.AddSingleton<IHostNetwork>(network);
        });
        _members.Add(host);
        return host;
    }

    /// <summary>
    /// Returns once every member started so far sees all of them up. They join as they start (their seed node is the first
    /// member): joining members whose sharding had already started alone left the coordinators' hand-over hanging.
    /// </summary>
    private async Task FormClusterAsync() =>
        await EventuallyAsync(() => Task.FromResult(_members.All(m =>
            Cluster.Get(m.System).State.Members.Count(x => x.Status == MemberStatus.Up) == _members.Count) ? (object)true : null));

    private static async Task JoinSubnetAsync(RomanaHost member, string node, string ip, SubnetId? subnet = null)
    {
        var joining = subnet ?? Subnet;
        object? last = null;
        try
        {
            await EventuallyAsync(async () => (last = await member.Ipam.AskAsync(new AddNode(new(node), joining, ip))) as Succeeded);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{node} never joined {joining}; the last answer: {last}", e);
        }
    }

    /// <summary>Which member runs the subnet's entity.</summary>
    private static async Task<int> HostOfSubnetAsync(List<RomanaHost> members)
    {
        for (var i = 0; i < members.Count; i++)
        {
            var region = members[i].Registry.Get<SubnetActor>();
            var state = await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, TimeSpan.FromSeconds(5));
            if (state.Shards.Any(s => s.EntityIds.Contains(Subnet.Value))) return i;
        }
        throw new InvalidOperationException("no member runs the subnet's entity");
    }

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> attempt) where T : class
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await attempt() is { } done) return done;
            if (clock.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException("the cluster did not get there within 60 s");
            await Task.Delay(100);
        }
    }
}
