using System.Collections.Immutable;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Persistence;
using Romana.Actors.Topology;
using Romana.Host.Audit;
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

    /// <summary><see cref="WriteSeconds"/> is null for a kept journal asked again.</summary>
    public sealed record Result(string Journal, long Events, double? WriteSeconds, IReadOnlyList<Question> Questions)
    {
        /// <summary>How long the projections took to reach the journal's end before the questions (all of it on a new journal).</summary>
        public double ProjectSeconds { get; init; }

        public IReadOnlyList<ProjectionRun> Projections { get; init; } = [];
    }

    /// <summary>
    /// <paramref name="keep"/>: a SQLite file to write and keep. <paramref name="postgreSql"/>: a server to write a journal
    /// to instead, in a database of the benchmark's own (created, and dropped at the end unless <paramref name="keep"/>
    /// names the database to keep), never in a database that holds anything. A kept journal that exists already (from an
    /// earlier run) is asked again as it is, without writing: the large ones take minutes to write.
    /// </summary>
    public static async Task<Result> RunAsync(long events, int runs, string? keep, string? postgreSql, Action<string>? progress)
    {
        var existing = keep is not null
            && (postgreSql is null ? File.Exists(keep) : await PostgreSqlDatabase.ExistsAsync(postgreSql, keep));
        await using var fresh = postgreSql is not null ? await PostgreSqlDatabase.OpenAsync(postgreSql, keep, existing)
            : keep is null ? await FreshJournal.SqliteAsync()
            : new FreshJournal(JournalSettings.Sqlite(keep), () => Task.CompletedTask);
        var clock = Stopwatch.StartNew();
        long written;
        if (existing)
        {
            written = await CountAsync(fresh.Settings);
            progress?.Invoke($"asking the {written:N0} events already in {fresh.Settings.Describe()}");
        }
        else
        {
            // Akka.Persistence.Sql creates its tables on first use: open the journal once through it.
            await (await RomanaHost.StartIpamAsync(TopologyCarver.Carve(new TopologySpec("100.64.0.0/16", 26,
                [new ZoneSpec("z", [new SubnetSpec("s")])])),
                fresh.Settings, Akka.Configuration.ConfigurationFactory.ParseString("akka.loglevel = WARNING"))).DisposeAsync();
            progress?.Invoke($"writing {events:N0} events to {fresh.Settings.Describe()}");
            using var rows = fresh.Settings.Journal == JournalKind.PostgreSql
                ? (IJournalRows)new PostgreSqlRows(fresh.Settings.PostgreSqlConnectionString)
                : new SqliteRows(fresh.Settings.SqlitePath);
            written = Write(rows, events, progress);
        }
        double? writeSeconds = existing ? null : clock.Elapsed.TotalSeconds;

        // The derived data as a daemon's projections keep it: brought to the journal's end (all of it on a new journal;
        // nothing on a kept one whose store is current).
        var settings = AuditSettings.From(Akka.Configuration.Config.Empty);
        clock.Restart();
        var projected = await AuditMaintenance.CatchUpAsync(fresh.Settings, settings, reset: false,
            (name, applied) =>
            {
                if (applied % 1_000_000 < settings.Checkpoints.EveryEvents) progress?.Invoke($"{name}: {applied:N0} events");
            },
            CancellationToken.None, progress);
        var projectSeconds = clock.Elapsed.TotalSeconds;
        progress?.Invoke($"projections brought to the end in {projectSeconds:0.0} s: " +
            string.Join(", ", projected.Select(p => $"{p.Projection} {p.Events:N0} events in {p.Seconds:0.0} s")));

        // Then the questions as `romana audit` asks them: a one-shot read journal, the audit store read-only.
        await using var romana = await RomanaHost.StartAuditAsync(fresh.Settings);
        var journal = romana.Audit;
        var store = AuditStore.For(fresh.Settings, readOnly: true);
        var maxTail = ConfigValues.Int(RomanaConfig.Reference, "romana.audit.index.max-tail-events");
        async Task<Question> Measure(string name, Func<int, Task<string>> ask)
        {
            var times = new List<double>();
            var found = new List<string>();
            for (var run = 0; run < runs; run++)
            {
                clock.Restart();
                found.Add(await ask(run));
                times.Add(clock.Elapsed.TotalMilliseconds);
                progress?.Invoke($"{name} {run + 1}/{runs}: {times[^1]:0} ms, {found[^1]}");
            }
            return new Question(name, BenchStatistics.Median(times), times, string.Join("; ", found.Distinct()));
        }
        async Task<string> Replayed(DateTimeOffset? until)
        {
            var (replay, source) = await AuditMaintenance.ReplayAsync(journal, store, until, settings.LateWrites, CancellationToken.None);
            return $"{replay.Applied:N0} events applied, {replay.Ipam().Nodes.Length} nodes, " +
                (source.Checkpoint is { } checkpoint
                    ? $"checkpoint of {checkpoint.Events:N0} + {source.TailRead:N0} read"
                    : "no checkpoint");
        }
        static string Source<T>(IndexedAudit.Answer<T> answer) => answer.Value is null ? $"the journal ({answer.Note})" : "the index";
        // The moments of "any moment": spread over the whole history, the same ones on every journal of this size.
        var span = Step * written;
        var random = new Random(16);
        var moments = Enumerable.Range(0, runs).Select(_ => Start + span * random.NextDouble()).ToArray();
        var node = new NodeName("subnet-00-node-00");
        return new Result(fresh.Settings.Describe(), written, writeSeconds,
        [
            await Measure($"address {Probe}", async _ =>
            {
                var answer = await IndexedAudit.AddressAsync(fresh.Settings, journal, Probe, maxTail, CancellationToken.None);
                var holdings = answer.Value ?? await AuditQueries.AddressAsync(journal, Probe);
                return $"{holdings.Length} holdings from {Source(answer)}";
            }),
            await Measure($"node {node}", async _ =>
            {
                var answer = await IndexedAudit.NodeAsync(fresh.Settings, journal, node, maxTail, CancellationToken.None);
                var history = answer.Value ?? await AuditQueries.NodeAsync(journal, node);
                return $"{history.Addresses.Length} holdings, {history.Changes.Length} changes from {Source(answer)}";
            }),
            await Measure("replay to a random moment", run => Replayed(moments[run])),
            await Measure("replay to the end", _ => Replayed(null)),
        ])
        { ProjectSeconds = projectSeconds, Projections = projected };
    }

    private static readonly DateTimeOffset Start = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly Ipv4Cidr ClusterPrefix = Ipv4Cidr.Parse("100.64.0.0/10");

    /// <summary>An address of the first node's first block: held again and again over the history.</summary>
    private static readonly Ipv4 Probe = new(ClusterPrefix.Network.Value + 3);

    private static async Task<long> CountAsync(JournalSettings settings)
    {
        var readOnly = PersistenceHosting.ReadOnlyConnectionString(settings);
        await using System.Data.Common.DbConnection connection = settings.Journal == JournalKind.PostgreSql
            ? new NpgsqlConnection(readOnly)
            : new SqliteConnection(readOnly);
        await connection.OpenAsync();
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT coalesce(max(ordering), 0) FROM journal";
        return Convert.ToInt64(await count.ExecuteScalarAsync());
    }

    /// <summary>A month of churn per million events.</summary>
    private static readonly TimeSpan Step = TimeSpan.FromDays(30) / 1_000_000;

    /// <summary>
    /// Three zones of two subnets, 50 nodes each with two /26 blocks; pods come and go, one event a pod, a month of it per
    /// million events.
    /// </summary>
    private static long Write(IJournalRows rows, long target, Action<string>? progress)
    {
        var writer = new RowWriter(rows, progress);
        var nodes = new List<(NodeName Node, ImmutableArray<Ipv4Cidr> Blocks)>();
        var at = Start;
        var pod = 0;

        for (var z = 0; z < 3; z++)
        {
            var zone = new ZoneName($"zone-{z}");
            var zonePrefix = ClusterPrefix.Slot((ulong)z, 12);
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
        while (writer.Written < target)
        {
            for (var i = 0; i < nodes.Count && writer.Written < target; i++)
            {
                var (node, blocks) = nodes[i];
                var queue = held[i];
                at += Step;
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
        rows.Complete();
        return writer.Written;
    }

    /// <summary>Numbers each persistence id's events and serializes them as Akka.Persistence.Sql stores them.</summary>
    private sealed class RowWriter(IJournalRows rows, Action<string>? progress)
    {
        private readonly RomanaSerializer _serializer = new(null!);
        private readonly Dictionary<string, long> _sequence = new();

        public long Written { get; private set; }

        public void Add(string persistenceId, Romana.Actors.Audit.IIpamEvent e)
        {
            var sequence = _sequence[persistenceId] = _sequence.GetValueOrDefault(persistenceId) + 1;
            rows.Add(++Written, e.At.UtcTicks, persistenceId, sequence, _serializer.ToBinary(e), _serializer.Manifest(e));
            if (Written % 1_000_000 == 0) progress?.Invoke($"{Written:N0} events written");
        }
    }

    /// <summary>
    /// Journal rows in Akka.Persistence.Sql's layout (the same columns on SQLite and PostgreSQL): ordering, ticks,
    /// serializer id, manifest, and the tag between separators.
    /// </summary>
    private interface IJournalRows : IDisposable
    {
        void Add(long ordering, long created, string persistenceId, long sequence, byte[] message, string manifest);

        void Complete();
    }

    private const string Tags = ";ipam;";

    private sealed class SqliteRows : IJournalRows
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _insert;
        private readonly string _writer = Guid.NewGuid().ToString("N");
        private SqliteTransaction _transaction;
        private long _inTransaction;

        public SqliteRows(string path)
        {
            _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path }.ToString());
            _connection.Open();
            using var pragma = _connection.CreateCommand();
            // The tables were created by the plugin; the events its start-up wrote belong to another topology.
            pragma.CommandText = "PRAGMA synchronous = OFF; DELETE FROM journal;";
            pragma.ExecuteNonQuery();
            _transaction = _connection.BeginTransaction();
            _insert = _connection.CreateCommand();
            _insert.CommandText = $"""
                INSERT INTO journal
                    (ordering, created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags)
                VALUES ($ordering, $created, 0, $pid, $seq, $message, $manifest, {RomanaSerializer.Id}, '{_writer}', '{Tags}')
                """;
            foreach (var name in new[] { "$ordering", "$created", "$pid", "$seq", "$message", "$manifest" })
                _insert.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        public void Add(long ordering, long created, string persistenceId, long sequence, byte[] message, string manifest)
        {
            _insert.Transaction = _transaction;
            _insert.Parameters[0].Value = ordering;
            _insert.Parameters[1].Value = created;
            _insert.Parameters[2].Value = persistenceId;
            _insert.Parameters[3].Value = sequence;
            _insert.Parameters[4].Value = message;
            _insert.Parameters[5].Value = manifest;
            _insert.ExecuteNonQuery();
            if (++_inTransaction % 50_000 != 0) return;
            _transaction.Commit();
            _transaction = _connection.BeginTransaction();
        }

        public void Complete() => _transaction.Commit();

        public void Dispose()
        {
            _insert.Dispose();
            _transaction.Dispose();
            _connection.Dispose();
        }
    }

    /// <summary>
    /// Binary COPY, the fastest way in. COPY fills the identity column `ordering` with the values given; the identity's
    /// sequence is then moved past them, so the plugin's own writes would continue after the generated history.
    /// </summary>
    private sealed class PostgreSqlRows : IJournalRows
    {
        private readonly NpgsqlConnection _connection;
        private readonly NpgsqlBinaryImporter _copy;
        private readonly string _writer = Guid.NewGuid().ToString("N");

        public PostgreSqlRows(string connectionString)
        {
            _connection = new NpgsqlConnection(connectionString);
            _connection.Open();
            using (var delete = new NpgsqlCommand("DELETE FROM journal", _connection)) delete.ExecuteNonQuery();
            _copy = _connection.BeginBinaryImport("""
                COPY journal (ordering, created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, tags)
                FROM STDIN (FORMAT BINARY)
                """);
        }

        public void Add(long ordering, long created, string persistenceId, long sequence, byte[] message, string manifest)
        {
            _copy.StartRow();
            _copy.Write(ordering, NpgsqlDbType.Bigint);
            _copy.Write(created, NpgsqlDbType.Bigint);
            _copy.Write(false, NpgsqlDbType.Boolean);
            _copy.Write(persistenceId, NpgsqlDbType.Text);
            _copy.Write(sequence, NpgsqlDbType.Bigint);
            _copy.Write(message, NpgsqlDbType.Bytea);
            _copy.Write(manifest, NpgsqlDbType.Text);
            _copy.Write(RomanaSerializer.Id, NpgsqlDbType.Integer);
            _copy.Write(_writer, NpgsqlDbType.Text);
            _copy.Write(Tags, NpgsqlDbType.Text);
        }

        public void Complete()
        {
            _copy.Complete();
            _copy.Dispose();
            using var after = new NpgsqlCommand("""
                SELECT setval(pg_get_serial_sequence('journal', 'ordering'), (SELECT max(ordering) FROM journal));
                ANALYZE journal;
                """, _connection);
            after.ExecuteNonQuery();
        }

        public void Dispose()
        {
            _copy.Dispose();
            _connection.Dispose();
        }
    }

    /// <summary>A database of the benchmark's own on a PostgreSQL server: created fresh, dropped at the end unless kept.</summary>
    private static class PostgreSqlDatabase
    {
        public static async Task<bool> ExistsAsync(string server, string name)
        {
            await using var connection = new NpgsqlConnection(server);
            await connection.OpenAsync();
            await using var exists = new NpgsqlCommand("SELECT count(*) FROM pg_database WHERE datname = $1", connection)
            {
                Parameters = { new NpgsqlParameter { Value = name } },
            };
            return Convert.ToInt64(await exists.ExecuteScalarAsync()) > 0;
        }

        public static async Task<FreshJournal> OpenAsync(string server, string? keep, bool existing)
        {
            var name = keep ?? $"romana_bench_{Guid.NewGuid():N}"[..28];
            if (!System.Text.RegularExpressions.Regex.IsMatch(name, "^[a-z_][a-z0-9_]{0,62}$"))
                throw new ArgumentException($"--journal: {name}: with --postgresql, the name of a database to create " +
                    "(lower-case letters, digits and _)");
            if (!existing)
            {
                await using var connection = new NpgsqlConnection(server);
                await connection.OpenAsync();
                await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
                await create.ExecuteNonQueryAsync();
            }
            var settings = JournalSettings.PostgreSql(new NpgsqlConnectionStringBuilder(server) { Database = name }.ToString());
            return new FreshJournal(settings, async () =>
            {
                if (keep is not null) return;
                NpgsqlConnection.ClearAllPools();
                await using var connection = new NpgsqlConnection(server);
                await connection.OpenAsync();
                await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", connection);
                await drop.ExecuteNonQueryAsync();
            });
        }
    }
}
