using Romana.Host.Documents;

namespace Romana.Host.Simulation;

/// <summary>
/// The large clusters the route manager is measured on (`romana bench scale`): 3 zones of 20 subnets, one route table per
/// zone (limit 100), the nodes spread evenly over the 60 subnets, 20 pods each; the forwarders of two subnets of different
/// zones fail at 10 s and 14 s, in the middle of the first convergence; 40 simulated seconds.
/// </summary>
public static class ScaleScenario
{
    public const int Zones = 3;
    public const int SubnetsPerZone = 20;
    public const int Subnets = Zones * SubnetsPerZone;
    private static readonly string[] ZoneLetters = ["a", "b", "c"];

    /// <summary>The cluster with <paramref name="nodesPerSubnet"/> nodes in each subnet (84: 5,040 nodes).</summary>
    public static ClusterFileDocument Cluster(int nodesPerSubnet, int podsPerNode = 20, int routeLimit = 100)
    {
        var zones = new List<ClusterZoneDocument?>();
        var nodes = new List<ClusterNodeDocument?>();
        var n = 0;
        for (var z = 0; z < Zones; z++)
        {
            var subnets = new List<ClusterSubnetDocument?>();
            for (var s = 0; s < SubnetsPerZone; s++)
            {
                var index = z * SubnetsPerZone + s;
                var id = SubnetId(z, s);
                // A /20 per subnet (4,096 addresses): room for the largest cluster measured.
                subnets.Add(new ClusterSubnetDocument(id, $"10.{index / 16}.{index % 16 * 16}.0/20", $"rtb-{ZoneLetters[z]}"));
                for (var i = 0; i < nodesPerSubnet; i++, n++)
                {
                    var host = 10 + i;
                    var ip = $"10.{index / 16}.{index % 16 * 16 + host / 256}.{host % 256}";
                    nodes.Add(new ClusterNodeDocument($"{id}-node-{i:0000}", id, ip, $"eni-{n:x8}", $"i-{n:x8}", podsPerNode, true));
                }
            }
            zones.Add(new ClusterZoneDocument($"us-east-1{ZoneLetters[z]}", subnets));
        }
        return new ClusterFileDocument("100.64.0.0/10", 26, routeLimit, zones,
            [.. ZoneLetters.Select(z => new ClusterRouteTableDocument($"rtb-{z}"))], nodes);
    }

    public static string SubnetId(int zone, int subnet) => $"subnet-{ZoneLetters[zone]}{subnet + 1:00}";

    /// <summary>The run: the forwarder of a subnet of zone a fails at 10 s, one of zone b at 14 s; 40 s in all.</summary>
    public static Scenario Scenario(int nodesPerSubnet) => ScenarioReader.FromDocument(new ScenarioDocument(
        Cluster(nodesPerSubnet),
        new ScenarioHealthDocument(ProbeIntervalMs: 500, FailureThreshold: 3, RecoveryThreshold: 3),
        [
            new ScenarioEventDocument("10s", FailForwarder: SubnetId(0, 3)),
            new ScenarioEventDocument("14s", FailForwarder: SubnetId(1, 7)),
        ],
        "40s"));
}
