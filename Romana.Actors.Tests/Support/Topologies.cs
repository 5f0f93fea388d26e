using Romana.Actors.Topology;

namespace Romana.Actors.Tests.Support;

public static class Topologies
{
    public static ClusterTopology OneSubnet(string podCidr = "10.0.0.0/24", int block = 30) =>
        TopologyCarver.Carve(new TopologySpec(podCidr, block, [new ZoneSpec("z1", [new SubnetSpec("s1")])]));

    public static ClusterTopology TwoZones(string podCidr = "10.0.0.0/24", int block = 29) =>
        TopologyCarver.Carve(new TopologySpec(podCidr, block,
            [new ZoneSpec("z1", [new SubnetSpec("s1"), new SubnetSpec("s2")]), new ZoneSpec("z2", [new SubnetSpec("s3")])]));
}
