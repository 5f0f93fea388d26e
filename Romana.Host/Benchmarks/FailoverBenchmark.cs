using System.Text.Json.Nodes;
using Romana.Host.Simulation;

namespace Romana.Host.Benchmarks;

/// <summary>
/// Failure to repaired routes, in the simulation: 300 nodes in 3 zones (two subnets each, one route table per zone,
/// route limit 50), ten forwarders failing one after another; the time from each failure to the last of its routes
/// moved, against the bound interval × threshold + 500 ms.
/// </summary>
public static class FailoverBenchmark
{
    public sealed record Result(int Nodes, int Pods, int Failures, double MedianMs, double MaxMs, double BoundMs, int RoutesMoved,
        double SimulatedSeconds, double ElapsedSeconds, IReadOnlyList<Failover> Failovers);

    public static async Task<Result> RunAsync(int nodesPerSubnet, int failures, Action<string>? progress)
    {
        // The plan is deterministic: plan the cluster once to learn which nodes forward, and fail those.
        var document = Scenario(nodesPerSubnet, []);
        var (_, _, _, plan, _) = await Routing.ClusterPlanning.PlanAsync(ScenarioReader.Parse(document).Cluster);
        var forwarders = plan!.Tables.SelectMany(t => t.Routes).GroupBy(r => r.Target.Value[..r.Target.Value.LastIndexOf("-node", StringComparison.Ordinal)])
            .Select(g => g.Select(r => r.Target.Value).Distinct().ToList()).ToList();
        var chosen = Enumerable.Range(0, failures).Select(f => forwarders[f % forwarders.Count][f / forwarders.Count % forwarders[f % forwarders.Count].Count]).ToList();
        var scenario = ScenarioReader.Parse(Scenario(nodesPerSubnet, chosen));
        var result = await SimulationRun.RunAsync(scenario, new SimulationOptions(), progress);
        if (result.Violation is not null) throw new InvalidOperationException($"invariant violated: {result.Violation}");
        var times = result.Failovers.Select(f => ((f.RoutesRepairedAt ?? f.DetectedAt ?? double.NaN) - f.FailedAt) * 1000).Order().ToArray();
        return new Result(scenario.Cluster.Nodes.Count, scenario.Cluster.Nodes.Sum(n => n.Pods), times.Length, times[times.Length / 2], times[^1],
            500 * 3 + 500, result.Failovers.Sum(f => f.RoutesMoved), result.Simulated.TotalSeconds, result.Elapsed.TotalSeconds, result.Failovers);
    }

    /// <summary>Zones a, b, c; subnets 1 and 2 in each; node i of a subnet has 20 + (7i mod 25) pods.</summary>
    public static JsonObject Scenario(int nodesPerSubnet, IReadOnlyList<string> failures)
    {
        var zones = new JsonArray();
        var nodes = new JsonArray();
        var names = new List<string>();
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
                {
                    names.Add($"{id}-node-{i:000}");
                    nodes.Add(new JsonObject
                    {
                        ["name"] = names[^1], ["subnet"] = id, ["ip"] = $"10.0.{third + i / 200}.{10 + i % 200}", ["eni"] = $"eni-{n:x6}",
                        ["instanceId"] = $"i-{n:x8}", ["pods"] = 20 + 7 * i % 25, ["healthy"] = true,
                    });
                }
            }
            zones.Add(new JsonObject { ["name"] = $"us-east-1{zone}", ["subnets"] = subnets });
        }
        // Failures 3 s apart, after the first convergence.
        var events = new JsonArray([.. failures.Select((node, f) => (JsonNode)new JsonObject { ["at"] = $"{20 + 3 * f}s", ["fail"] = node })]);
        return new JsonObject
        {
            ["cluster"] = new JsonObject
            {
                ["podCidr"] = "100.64.0.0/10", ["blockPrefixLength"] = 26, ["routeLimit"] = 50, ["zones"] = zones,
                ["routeTables"] = new JsonArray([.. new[] { "a", "b", "c" }.Select(z => (JsonNode)new JsonObject { ["id"] = $"rtb-{z}", ["foreignRoutes"] = 2 })]),
                ["nodes"] = nodes,
            },
            ["health"] = new JsonObject { ["probeIntervalMs"] = 500, ["failureThreshold"] = 3, ["recoveryThreshold"] = 3 },
            ["events"] = events,
            ["until"] = $"{20 + 3 * failures.Count + 10}s",
        };
    }
}
