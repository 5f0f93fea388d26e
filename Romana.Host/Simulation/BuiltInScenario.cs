using System.Text.Json.Nodes;
using Romana.Host.Routing;

namespace Romana.Host.Simulation;

/// <summary>
/// The cluster `romana simulate` runs by default and `romana bench failover` measures: three zones with two subnets
/// each and a route table per zone (limit 50), nodes with 20 to 44 pods; failures hit nodes that forward.
/// </summary>
public static class BuiltInScenario
{
    public static JsonObject Cluster(int nodesPerSubnet)
    {
        var zones = new JsonArray();
        var nodes = new JsonArray();
        var n = 0;
        foreach (var (zone, z) in new[] { "a", "b", "c" }.Select((zone, z) => (zone, z)))
        {
            var subnets = new JsonArray();
            for (var s = 1; s <= 2; s++)
            {
                var id = $"subnet-{zone}{s}";
                var third = z * 32 + s * 8;
                subnets.Add(new JsonObject { ["id"] = id, ["cidr"] = $"10.0.{third}.0/21", ["routeTable"] = $"rtb-{zone}" });
                for (var i = 0; i < nodesPerSubnet; i++, n++)
                    nodes.Add(new JsonObject
                    {
                        ["name"] = $"{id}-node-{i:000}", ["subnet"] = id, ["ip"] = $"10.0.{third + i / 200}.{10 + i % 200}", ["eni"] = $"eni-{n:x6}",
                        ["instanceId"] = $"i-{n:x8}", ["pods"] = 20 + 7 * i % 25, ["healthy"] = true,
                    });
            }
            zones.Add(new JsonObject { ["name"] = $"us-east-1{zone}", ["subnets"] = subnets });
        }
        return new JsonObject
        {
            ["podCidr"] = "100.64.0.0/10", ["blockPrefixLength"] = 26, ["routeLimit"] = 50, ["zones"] = zones,
            ["routeTables"] = new JsonArray([.. new[] { "a", "b", "c" }.Select(z => (JsonNode)new JsonObject { ["id"] = $"rtb-{z}", ["foreignRoutes"] = 2 })]),
            ["nodes"] = nodes,
        };
    }

    /// <summary>The plan is deterministic: plan the cluster once to learn which nodes forward, one list per subnet.</summary>
    public static async Task<IReadOnlyList<IReadOnlyList<string>>> ForwardersAsync(JsonObject cluster)
    {
        var (_, _, _, plan, _) = await ClusterPlanning.PlanAsync(ClusterFileReader.Parse(cluster));
        return [.. plan!.Tables.SelectMany(t => t.Routes)
            .GroupBy(r => r.Target.Value[..r.Target.Value.LastIndexOf("-node", StringComparison.Ordinal)]).OrderBy(g => g.Key)
            .Select(g => (IReadOnlyList<string>)[.. g.Select(r => r.Target.Value).Distinct()])];
    }

    /// <summary>A scenario of the cluster with these events ("fail"/"recover" and a node, at seconds), until the given second.</summary>
    public static Scenario Scenario(JsonObject cluster, IEnumerable<(double At, string What, string Node)> events, double until) =>
        ScenarioReader.Parse(new JsonObject
        {
            ["cluster"] = cluster.DeepClone(),
            ["health"] = new JsonObject { ["probeIntervalMs"] = 500, ["failureThreshold"] = 3, ["recoveryThreshold"] = 3 },
            ["events"] = new JsonArray([.. events.Select(e => (JsonNode)new JsonObject { ["at"] = $"{e.At}s", [e.What] = e.Node })]),
            ["until"] = $"{until}s",
        });

    /// <summary>The default run: 300 nodes, two forwarders of different zones fail, the first recovers.</summary>
    public static async Task<Scenario> DefaultAsync()
    {
        var cluster = Cluster(50);
        var forwarders = await ForwardersAsync(cluster);
        var first = forwarders[0][0];
        var second = forwarders[2][0];
        return Scenario(cluster, [(20, "fail", first), (24, "fail", second), (40, "recover", first)], 60);
    }
}
