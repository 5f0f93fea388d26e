using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Routing;

public class IpamRoutingSourceTests
{
    /// <summary>
    /// In a cluster the route singleton's IPAM holds only its own node's view, while every subnet says which node owns which
    /// block: every owned block must reach the planner (with only the local node's, the lab's VPC got one subnet's route).
    /// </summary>
    [Fact]
    public void Every_block_a_subnet_grants_is_planned_also_for_nodes_whose_own_view_is_elsewhere()
    {
        var topology = Topologies.TwoZones("10.0.0.0/24", 29);
        var (s1, s3) = (new SubnetId("s1"), new SubnetId("s3"));
        var (a, c) = (new NodeName("a"), new NodeName("c"));
        var (blockA, blockC) = (Ipv4Cidr.Parse("10.0.0.0/29"), Ipv4Cidr.Parse("10.0.0.128/29"));
        var subnet = (SubnetId id, NodeName node, string ip, Ipv4Cidr block) => new SubnetSnapshot(id, topology.FindSubnet(id)!.PodPrefix,
            29, [new SubnetMemberSnapshot(node, Ipv4.Parse(ip), $"eni-{node}")], [new BlockOwnerSnapshot(block, node)], []);
        var ownView = new NodeSnapshot(a, 29, [blockA],
            [new Allocation(new AllocationKey("p1"), Ipv4.Parse("10.0.0.0"), null, DateTimeOffset.UnixEpoch)], []);

        var snapshot = IpamRoutingSource.Snapshot(
            new IpamStateView([subnet(s1, a, "10.1.0.1", blockA), subnet(s3, c, "10.3.0.1", blockC)], [ownView]), topology);

        Assert.Equal([new PlanBlock(blockA, a, 1), new PlanBlock(blockC, c, 8)], snapshot.Blocks.OrderBy(b => b.Block).ToArray());
        Assert.Equal(["a", "c"], snapshot.Nodes.Select(n => n.Name.Value).Order().ToArray());
    }
}
