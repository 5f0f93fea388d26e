using Romana.Actors.Topology;

namespace Romana.Actors.Tests.Support;

public static class Topologies
{
    public static ClusterTopology OneSubnet(string podCidr = "10.0.0.0/24", int block = 30) =>
        TopologyCarver.Carve(new TopologySpec(podCidr, block, [new ZoneSpec("z1", [new SubnetSpec("s1")])]));

    /// <summary>
    /// Padding at both levels, /29 blocks: z1 10.0.0.0/26 holds s1 .0/28, s2 .16/28, s3 .32/28 and the padding slot .48/28;
    /// z2 is s4 .64/26, z3 is s5 .128/26, and .192/26 is the pod CIDR's padding slot.
    /// </summary>
    public static ClusterTopology Padded() => TopologyCarver.Carve(new TopologySpec("10.0.0.0/24", 29,
        [new ZoneSpec("z1", [new SubnetSpec("s1"), new SubnetSpec("s2"), new SubnetSpec("s3")]), new ZoneSpec("z2", [new SubnetSpec("s4")]),
            new ZoneSpec("z3", [new SubnetSpec("s5")])]));

    public static ClusterTopology TwoZones(string podCidr = "10.0.0.0/24", int block = 29) =>
        TopologyCarver.Carve(new TopologySpec(podCidr, block,
            [new ZoneSpec("z1", [new SubnetSpec("s1"), new SubnetSpec("s2")]), new ZoneSpec("z2", [new SubnetSpec("s3")])]));
}
