using System.Diagnostics;
using Romana.Host.Simulation;

namespace Romana.Host.Benchmarks;

/// <summary>
/// The route manager at scale, in the simulation (<see cref="ScaleScenario"/>): how long the run takes and how much memory
/// it holds, when every pod first became reachable, and how long each forwarder failure took to repair, in the middle of
/// the first convergence. One size per process, so that the peak memory is the run's.
/// </summary>
public static class ScaleBenchmark
{
    public sealed record Result(int Nodes, int Pods, double SimulatedSeconds, double ElapsedSeconds, double PeakMegabytes,
        double? ConvergedAt, IReadOnlyList<Failover> Failovers, double BoundMs, int RoutesInEc2, int SourceDestChecksDisabled,
        string? Violation, string? NotConverged);

    public static async Task<Result> RunAsync(int nodesPerSubnet, Action<string>? progress, CancellationToken cancel = default)
    {
        var scenario = ScaleScenario.Scenario(nodesPerSubnet);
        var result = await SimulationRun.RunAsync(scenario, new SimulationOptions(Cancel: cancel), progress);
        using var process = Process.GetCurrentProcess();
        return new Result(scenario.Cluster.Nodes.Count, scenario.Cluster.Nodes.Sum(n => n.Pods), result.Simulated.TotalSeconds,
            result.Elapsed.TotalSeconds, process.PeakWorkingSet64 / 1024.0 / 1024.0, result.ConvergedAt, result.Failovers, 500 * 3 + 500,
            result.Final.RouteTables.Sum(t => t.Routes.Count), result.SourceDestChecksDisabled, result.Violation?.ToString(),
            result.NotConverged?.ToString());
    }
}
