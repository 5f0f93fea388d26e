using System.Collections.Immutable;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Persistence;
using Romana.Actors.Topology;
using Romana.Host.Composition;
using Romana.Host.Ipam;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.NodeMessages;
using static Romana.Actors.Ipam.SubnetMessages;
using static Romana.Actors.Topology.ZoneMessages;

namespace Romana.Host.Benchmarks;

/// <summary>
/// Audit questions on a journal of a million events: a month of pod churn on 300 nodes. The journal is written in
/// Akka.Persistence.Sql's SQLite layout (journal rows with their tags, serialized by Romana's serializer) straight through
/// SQL, because writing a million tagged rows through the plugin takes minutes; the questions then go through
/// Akka.Persistence.Query as always.
/// </summary>
public static class AuditBenchmark
{
    /// <summary>One question's runs and their median, with what the last run found.</summary>
    public sealed record Question(string Name, double MedianMs, IReadOnlyList<double> RunsMs, string Found);

    public sealed record Result(long Events, double WriteSeconds, IReadOnlyList<Question> Questions);

    public static async Task<Result> RunAsync(long events, int runs, string? keep, Action<string>? progress)
    {
        await using var fresh = keep is null
            ? await FreshJournal.SqliteAsync()
            : new FreshJournal(JournalSettings.Sqlite(keep), () => Task.CompletedTask);
        // Akka.Persistence.Sql creates its tables on first use: open the journal once through it.
        await (await RomanaHost.StartIpamAsync(TopologyCarver.Carve(new TopologySpec("100.64.0.0/16", 26,
            [new ZoneSpec("z", [new SubnetSpec("s")])])),
            fresh.Settings, Akka.Configuration.ConfigurationFactory.ParseString("akka.loglevel = WARNING"))).DisposeAsync();

        progress?.Invoke($"writing {events:N0} events");
        var clock = Stopwatch.StartNew();
        var (written, start, probe) = Write(fresh.Settings.SqlitePath, events);
        var writeSeconds = clock.Elapsed.TotalSeconds;

        await using var romana = await RomanaHost.StartAuditAsync(fresh.Settings);
        var journal = romana.Audit;
        async Task<Question> Measure(string name, Func<Task<string>> ask)
        {
            var times = new List<double>();
            var found = "";
            for (var run = 0; run < runs; run++)
            {
                clock.Restart();
                found = await ask();
                times.Add(clock.Elapsed.TotalMilliseconds);
                progress?.Invoke($"{name} {run + 1}/{runs}: {times[^1]:0} ms, {found}");
            }
            return new Question(name, Median(times), times, found);
        }
        static string Replayed(JournalReplay replay) => $"{replay.Applied:N0} events applied, {replay.Ipam().Nodes.Length} nodes";
        return new Result(written, writeSeconds,
        [
            await Measure($"address {probe}", async () => $"{(await AuditQueries.AddressAsync(journal, probe)).Length} holdings"),
            await Measure("replay to the middle", async () => Replayed(await AuditQueries.ReplayAsync(journal, start.AddDays(15)))),
            await Measure("replay to the end", async () => Replayed(await AuditQueries.ReplayAsync(journal, null))),
        ]);
    }

    /// <summary>Three zones of two subnets, 50 nodes each with two /26 blocks; pods come and go, one event a pod.</summary>
    private static (long Written, DateTimeOffset Start, Ipv4 Probe) Write(string path, long target)
    {
        var serializer = new RomanaSerializer(null!);
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path }.ToString());
        connection.Open();
        using var pragma = connection.CreateCommand();
        // The tables were created by the plugin; the events its start-up wrote belong to another topology.
        pragma.CommandText = "PRAGMA synchronous = OFF; DELETE FROM journal;";
        pragma.ExecuteNonQuery();
        var writer = new RowWriter(connection, serializer);
        var start = new DateTimeOffset(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);
        var nodes = new List<(NodeName Node, ImmutableArray<Ipv4Cidr> Blocks)>();
        var at = start;
        var pod = 0;

        for (var z = 0; z < 3; z++)
        {
            var zone = new ZoneName($"zone-{z}");
            var zonePrefix = Ipv4Cidr.Parse("100.64.0.0/10").Slot((ulong)z, 12);
            writer.Add($"zone-{zone}", new ZoneDeclared(zone, zonePrefix, at, "zone configured"));
            for (var s = 0; s < 2; s++)
            {
                var subnet = new SubnetId($"subnet-{z}{s}");
                var prefix = zonePrefix.Slot((ulong)s, 13);
                writer.Add($"zone-{zone}", new SubnetPrefixAssigned(zone, subnet, prefix, at, "subnet configured"));
                for (var n = 0; n < 50; n++)
                {
                    var node = new NodeName($"{subnet}-node-{n:00}");
                    var blocks = ImmutableArray.Create(prefix.Slot((ulong)(2 * n), 26), prefix.Slot((ulong)(2 * n + 1), 26));
                    writer.Add($"subnet-{subnet}",
                        new NodeJoined(subnet, node, new Ipv4(0x0A000000u + (uint)nodes.Count), at, "node added", $"eni-{nodes.Count:x5}"));
                    foreach (var block in blocks)
                    {
                        writer.Add($"subnet-{subnet}", new BlockAssigned(subnet, block, node, at, "node out of addresses"));
                        writer.Add($"node-{node}", new BlockAdopted(node, block, [], at, "granted by subnet"));
                    }
                    nodes.Add((node, blocks));
                }
            }
        }

        // Each node keeps 40 pods and replaces them one at a time: release the oldest, allocate the lowest free address.
        var held = nodes.Select(_ => new Queue<(AllocationKey Key, Ipv4 Address)>()).ToList();
        var step = TimeSpan.FromDays(30) / Math.Max(1, target);
        while (writer.Written < target)
        {
            for (var i = 0; i < nodes.Count && writer.Written < target; i++)
            {
                var (node, blocks) = nodes[i];
                var queue = held[i];
                at += step;
                if (queue.Count >= 40)
                {
                    var (key, address) = queue.Dequeue();
                    writer.Add($"node-{node}", new AddressesReleased(node, [new ReleasedAddress(key, address, "CNI DEL")], at, "released"));
                    continue;
                }
                var used = queue.Select(q => q.Address).ToHashSet();
                var free = Enumerable.Range(0, 128).Select(o => new Ipv4(blocks[o / 64].Network.Value + (uint)(o % 64)))
                    .First(a => !used.Contains(a));
                var newKey = new AllocationKey($"container-{pod:x8}/eth0");
                queue.Enqueue((newKey, free));
                writer.Add($"node-{node}",
                    new AddressesAllocated(node, [new AllocatedAddress(newKey, free, $"default/web-{pod++:x6}")], at, "allocated"));
            }
        }
        writer.Commit();
        return (writer.Written, start, new Ipv4(nodes[0].Blocks[0].Network.Value + 3));
    }

    /// <summary>
    /// Rows as Akka.Persistence.Sql writes them on SQLite:
    /// ticks, serializer id, manifest and the tag between separators.
    /// </summary>
    private sealed class RowWriter
    {
        private readonly SqliteConnection _connection;
        private readonly RomanaSerializer _serializer;
        private readonly Dictionary<string, long> _sequence = new();
        private readonly string _writer = Guid.NewGuid().ToString("N");
        private SqliteTransaction _transaction;
        private readonly SqliteCommand _journal;

        public RowWriter(SqliteConnection connection, RomanaSerializer serializer)
        {
            _connection = connection;
            _serializer = serializer;
            _transaction = connection.BeginTransaction();
            _journal = connection.CreateCommand();
            _journal.CommandText = """
                INSERT INTO journal
                    (ordering, created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags)
                VALUES ($ordering, $created, 0, $pid, $seq, $message, $manifest, $identifier, $writer, ';ipam;')
                """;
            foreach (var name in new[] { "$ordering", "$created", "$pid", "$seq", "$message", "$manifest", "$identifier", "$writer" })
                _journal.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        public long Written { get; private set; }

        public void Add(string persistenceId, Romana.Actors.Audit.IIpamEvent e)
        {
            var sequence = _sequence[persistenceId] = _sequence.GetValueOrDefault(persistenceId) + 1;
            var ordering = Written + 1;
            _journal.Transaction = _transaction;
            _journal.Parameters["$ordering"].Value = ordering;
            _journal.Parameters["$created"].Value = e.At.UtcTicks;
            _journal.Parameters["$pid"].Value = persistenceId;
            _journal.Parameters["$seq"].Value = sequence;
            _journal.Parameters["$message"].Value = _serializer.ToBinary(e);
            _journal.Parameters["$manifest"].Value = _serializer.Manifest(e);
            _journal.Parameters["$identifier"].Value = RomanaSerializer.Id;
            _journal.Parameters["$writer"].Value = _writer;
            _journal.ExecuteNonQuery();
            if (++Written % 50_000 == 0)
            {
                _transaction.Commit();
                _transaction = _connection.BeginTransaction();
            }
        }

        public void Commit() => _transaction.Commit();
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
