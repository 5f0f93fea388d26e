using Romana.Host.Documents;
using Romana.Host.Routing;

namespace Romana.Host.Simulation;

/// <summary>
/// The cluster `romana simulate` runs by default and `romana bench failover` measures: three zones with two subnets
/// each and a route table per zone (limit 50), nodes with 20 to 44 pods; failures hit nodes that forward.
/// </summary>
public static class BuiltInScenario
{
    private static readonly string[] ZoneLetters = ["a", "b", "c"];

    public static ClusterFileDocument Cluster(int nodesPerSubnet)
    {
        var zones = new List<ClusterZoneDocument?>();
        var nodes = new List<ClusterNodeDocument?>();
        var n = 0;
        foreach (var (zone, z) in ZoneLetters.Select((zone, z) => (zone, z)))
        {
            var subnets = new List<ClusterSubnetDocument?>();
            for (var s = 1; s <= 2; s++)
            {
                var id = $"subnet-{zone}{s}";
                var third = z * 32 + s * 8;
                subnets.Add(new ClusterSubnetDocument(id, $"10.0.{third}.0/21", $"rtb-{zone}"));
                for (var i = 0; i < nodesPerSubnet; i++, n++)
                    nodes.Add(new ClusterNodeDocument($"{id}-node-{i:000}", id, $"10.0.{third + i / 200}.{10 + i % 200}", $"eni-{n:x6}",
                        $"i-{n:x8}", 20 + 7 * i % 25, true));
            }
            zones.Add(new ClusterZoneDocument($"us-east-1{zone}", subnets));
        }
        return new ClusterFileDocument("100.64.0.0/10", 26, 50, zones,
            [.. ZoneLetters.Select(z => new ClusterRouteTableDocument($"rtb-{z}", 2))], nodes);
    }

    /// <summary>The plan is deterministic: plan the cluster once to learn which nodes forward, one list per subnet.</summary>
    public static async Task<IReadOnlyList<IReadOnlyList<string>>> ForwardersAsync(ClusterFileDocument cluster,
        CancellationToken cancel = default)
    {
        var (_, _, _, plan, _) = await ClusterPlanning.PlanAsync(ClusterFileReader.FromDocument(cluster), cancel);
        return [.. plan!.Tables.SelectMany(t => t.Routes)
            .GroupBy(r => r.Target.Value[..r.Target.Value.LastIndexOf("-node", StringComparison.Ordinal)]).OrderBy(g => g.Key)
            .Select(g => (IReadOnlyList<string>)[.. g.Select(r => r.Target.Value).Distinct()])];
    }

    /// <summary>A scenario of the cluster with these events ("fail"/"recover" and a node, at seconds), until the given second.</summary>
    public static Scenario Scenario(ClusterFileDocument cluster, IEnumerable<(double At, string What, string Node)> events, double until) =>
        ScenarioReader.FromDocument(new ScenarioDocument(
            cluster,
            new ScenarioHealthDocument(ProbeIntervalMs: 500, FailureThreshold: 3, RecoveryThreshold: 3),
            [.. events.Select(e => e.What switch
            {
                "fail" => new ScenarioEventDocument($"{e.At}s", Fail: e.Node),
                "recover" => new ScenarioEventDocument($"{e.At}s", Recover: e.Node),
                _ => throw new ArgumentException($"'{e.What}' is neither fail nor recover", nameof(events)),
            })],
            $"{until}s"));

    /// <summary>The default run: 300 nodes, two forwarders of different zones fail, the first recovers.</summary>
    public static async Task<Scenario> DefaultAsync(CancellationToken cancel = default)
    {
        var cluster = Cluster(50);
        var forwarders = await ForwardersAsync(cluster, cancel);
        var first = forwarders[0][0];
        var second = forwarders[2][0];
        return Scenario(cluster, [(20, "fail", first), (24, "fail", second), (40, "recover", first)], 60);
    }
}
