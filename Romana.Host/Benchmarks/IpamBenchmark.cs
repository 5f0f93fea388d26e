using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Persistence;
using Romana.Actors.Topology;
using Romana.Host.Audit;
using Romana.Host.Composition;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.IpamMessages;

using static Romana.Host.Benchmarks.BenchStatistics;

namespace Romana.Host.Benchmarks;

/// <summary>
/// Measures durable allocation throughput and latency on one node, and node recovery time, on real SQLite files.
/// Each measurement runs several times on a fresh journal and the median is reported.
/// </summary>
public static class IpamBenchmark
{
    /// <param name="Projections">
    /// Whether the audit's projections (checkpoints, the address index) run beside the node, as in a daemon: off, on, or both
    /// (each run measured once without and once with, in alternating order, so both see the same moments of the machine).
    /// </param>
    public sealed record Options(int Requesters, int Allocations, int Live, int RecoveryEvents, int Runs,
        ProjectionsMode Projections = ProjectionsMode.Off);

    public enum ProjectionsMode { Off, On, Both }

    /// <param name="CpuMsPerThousand">The process's CPU time (every thread: the node, the journal, the projections) per 1,000
    /// allocations measured: what the projections cost in work, less noisy than throughput on a shared machine.</param>
    /// <param name="BehindEvents">With the projections: how many orderings of the journal the slowest projection had not
    /// been handed when the last allocation was answered.</param>
    /// <param name="CatchUpMs">With the projections: from then until every projection had been handed the whole journal.
    /// The CPU time of a run with the projections includes this catch-up: work deferred is still counted.</param>
    /// <param name="YieldedMs">With the projections: how long the runner waited for the writes during the measurement.</param>
    public sealed record ThroughputRun(double AllocationsPerSecond, double P50Ms, double P99Ms, double CpuMsPerThousand,
        long BehindEvents = 0, double CatchUpMs = 0, double YieldedMs = 0);

    /// <param name="WithProjections">With <see cref="ProjectionsMode.Both"/>: the runs with the projections running (the
    /// main figures are those without).</param>
    public sealed record Result(string Machine, int Requesters, int Allocations, int Live, double AllocationsPerSecond, double P50Ms,
        double P99Ms, IReadOnlyList<ThroughputRun> Runs, int RecoveryEvents, double RecoveryMs, IReadOnlyList<double> RecoveryRunsMs)
    {
        public string Projections { get; init; } = "off";
        public Side? WithProjections { get; init; }
    }

    /// <summary>The same measurement with the projections running, and its cost: the throughput lost, in percent.</summary>
    public sealed record Side(double AllocationsPerSecond, double P50Ms, double P99Ms, IReadOnlyList<ThroughputRun> Runs,
        double CostPercent)
    {
        /// <summary>The CPU time per allocation the projections add, in percent of the runs without (medians).</summary>
        public double CpuCostPercent { get; init; }
    }

    private static readonly NodeName Node = new("bench-node");
    private static readonly Config Quiet = ConfigurationFactory.ParseString("akka.loglevel = WARNING");

    private static readonly ClusterTopology Topology = TopologyCarver.Carve(new TopologySpec("100.64.0.0/10", 26,
        [new ZoneSpec("bench-zone", [new SubnetSpec("bench-subnet")])]));

    public static async Task<Result> RunAsync(Options options, Action<string>? progress)
    {
        var runs = new List<ThroughputRun>();
        var withProjections = new List<ThroughputRun>();
        for (var run = 1; run <= options.Runs; run++)
        {
            progress?.Invoke($"throughput run {run}/{options.Runs}: {options.Allocations:N0} allocations, {options.Requesters} requesters" +
                (options.Projections == ProjectionsMode.Both ? ", without and with the projections" : ""));
            if (options.Projections == ProjectionsMode.Both)
            {
                // Alternate which goes first: the machine's state drifts within a run pair too.
                var projectionsFirst = run % 2 == 0;
                var first = await InFreshJournalAsync(journal => ThroughputAsync(journal, options, projectionsFirst));
                var second = await InFreshJournalAsync(journal => ThroughputAsync(journal, options, !projectionsFirst));
                runs.Add(projectionsFirst ? second : first);
                withProjections.Add(projectionsFirst ? first : second);
                progress?.Invoke($"  without {runs[^1].AllocationsPerSecond:N0}/s, with {withProjections[^1].AllocationsPerSecond:N0}/s");
            }
            else
                runs.Add(await InFreshJournalAsync(journal =>
                    ThroughputAsync(journal, options, options.Projections == ProjectionsMode.On)));
        }

        progress?.Invoke($"writing {options.RecoveryEvents:N0} events for the recovery measurement");
        var recoveries = await InFreshJournalAsync(async journal =>
        {
            var expected = await WriteEventsAsync(journal, options.RecoveryEvents);
            var times = new List<double>();
            for (var run = 1; run <= Math.Max(options.Runs, 5); run++) times.Add(await RecoveryAsync(journal, expected));
            return times;
        });

        var without = Median(runs.Select(r => r.AllocationsPerSecond));
        var with = Median(withProjections.Select(r => r.AllocationsPerSecond));
        return new Result(Machine(), options.Requesters, options.Allocations, options.Live,
            without, Median(runs.Select(r => r.P50Ms)), Median(runs.Select(r => r.P99Ms)), runs,
            options.RecoveryEvents, Median(recoveries), recoveries)
        {
            Projections = options.Projections.ToString().ToLowerInvariant(),
            WithProjections = withProjections.Count == 0 ? null : new Side(with, Median(withProjections.Select(r => r.P50Ms)),
                Median(withProjections.Select(r => r.P99Ms)), withProjections, 100 * (without - with) / without)
            {
                CpuCostPercent = 100 * (Median(withProjections.Select(r => r.CpuMsPerThousand))
                    / Median(runs.Select(r => r.CpuMsPerThousand)) - 1),
            },
        };
    }

    private static async Task<ThroughputRun> ThroughputAsync(JournalSettings journal, Options options, bool projections)
    {
        await using var romana = await StartAsync(journal, projections);
        var ipam = romana.Ipam;
        // Warm-up outside the measurement: JIT, connection pool, the first blocks.
        await AllocateAsync(ipam, options.Requesters, Math.Min(10_000, options.Allocations), "warm", options.Live);
        // The projections start the measurement at the journal's end: the warm-up's events are the warm-up's work.
        var yielded = projections ? (await ProgressAsync(romana)).Yielded : TimeSpan.Zero;
        if (projections) await CatchUpAsync(romana, journal);

        var cpu = Environment.CpuUsage.TotalTime;
        var clock = Stopwatch.StartNew();
        var latencies = await AllocateAsync(ipam, options.Requesters, options.Allocations, "pod", options.Live);
        var elapsed = clock.Elapsed;
        if (projections) yielded = (await ProgressAsync(romana)).Yielded - yielded;
        var (behind, catchUp) = projections ? await CatchUpAsync(romana, journal) : (0, TimeSpan.Zero);
        var cpuMs = (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds;
        return new ThroughputRun(options.Allocations / elapsed.TotalSeconds, Percentile(latencies, 0.50),
            Percentile(latencies, 0.99), 1000 * cpuMs / options.Allocations, behind, catchUp.TotalMilliseconds, yielded.TotalMilliseconds);
    }

    /// <summary>
    /// How far behind the journal's end the slowest projection is now, and how long it then takes to be handed everything
    /// written up to now.
    /// </summary>
    private static async Task<(long Behind, TimeSpan CatchUp)> CatchUpAsync(RomanaHost romana, JournalSettings journal)
    {
        var end = LastOrdering(journal);
        async Task<long> SlowestAsync() => (await ProgressAsync(romana)).ReadThrough.Values.DefaultIfEmpty(0).Min();
        var behind = Math.Max(0, end - await SlowestAsync());
        var clock = Stopwatch.StartNew();
        while (await SlowestAsync() < end)
        {
            if (clock.Elapsed > TimeSpan.FromMinutes(5))
                throw new InvalidOperationException($"the projections did not catch up with ordering {end} within 5 minutes");
            await Task.Delay(10);
        }
        return (behind, clock.Elapsed);
    }

    private static Task<ProjectionRunner.Progress> ProgressAsync(RomanaHost romana) => romana.Registry.Get<ProjectionRunner>()
        .Ask<ProjectionRunner.Progress>(ProjectionRunner.GetProgress.Instance, TimeSpan.FromSeconds(10));

    private static long LastOrdering(JournalSettings journal)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={journal.SqlitePath}");
        connection.Open();
        using var query = connection.CreateCommand();
        query.CommandText = "SELECT COALESCE(MAX(ordering), 0) FROM journal";
        return (long)query.ExecuteScalar()!;
    }

    /// <summary>
    /// <paramref name="requesters"/> requesters each send the next allocation as soon as their previous one is answered;
    /// returns the sorted latencies in ms. Pods churn as on a real node: once <paramref name="live"/> addresses are held,
    /// each allocation is followed by the release of the oldest one, by the same requester (0: never release).
    /// </summary>
    private static async Task<double[]> AllocateAsync(IpamClient ipam, int requesters, int allocations, string prefix, int live)
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
                if (live > 0 && i >= live
                    && await ipam.AskAsync(new Release(new AllocationKey($"{prefix}-{i - live}"), null)) is Failed notReleased)
                    throw new InvalidOperationException($"release {i - live} failed: {notReleased.Error}");
            }
        })));
        Array.Sort(latencies);
        return latencies;
    }

    /// <summary>
    /// Allocates a new key and releases the previous one, in pairs, until the node's journal holds
    /// <paramref name="events"/> events (a pair is stored as one release and one allocation event), then checks that
    /// a recovered node actor holds exactly the live state.
    /// </summary>
    private static async Task<NodeSnapshot> WriteEventsAsync(JournalSettings journal, int events)
    {
        await using var romana = await StartAsync(journal);
        var ipam = romana.Ipam;
        var previous = new AllocationKey("r-0");
        await ipam.AskAsync(new Allocate(Node, previous));
        for (var round = 1; HighestSequenceNr(journal) < events; round++)
        {
            for (var pair = 0; pair < 500; pair++, round++)
            {
                var key = new AllocationKey($"r-{round}");
                var replies = await Task.WhenAll(ipam.AskAsync(new Release(previous, null)), ipam.AskAsync(new Allocate(Node, key)));
                if (replies.OfType<Failed>().FirstOrDefault() is { } failed)
                    throw new InvalidOperationException($"writing events: {failed.Error}");
                previous = key;
            }
        }
        var state = (IpamStateView)await ipam.AskAsync(new GetIpamState());
        return state.Nodes.Single();
    }

    private static long HighestSequenceNr(JournalSettings journal)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={journal.SqlitePath}");
        connection.Open();
        using var query = connection.CreateCommand();
        query.CommandText = "SELECT COALESCE(MAX(sequence_number), 0) FROM journal WHERE persistence_id = $id";
        query.Parameters.AddWithValue("$id", $"node-{Node.Value}");
        return (long)query.ExecuteScalar()!;
    }

    /// <summary>Time from creating a node actor on the journal to its first answer, which it gives once recovered.</summary>
    /// <summary>In an actor system of its own on the journal; the recovered state must equal <paramref name="expected"/>.</summary>
    private static async Task<double> RecoveryAsync(JournalSettings journal, NodeSnapshot expected)
    {
        await using var romana = await RomanaHost.StartAsync(Quiet, akka => akka.AddRomanaPersistence(journal), name: "recovery");
        var clock = Stopwatch.StartNew();
        var node = romana.System.ActorOf(NodeActor.Props(Node, Topology.BlockPrefixLength, ActorRefs.Nobody, IpamSettings.Default,
            SystemClock.Instance));
        var recovered = await node.Ask<NodeSnapshot>(new NodeMessages.GetNodeState(Node), TimeSpan.FromSeconds(60));
        var elapsed = clock.Elapsed.TotalMilliseconds;
        if (Json(recovered) != Json(expected))
            throw new InvalidOperationException("the recovered node state differs from the state before");
        return elapsed;
    }

    private static string Json(NodeSnapshot snapshot) => System.Text.Json.JsonSerializer.Serialize(snapshot, RomanaSerializer.Options);

    private static async Task<T> InFreshJournalAsync<T>(Func<JournalSettings, Task<T>> measure)
    {
        using var folder = Cli.TemporaryFolder.Create("romana-bench-");
        return await measure(JournalSettings.Sqlite(Path.Combine(folder.Path, "journal.db")));
    }

    private static async Task<RomanaHost> StartAsync(JournalSettings journal, bool projections = false)
    {
        var romana = projections
            // As the daemon runs them: the runner beside the IPAM, on the journal's audit store, with the reference settings.
            ? await RomanaHost.StartAsync(Quiet, akka => akka.AddRomanaPersistence(journal).AddRomanaIpam(Topology)
                .AddRomanaProjections(journal, AuditSettings.From(Config.Empty)))
            : await RomanaHost.StartIpamAsync(Topology, journal, Quiet);
        var reply = await romana.Ipam.AskAsync(new AddNode(Node, new SubnetId("bench-subnet"), "10.0.0.10"));
        if (reply is Failed failed) throw new InvalidOperationException($"add node: {failed.Error}");
        return romana;
    }

    private static string Machine() =>
        $"{Environment.ProcessorCount} cores, {Math.Round(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024))} GiB, " +
        $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";
}
