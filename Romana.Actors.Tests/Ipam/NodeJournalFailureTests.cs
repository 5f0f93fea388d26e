using Akka.Actor;
using Akka.Persistence;
using Akka.Persistence.TestKit;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Support;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>
/// Journal failures injected with Akka.Persistence.TestKit, on the production wiring:
/// a subnet whose node runs under a backoff supervisor.
/// </summary>
public class NodeJournalFailureTests() : Akka.TestKit.Xunit2.TestKit(InMemoryJournal.Config)
{
    private static readonly NodeName Node = new("n1");
    private static readonly IpamSettings Settings = IpamSettings.Default with
    {
        AskTimeout = TimeSpan.FromSeconds(3),
        RestartMinBackoff = TimeSpan.FromMilliseconds(50),
        RestartMaxBackoff = TimeSpan.FromMilliseconds(200),
    };

    private async Task<IActorRef> StartNodeAsync()
    {
        // One /29 block holds every address these tests need, so only the node writes while the journal fails.
        var layout = Topologies.OneSubnet("10.0.0.0/28", 29).Subnets.Single();
        var subnet = Sys.ActorOf(SubnetActor.Props(layout, 29, Settings, SystemClock.Instance));
        var added = await subnet.Ask<SubnetMessages.NodeAdded>(new SubnetMessages.AddNode(Node,
            new NodeEndpoint(Ipv4.Parse("192.168.0.1"))), TimeSpan.FromSeconds(3));
        return added.NodeActor;
    }

    private ITestJournal Journal => TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null));

    private static Task<IpamReply> AllocateAsync(IActorRef node, string key) =>
        node.Ask<IpamReply>(new NodeMessages.AllocateAddress(Node, new AllocationKey(key)), TimeSpan.FromSeconds(3));

    [Fact]
    public async Task A_failed_write_hands_out_nothing_and_the_node_serves_again_from_its_journal()
    {
        var node = await StartNodeAsync();
        Assert.Equal("10.0.0.0", Assert.IsType<AddressAssigned>(await AllocateAsync(node, "k1")).Address.ToString());

        await Journal.OnWrite.Fail();
        var failed = Assert.IsType<Failed>(await AllocateAsync(node, "k2"));
        Assert.Equal(IpamErrorCode.Unavailable, failed.Error.Code);
        Assert.Contains("nothing was handed out", failed.Error.Message);
        await Journal.OnWrite.Pass();

        // Back from its journal, the node gives k2 the address the failed write would have taken, and k1 keeps its own.
        await AwaitAssertAsync(async () =>
            Assert.Equal("10.0.0.1", Assert.IsType<AddressAssigned>(await AllocateAsync(node, "k2")).Address.ToString()),
            TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100));
        Assert.Equal("10.0.0.0", Assert.IsType<AddressAssigned>(await AllocateAsync(node, "k1")).Address.ToString());
        var state = await node.Ask<NodeSnapshot>(new NodeMessages.GetNodeState(Node), TimeSpan.FromSeconds(3));
        Assert.Equal(["k1", "k2"], state.Allocations.Select(a => a.Key.Value));
    }

    [Fact]
    public async Task Every_requester_of_a_failed_batch_hears_of_the_failure()
    {
        var node = await StartNodeAsync();
        Assert.IsType<AddressAssigned>(await AllocateAsync(node, "warm"));
        await Journal.OnWrite.Fail();
        var replies = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => AllocateAsync(node, $"k{i}")));
        Assert.All(replies, r => Assert.Equal(IpamErrorCode.Unavailable, Assert.IsType<Failed>(r).Error.Code));
        await Journal.OnWrite.Pass();

        await AwaitAssertAsync(async () => Assert.IsType<AddressAssigned>(await AllocateAsync(node, "after")),
            TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100));
        var state = await node.Ask<NodeSnapshot>(new NodeMessages.GetNodeState(Node), TimeSpan.FromSeconds(3));
        Assert.Equal(["warm", "after"], state.Allocations.Select(a => a.Key.Value));
        Assert.Equal(["10.0.0.0", "10.0.0.1"], state.Allocations.Select(a => a.Address.ToString()));
    }

    [Fact]
    public async Task When_a_subnet_write_fails_the_subnet_and_its_nodes_come_back_and_the_front_door_finds_them()
    {
        var topology = Topologies.OneSubnet("10.0.0.0/28", 30);
        var ipam = Sys.ActorOf(IpamActor.Props(topology, Settings, SystemClock.Instance));
        Assert.IsType<Succeeded>(await ipam.Ask<IpamReply>(new AddNode(Node, new SubnetId("s1"), "192.168.0.1"), TimeSpan.FromSeconds(5)));
        for (var i = 0; i < 4; i++)
            Assert.IsType<AddressAssigned>(await ipam.Ask<IpamReply>(new Allocate(Node, new AllocationKey($"k{i}")),
                TimeSpan.FromSeconds(5)));

        await Journal.OnWrite.Fail();
        // The node's block is full: the next allocation needs the subnet to persist a new block, which fails.
        Assert.Equal(IpamErrorCode.Unavailable, Assert.IsType<Failed>(
            await ipam.Ask<IpamReply>(new Allocate(Node, new AllocationKey("k4")), TimeSpan.FromSeconds(10))).Error.Code);
        await Journal.OnWrite.Pass();

        await AwaitAssertAsync(async () =>
            Assert.Equal("10.0.0.4", Assert.IsType<AddressAssigned>(
                await ipam.Ask<IpamReply>(new Allocate(Node, new AllocationKey("k4")), TimeSpan.FromSeconds(5))).Address.ToString()),
            TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(200));
        var blocks = Assert.IsType<BlocksOf>(await ipam.Ask<IpamReply>(new GetBlocks(Node), TimeSpan.FromSeconds(5)));
        Assert.Equal(["10.0.0.0/30", "10.0.0.4/30"], blocks.Blocks.Select(b => b.ToString()));
    }

    [Fact]
    public async Task A_rejected_write_hands_out_nothing_either()
    {
        var node = await StartNodeAsync();
        await Journal.OnWrite.Reject();
        Assert.Equal(IpamErrorCode.Unavailable, Assert.IsType<Failed>(await AllocateAsync(node, "k1")).Error.Code);
        await Journal.OnWrite.Pass();
        await AwaitAssertAsync(async () =>
            Assert.Equal("10.0.0.0", Assert.IsType<AddressAssigned>(await AllocateAsync(node, "k1")).Address.ToString()),
            TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100));
    }
}
