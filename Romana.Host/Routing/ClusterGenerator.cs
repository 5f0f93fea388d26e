using System.Text.Json;
using System.Text.Json.Serialization;
using Romana.Actors.Addressing;
using Romana.Host.Documents;

namespace Romana.Host.Routing;

/// <summary>
/// A cluster file of a regular shape, for clusters too large to write by hand (`romana plan generate`): zones with the
/// same number of subnets, one route table per zone, subnets with the same number of nodes, nodes with the same number of
/// pods. Pod CIDR 100.64.0.0/10 with /26 blocks; each subnet's VPC CIDR is an aligned slot of 10.0.0.0/8 just large
/// enough for its nodes. Names follow the examples: zone us-east-1a, subnet-a01, subnet-a01-node-001, rtb-a.
/// </summary>
public static class ClusterGenerator
{
    public const string PodCidr = "100.64.0.0/10";
    public const int BlockPrefixLength = 26;

    /// <summary>The shape asked for; by default the cluster of issue 13 (5,040 nodes, 100,800 pods).</summary>
    public sealed record Shape(int Zones = 3, int SubnetsPerZone = 20, int NodesPerSubnet = 84, int PodsPerNode = 20, int RouteLimit = 100)
    {
        public int Subnets => Zones * SubnetsPerZone;
        public long Nodes => (long)Subnets * NodesPerSubnet;
        public long Pods => Nodes * PodsPerNode;
    }

    /// <summary>The cluster file of <paramref name="shape"/>, in file order: zone by zone, subnet by subnet.</summary>
    public static ClusterFileDocument Generate(Shape shape)
    {
        // A VPC subnet's slot holds its nodes and the 5 addresses AWS keeps (the first four and the last).
        var slotBits = 4;
        while ((1 << slotBits) < shape.NodesPerSubnet + 5) slotBits++;
        var zones = new List<ClusterZoneDocument?>();
        var tables = new List<ClusterRouteTableDocument?>();
        var nodes = new List<ClusterNodeDocument?>();
        var k = 0;
        for (var z = 0; z < shape.Zones; z++)
        {
            var letter = (char)('a' + z);
            var table = $"rtb-{letter}";
            tables.Add(new ClusterRouteTableDocument(table, 0));
            var subnets = new List<ClusterSubnetDocument?>();
            for (var s = 0; s < shape.SubnetsPerZone; s++, k++)
            {
                var id = $"subnet-{letter}{s + 1:00}";
                var first = 0x0A000000u + ((uint)k << slotBits);
                subnets.Add(new ClusterSubnetDocument(id, $"{new Ipv4(first)}/{32 - slotBits}", table));
                for (var n = 0; n < shape.NodesPerSubnet; n++)
                {
                    var index = nodes.Count + 1;
                    var ip = new Ipv4(first + 4 + (uint)n).ToString();
                    nodes.Add(new ClusterNodeDocument($"{id}-node-{n + 1:000}", id, ip, $"eni-{index:x8}",
                        $"i-{index:x8}", shape.PodsPerNode, true));
                }
            }
            zones.Add(new ClusterZoneDocument($"us-east-1{letter}", subnets));
        }
        return new ClusterFileDocument(PodCidr, BlockPrefixLength, shape.RouteLimit, zones, tables, nodes);
    }

    /// <summary>The document as a cluster file's text: indented, without the optional fields it leaves out.</summary>
    public static string ToJson(ClusterFileDocument document) =>
        JsonSerializer.Serialize(document, Writing.ClusterFileDocument);

    private static readonly DocumentJson Writing =
        new(new JsonSerializerOptions(DocumentJson.Default.Options) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull });
}
