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
        var cluster = BuiltInScenario.Cluster(nodesPerSubnet);
        var forwarders = await BuiltInScenario.ForwardersAsync(cluster);
        var chosen = Enumerable.Range(0, failures)
            .Select(f => forwarders[f % forwarders.Count][f / forwarders.Count % forwarders[f % forwarders.Count].Count]);
        var scenario = BuiltInScenario.Scenario(cluster, chosen.Select((node, f) => (20 + 3.0 * f, "fail", node)), 20 + 3 * failures + 10);
        var result = await SimulationRun.RunAsync(scenario, new SimulationOptions(), progress);
        if (result.Violation is not null) throw new InvalidOperationException($"invariant violated: {result.Violation}");
        var times = result.Failovers.Select(f => ((f.RoutesRepairedAt ?? f.DetectedAt ?? double.NaN) - f.FailedAt) * 1000).Order()
            .ToArray();
        return new Result(scenario.Cluster.Nodes.Count, scenario.Cluster.Nodes.Sum(n => n.Pods), times.Length, times[times.Length / 2],
            times[^1], 500 * 3 + 500, result.Failovers.Sum(f => f.RoutesMoved), result.Simulated.TotalSeconds, result.Elapsed.TotalSeconds,
            result.Failovers);
    }
}
