using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Benchmarks;

/// <summary>
/// Measures durable allocation throughput and latency on one node, and node recovery time, on real SQLite files.
/// Each measurement runs several times on a fresh journal and the median is reported.
/// </summary>
public static class IpamBenchmark
{
    public sealed record Options(int Requesters, int Allocations, int RecoveryEvents, int Runs);
    public sealed record ThroughputRun(double AllocationsPerSecond, double P50Ms, double P99Ms);
    public sealed record Result(string Machine, int Requesters, int Allocations, double AllocationsPerSecond, double P50Ms, double P99Ms,
        IReadOnlyList<ThroughputRun> Runs, int RecoveryEvents, double RecoveryMs, IReadOnlyList<double> RecoveryRunsMs);

    private static readonly NodeName Node = new("bench-node");
    private static readonly Config Quiet = ConfigurationFactory.ParseString("akka.loglevel = WARNING");

    private static readonly ClusterTopology Topology = TopologyCarver.Carve(new TopologySpec("100.64.0.0/10", 26,
        [new ZoneSpec("bench-zone", [new SubnetSpec("bench-subnet")])]));

    public static async Task<Result> RunAsync(Options options, Action<string>? progress)
    {
        var runs = new List<ThroughputRun>();
        for (var run = 1; run <= options.Runs; run++)
        {
            progress?.Invoke($"throughput run {run}/{options.Runs}: {options.Allocations:N0} allocations, {options.Requesters} requesters");
            runs.Add(await InFreshJournalAsync(journal => ThroughputAsync(journal, options)));
        }

        progress?.Invoke($"writing {options.RecoveryEvents:N0} events for the recovery measurement");
        var recoveries = await InFreshJournalAsync(async journal =>
        {
            await WriteEventsAsync(journal, options.RecoveryEvents);
            var times = new List<double>();
            for (var run = 1; run <= Math.Max(options.Runs, 5); run++) times.Add(await RecoveryAsync(journal));
            return times;
        });

        return new Result(Machine(), options.Requesters, options.Allocations,
            Median(runs.Select(r => r.AllocationsPerSecond)), Median(runs.Select(r => r.P50Ms)), Median(runs.Select(r => r.P99Ms)), runs,
            options.RecoveryEvents, Median(recoveries), recoveries);
    }

    private static async Task<ThroughputRun> ThroughputAsync(PersistenceSettings journal, Options options)
    {
        await using var ipam = await StartAsync(journal);
        // Warm-up outside the measurement: JIT, connection pool, the first blocks.
        await AllocateAsync(ipam, options.Requesters, Math.Min(2_000, options.Allocations), "warm");

        var clock = Stopwatch.StartNew();
        var latencies = await AllocateAsync(ipam, options.Requesters, options.Allocations, "pod");
        var seconds = clock.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        return new ThroughputRun(options.Allocations / seconds, Percentile(latencies, 0.50), Percentile(latencies, 0.99));
    }

    /// <summary>Requesters take the next allocation number from a shared counter until all are done; returns each one's latency in ms.</summary>
    private static async Task<double[]> AllocateAsync(IpamService ipam, int requesters, int allocations, string prefix)
    {
        var latencies = new double[allocations];
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, requesters).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < allocations)
            {
                var started = Stopwatch.GetTimestamp();
                var reply = await ipam.AskAsync(new Allocate(Node, new AllocationKey($"{prefix}-{i}")));
                latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if (reply is Failed failed) throw new InvalidOperationException($"allocation {i} failed: {failed.Error}");
            }
        })));
        return latencies;
    }

    /// <summary>Allocates and releases in turn until the node's journal holds <paramref name="events"/> events.</summary>
    private static async Task WriteEventsAsync(PersistenceSettings journal, int events)
    {
        await using var ipam = await StartAsync(journal);
        const int window = 64;
        var written = 0;
        for (var round = 0; written < events; round++)
        {
            var batch = Enumerable.Range(0, Math.Min(window, (events - written + 1) / 2)).Select(i => new AllocationKey($"r{round}-{i}")).ToList();
            await Task.WhenAll(batch.Select(k => ipam.AskAsync(new Allocate(Node, k))));
            await Task.WhenAll(batch.Select(k => ipam.AskAsync(new Release(k, null))));
            written += batch.Count * 2;
        }
    }

    /// <summary>Time from creating a node actor on the journal to its first answer, which it gives once recovered.</summary>
    private static async Task<double> RecoveryAsync(PersistenceSettings journal)
    {
        await using var ipam = await StartAsync(journal);
        var clock = Stopwatch.StartNew();
        var node = ipam.System.ActorOf(NodeActor.Props(Node, Topology.BlockPrefixLength, ActorRefs.Nobody, ipam.Settings, SystemClock.Instance));
        await node.Ask<NodeSnapshot>(new NodeMessages.GetNodeState(Node), TimeSpan.FromSeconds(60));
        return clock.Elapsed.TotalMilliseconds;
    }

    private static async Task<T> InFreshJournalAsync<T>(Func<PersistenceSettings, Task<T>> measure)
    {
        var folder = Directory.CreateTempSubdirectory("romana-bench-");
        try
        {
            return await measure(PersistenceSettings.Sqlite(Path.Combine(folder.FullName, "journal.db")));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            folder.Delete(recursive: true);
        }
    }

    private static async Task<IpamService> StartAsync(PersistenceSettings journal)
    {
        var ipam = await IpamService.StartAsync(Topology, journal, config: Quiet);
        var reply = await ipam.AskAsync(new AddNode(Node, new SubnetId("bench-subnet"), "10.0.0.10"));
        if (reply is Failed failed) throw new InvalidOperationException($"add node: {failed.Error}");
        return ipam;
    }

    private static double Percentile(double[] sorted, double p) => sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(p * sorted.Length) - 1)];

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Machine() =>
        $"{Environment.ProcessorCount} cores, {Math.Round(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024))} GiB, " +
        $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";
}
