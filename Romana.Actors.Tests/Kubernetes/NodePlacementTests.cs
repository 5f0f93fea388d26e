using Romana.Actors.Kubernetes;
using Romana.Actors.Topology;

namespace Romana.Actors.Tests.Kubernetes;

/// <summary>Where a Kubernetes Node goes in Romana's IPAM, decided from the Node and the topology alone.</summary>
public sealed class NodePlacementTests
{
    private static readonly ClusterTopology Topology = TopologyCarver.Carve(new TopologySpec("100.64.0.0/16", 26,
    [
        new ZoneSpec("us-east-1a",
            [new SubnetSpec("subnet-a1", VpcCidr: "10.0.1.0/24"), new SubnetSpec("subnet-a2", VpcCidr: "10.0.2.0/24")]),
        new ZoneSpec("us-east-1b", [new SubnetSpec("subnet-b1", VpcCidr: "10.0.3.0/24"), new SubnetSpec("subnet-none")]),
    ]));

    private static KubeNode Node(string name, string? zone, string? provider, params string[] ips) =>
        new(name, "u", "1", zone, provider, [.. ips]);

    [Fact]
    public void A_Node_goes_to_the_subnet_whose_vpc_cidr_holds_its_InternalIP_with_the_instance_of_its_providerID()
    {
        var join = Assert.IsType<NodePlacement.Join>(NodePlacement.Decide(
            Node("ip-10-0-2-7", "us-east-1a", "aws:///us-east-1a/i-0abc123def", "192.168.0.1", "10.0.2.7"), Topology));
        Assert.Equal(("ip-10-0-2-7", "subnet-a2", "10.0.2.7", "i-0abc123def", null, true),
            (join.Command.Node.Value, join.Command.Subnet.Value, join.Command.Ip, join.Command.InstanceId, join.Command.Eni,
                join.Command.MembershipOnly));
        Assert.Contains("zone us-east-1a", join.Command.Reason);
    }

    [Theory]
    [InlineData("aws:///us-east-1a/i-0abc", "i-0abc")]
    [InlineData("aws:///i-0abc", "i-0abc")]
    [InlineData("aws:///us-east-1a/i-", null)]
    [InlineData("aws:///us-east-1a/not-an-instance", null)]
    [InlineData("gce://project/zone/name", null)]
    [InlineData(null, null)]
    public void The_instance_comes_from_an_aws_providerID_only(string? providerId, string? instance) =>
        Assert.Equal(instance, NodePlacement.InstanceOf(providerId));

    [Fact]
    public void A_Node_Romana_cannot_place_is_skipped_with_the_reason()
    {
        var outside = Assert.IsType<NodePlacement.Skip>(NodePlacement.Decide(Node("edge", "us-east-1a", null, "172.16.0.4"), Topology));
        Assert.Equal("Node edge: no InternalIP of 172.16.0.4 is inside the vpc-cidr of a subnet of romana.topology", outside.Why);
        var none = Assert.IsType<NodePlacement.Skip>(NodePlacement.Decide(Node("bare", null, null), Topology));
        Assert.Equal("Node bare has no InternalIP address", none.Why);
        Assert.IsType<NodePlacement.Skip>(NodePlacement.Decide(Node("garbled", null, null, "not-an-ip"), Topology));
    }
}
