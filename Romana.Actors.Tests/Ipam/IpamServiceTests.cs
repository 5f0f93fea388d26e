using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>The IPAM front door on a real SQLite journal: validation, routing, and what survives a restart.</summary>
public class IpamServiceTests
{
    private static async Task<StartedIpam> WithNodesAsync(TempJournal journal, ClusterTopology topology,
        params (string Node, string Subnet, string Ip)[] nodes)
    {
        var ipam = await journal.StartAsync(topology);
        foreach (var (node, subnet, ip) in nodes)
            Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new NodeName(node), new SubnetId(subnet), ip)));
        return ipam;
    }

    private static async Task<Ipv4> AllocateAsync(StartedIpam ipam, string node, string key) =>
        Assert.IsType<AddressAssigned>(await ipam.AskAsync(new Allocate(new NodeName(node), new AllocationKey(key)))).Address;

    private static async Task<IpamError> FailsAsync(StartedIpam ipam, object command) =>
        Assert.IsType<Failed>(await ipam.AskAsync(command)).Error;

    [Fact]
    public async Task Nodes_of_different_subnets_allocate_from_their_own_prefixes()
    {
        using var journal = new TempJournal();
        await using var ipam = await WithNodesAsync(journal, Topologies.TwoZones(), ("a", "s1", "10.1.0.1"), ("b", "s2", "10.1.0.2"),
            ("c", "s3", "10.1.0.3"));
        Assert.Equal("10.0.0.0", (await AllocateAsync(ipam, "a", "pa")).ToString());
        Assert.Equal("10.0.0.64", (await AllocateAsync(ipam, "b", "pb")).ToString());
        Assert.Equal("10.0.0.128", (await AllocateAsync(ipam, "c", "pc")).ToString());
    }

    [Fact]
    public async Task Bad_input_names_the_field_and_the_value_and_changes_nothing()
    {
        using var journal = new TempJournal();
        await using var ipam = await WithNodesAsync(journal, Topologies.TwoZones(), ("a", "s1", "10.1.0.1"));
        Assert.Equal("ip: '10.1.0' is not an IPv4 address", (await FailsAsync(ipam, new AddNode(new("b"), new("s1"), "10.1.0"))).Message);
        Assert.Equal("subnet: 's9' is not in the topology", (await FailsAsync(ipam, new AddNode(new("b"), new("s9"), "10.1.0.2"))).Message);
        Assert.Equal("node: 'ghost' is not a member of any subnet", (await FailsAsync(ipam, new Allocate(new("ghost"), new("k")))).Message);
        Assert.Equal(IpamErrorCode.Invalid, (await FailsAsync(ipam, new Allocate(new("a"), new("")))).Code);
        Assert.Equal("address: '10.0.0.300' is not an IPv4 address", (await FailsAsync(ipam, new Release(null, "10.0.0.300"))).Message);
        Assert.Equal("cidr: 'ten' is not an IPv4 CIDR", (await FailsAsync(ipam, new Reserve("ten"))).Message);
        Assert.Contains("already a member of subnet s1", (await FailsAsync(ipam, new AddNode(new("a"), new("s2"), "10.1.0.9"))).Message);
        var state = (IpamStateView)await ipam.AskAsync(new GetIpamState());
        Assert.Equal(["a"], state.Nodes.Select(n => n.Node.Value));
    }

    [Fact]
    public async Task A_node_ip_outside_the_subnets_vpc_cidr_is_invalid()
    {
        var topology = TopologyCarver.Carve(new TopologySpec("100.64.0.0/16", 26,
            [new ZoneSpec("z", [new SubnetSpec("s", VpcCidr: "10.0.0.0/24")])]));
        using var journal = new TempJournal();
        await using var ipam = await journal.StartAsync(topology);
        Assert.Equal("ip: 10.0.1.5 is not inside subnet s's VPC CIDR 10.0.0.0/24",
            (await FailsAsync(ipam, new AddNode(new("n"), new("s"), "10.0.1.5"))).Message);
        Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new("n"), new("s"), "10.0.0.5")));
    }

    [Fact]
    public async Task Removing_a_node_frees_its_keys_and_blocks_for_others()
    {
        using var journal = new TempJournal();
        await using var ipam = await WithNodesAsync(journal, Topologies.OneSubnet("10.0.0.0/30", 30), ("a", "s1", "10.1.0.1"),
            ("b", "s1", "10.1.0.2"));
        Assert.Equal("10.0.0.0", (await AllocateAsync(ipam, "a", "k")).ToString());
        Assert.Equal(IpamErrorCode.Exhausted, (await FailsAsync(ipam, new Allocate(new("b"), new("other")))).Code);
        var removed = Assert.IsType<NodeRemoved>(await ipam.AskAsync(new RemoveNode(new("a"))));
        Assert.Equal((new NodeName("a"), new SubnetId("s1"), "k"), (removed.Node, removed.Subnet, Assert.Single(removed.Released).Value));
        Assert.Equal("10.0.0.0", (await AllocateAsync(ipam, "b", "k")).ToString());
        Assert.Equal(IpamErrorCode.NotFound, (await FailsAsync(ipam, new RemoveNode(new("a")))).Code);
    }

    [Fact]
    public async Task A_restart_with_a_moved_prefix_is_refused_and_names_it()
    {
        using var journal = new TempJournal();
        await (await WithNodesAsync(journal, Topologies.TwoZones(), ("a", "s1", "10.1.0.1"))).DisposeAsync();
        var moved = TopologyCarver.Carve(new TopologySpec("10.0.0.0/24", 29,
            [new ZoneSpec("z1", [new SubnetSpec("s1"), new SubnetSpec("s2"), new SubnetSpec("s4")]),
                new ZoneSpec("z2", [new SubnetSpec("s3")])]));
        var error = await Assert.ThrowsAsync<IpamStartException>(() => journal.StartAsync(moved));
        Assert.Contains("subnet s1 of zone z1 was carved as 10.0.0.0/26; the configuration now gives 10.0.0.0/27", error.Message);
    }

    [Fact]
    public async Task With_frequent_snapshots_every_actor_recovers_exactly_its_state()
    {
        using var journal = new TempJournal();
        var settings = IpamSettings.Default with { SnapshotEvery = 3 };
        var ipam = await journal.StartAsync(Topologies.TwoZones(), settings);
        Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new("a"), new("s1"), "10.1.0.1")));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new("b"), new("s1"), "10.1.0.2")));
        for (var i = 0; i < 40; i++)
        {
            await AllocateAsync(ipam, i % 2 == 0 ? "a" : "b", $"k{i}");
            if (i % 3 == 0) Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(new AllocationKey($"k{i}"), null)));
        }
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Reserve("10.0.0.60/30")));
        var before = (IpamStateView)await ipam.AskAsync(new GetIpamState());
        await ipam.DisposeAsync();

        ipam = await journal.StartAsync(Topologies.TwoZones(), settings);
        var after = (IpamStateView)await ipam.AskAsync(new GetIpamState());
        await ipam.DisposeAsync();
        Assert.Equal(IpamInvariants.Json(before), IpamInvariants.Json(after));
        Assert.True(journal.CountSnapshots() > 0, "no snapshot was taken");
    }
}
