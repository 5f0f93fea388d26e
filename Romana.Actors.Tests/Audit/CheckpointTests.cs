using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text.Json;
using Akka.Configuration;
using Microsoft.Data.Sqlite;
using Npgsql;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Persistence;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Audit;
using Romana.Host.Composition;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Audit;

/// <summary>What a replay holds, as JSON a test can compare: the IPAM view, the routing input and the route plan.</summary>
public static class ReplayViews
{
    public static string Of(JournalReplay replay)
    {
        var ipam = replay.Ipam();
        var input = replay.RoutingInput();
        var plan = replay.RoutePlan(input);
        return JsonSerializer.Serialize(new { replay.Applied, Ipam = ipam, Input = input, Plan = plan }, RomanaSerializer.Options);
    }

    /// <summary>The replay's events of every tag, merged in journal order.</summary>
    public static async Task<ImmutableArray<TaggedEvent>> EventsAsync(AuditJournal journal)
    {
        var events = new List<TaggedEvent>();
        foreach (var tag in AuditQueries.ReplayTags)
            await journal.ByTagAfterAsync(tag, 0, e =>
            {
                events.Add(e);
                return true;
            });
        return [.. events.OrderBy(e => e.Ordering)];
    }

    /// <summary>The state of exactly the events up to each tag's offset: what a checkpoint with these offsets must hold.</summary>
    public static JournalReplay Prefix(IEnumerable<TaggedEvent> events, IReadOnlyDictionary<string, long> offsets)
    {
        var replay = new JournalReplay();
        foreach (var e in events.Where(e => e.Ordering <= offsets.GetValueOrDefault(e.Tag))) replay.Apply(e.Event);
        return replay;
    }

    /// <summary>Every stored checkpoint of the current format holds exactly the state of the events up to its offsets.</summary>
    public static async Task<int> CheckEveryCheckpointAsync(AuditStore store, ImmutableArray<TaggedEvent> events)
    {
        var rows = (await CheckpointStore.ListAsync(store, default)).Where(r => r.Format == CheckpointProjection.Format).ToList();
        await using var connection = await store.OpenAsync(default);
        foreach (var row in rows)
        {
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT payload FROM romana_audit_checkpoints WHERE format = @f AND events = @e";
            var format = command.CreateParameter();
            format.ParameterName = "@f";
            format.Value = row.Format;
            var count = command.CreateParameter();
            count.ParameterName = "@e";
            count.Value = row.Events;
            command.Parameters.Add(format);
            command.Parameters.Add(count);
            var stored = JournalReplay.FromCheckpoint(ReplayCheckpoint.Decode((byte[])(await command.ExecuteScalarAsync())!));
            var expected = Prefix(events, row.Offsets);
            Assert.Equal(row.Events, expected.Applied);
            Assert.Equal(Of(expected), Of(stored));
            var applied = events.Where(e => e.Ordering <= row.Offsets.GetValueOrDefault(e.Tag)).ToList();
            Assert.Equal(applied.Max(e => e.Event.At), row.CoversUntil);
        }
        return rows.Count;
    }

    /// <summary>
    /// For each moment, the replay from the newest checkpoint at or before it equals the full replay (views, and the
    /// document `audit replay --json` prints); returns how many moments started from a checkpoint.
    /// </summary>
    public static async Task<int> CheckMomentsAsync(AuditJournal journal, AuditStore store, IEnumerable<DateTimeOffset?> moments)
    {
        var fromCheckpoints = 0;
        foreach (var moment in moments)
        {
            var full = await AuditQueries.ReplayAsync(journal, moment);
            var (replay, source) = await AuditMaintenance.ReplayAsync(journal, store, moment, AuditQueries.DefaultLateWrites, default);
            Assert.True(Of(full) == Of(replay), $"at {moment:O}: {source.Note}");
            Assert.Equal(Romana.Host.Cli.AuditCommands.ReplayDocument(await AuditQueries.ReplayAsync(journal, moment)).ToJson(),
                Romana.Host.Cli.AuditCommands.ReplayDocument(
                    (await AuditMaintenance.ReplayAsync(journal, store, moment, AuditQueries.DefaultLateWrites, default)).Replay).ToJson());
            if (source.Checkpoint is { } used)
            {
                fromCheckpoints++;
                Assert.True(moment is null || used.CoversUntil <= moment);
            }
        }
        return fromCheckpoints;
    }

    /// <summary>Moments around the events' times: before the first, at and just after random events, after the last, the end.</summary>
    public static ImmutableArray<DateTimeOffset?> Moments(ImmutableArray<TaggedEvent> events, int seed, int count)
    {
        var random = new Random(seed);
        var times = events.Select(e => e.Event.At).Order().ToArray();
        var moments = new List<DateTimeOffset?> { times[0].AddSeconds(-1), times[^1].AddSeconds(1), null };
        for (var i = 0; i < count; i++)
        {
            var at = times[random.Next(times.Length)];
            moments.Add(random.Next(3) switch { 0 => at, 1 => at.AddTicks(1), _ => at.AddTicks(-1) });
        }
        return [.. moments];
    }
}

/// <summary>Checkpoints of a simulation's journal: the state as data and back, and replays from checkpoints (SQLite).</summary>
public class CheckpointTests(AuditFixture simulation) : IClassFixture<AuditFixture>, IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _folder.Dispose();
    }

    /// <summary>A copy of the simulation's journal (its committed state, through SQLite's backup), with no audit store.</summary>
    private JournalSettings CopyJournal()
    {
        var path = Path.Combine(_folder.Path, "journal.db");
        using (var source = new SqliteConnection(PersistenceHosting.ReadOnlyConnectionString(simulation.Settings)))
        using (var target = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString()))
        {
            source.Open();
            target.Open();
            source.BackupDatabase(target);
        }
        return JournalSettings.Sqlite(path);
    }

    private static AuditSettings EveryEvents(int events) => AuditSettings.From(ConfigurationFactory.ParseString(
        $"romana.audit.checkpoints.every-events = {events}\nromana.audit.projections.batch-events = {events}"));

    private static string Hash(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    [Fact]
    public async Task State_to_checkpoint_to_state_is_the_same_replay_for_random_prefixes_and_goes_on_the_same()
    {
        await using var romana = await RomanaHost.StartAuditAsync(simulation.Settings);
        var events = await ReplayViews.EventsAsync(romana.Audit);
        Assert.True(events.Length > 50, $"{events.Length} events");
        var random = new Random(16);
        foreach (var length in new[] { 0, 1, 2, events.Length }.Concat(Enumerable.Range(0, 12).Select(_ => random.Next(events.Length))))
        {
            var original = new JournalReplay();
            foreach (var e in events.Take(length)) original.Apply(e.Event);
            var checkpoint = original.ToCheckpoint();
            var decoded = ReplayCheckpoint.Decode(checkpoint.Encode());
            Assert.Equal(JsonSerializer.Serialize(checkpoint, RomanaSerializer.Options),
                JsonSerializer.Serialize(decoded, RomanaSerializer.Options));
            Assert.Equal(ReplayViews.Of(ReplayViews.Prefix(events.Take(length), Offsets(events.Take(length)))),
                ReplayViews.Of(JournalReplay.FromCheckpoint(decoded)));
            // The rest of the journal applied to both: the same end.
            var restored = JournalReplay.FromCheckpoint(decoded);
            foreach (var e in events.Skip(length))
            {
                original.Apply(e.Event);
                restored.Apply(e.Event);
            }
            Assert.Equal(ReplayViews.Of(original), ReplayViews.Of(restored));
        }
    }

    private static ImmutableDictionary<string, long> Offsets(IEnumerable<TaggedEvent> events) =>
        events.GroupBy(e => e.Tag).ToImmutableDictionary(g => g.Key, g => g.Max(e => e.Ordering));

    [Fact]
    public async Task A_replay_from_a_checkpoint_equals_the_full_replay_at_random_moments()
    {
        var journal = CopyJournal();
        var runs = await AuditMaintenance.CatchUpAsync(journal, EveryEvents(7), reset: true, null, default);
        var run = Assert.Single(runs, r => r.Projection == "checkpoints"); // the address index runs too
        Assert.True(run.Checkpoints > 5, $"{run.Checkpoints} checkpoints");
        var store = AuditStore.For(journal, readOnly: true)!;
        await using var romana = await RomanaHost.StartAuditAsync(journal);
        var events = await ReplayViews.EventsAsync(romana.Audit);
        Assert.Equal(events.Length, run.Events);
        Assert.Equal(run.Checkpoints, await ReplayViews.CheckEveryCheckpointAsync(store, events));
        var moments = ReplayViews.Moments(events, seed: 24, count: 14);
        Assert.True(await ReplayViews.CheckMomentsAsync(romana.Audit, store, moments) >= moments.Length / 2);
        // At the end, the newest checkpoint covers everything: nothing is read after it.
        var (_, end) = await AuditMaintenance.ReplayAsync(romana.Audit, store, null, AuditQueries.DefaultLateWrites, default);
        Assert.Equal(0, end.TailRead);
        Assert.Equal(events.Length, end.Checkpoint!.Events);
    }

    [Fact]
    public async Task A_checkpoint_of_another_format_is_ignored_and_the_answer_is_still_right()
    {
        var journal = CopyJournal();
        await AuditMaintenance.CatchUpAsync(journal, EveryEvents(10), reset: true, null, default);
        var writable = AuditStore.For(journal, readOnly: false)!;
        await using var romana = await RomanaHost.StartAuditAsync(journal);
        var events = await ReplayViews.EventsAsync(romana.Audit);
        // By hand, as an older or newer build would have written them: the empty state claiming every event, covering from
        // before the first event, so any moment would pick it if its format were trusted.
        var wrong = new JournalReplay().ToCheckpoint().Encode();
        var offsets = Offsets(events);
        foreach (var format in new[] { 0, CheckpointProjection.Format + 1 })
            await CheckpointStore.WriteAsync(writable, "someone-else", new CheckpointRow(format, 1_000_000, offsets,
                events[0].Event.At.AddSeconds(-10), DateTimeOffset.UtcNow, wrong.Length), wrong, default);
        var store = AuditStore.For(journal, readOnly: true)!;
        var moments = ReplayViews.Moments(events, seed: 7, count: 5);
        await ReplayViews.CheckMomentsAsync(romana.Audit, store, moments);
        var (_, source) = await AuditMaintenance.ReplayAsync(romana.Audit, store, moments[0], AuditQueries.DefaultLateWrites, default);
        Assert.Contains("2 checkpoints of another format than 1 ignored", source.Note);
        // The projection goes on from its own format's newest checkpoint, not from the other's offsets.
        var projection = new CheckpointProjection(writable, EveryEvents(10).Checkpoints);
        var newest = await CheckpointStore.NewestAsync(writable, CheckpointProjection.Format, null, default);
        Assert.Equal(newest!.Value.Row.Offsets.OrderBy(o => o.Key), (await projection.OffsetsAsync(default)).OrderBy(o => o.Key));
    }

    [Fact]
    public async Task Audit_commands_change_no_byte_of_the_journal_and_create_no_audit_store_and_rebuild_writes_only_the_store()
    {
        var journal = CopyJournal();
        var hash = Hash(journal.SqlitePath);
        string[] Replay(params string[] more) => ["audit", "replay", "--journal", journal.SqlitePath, "--json", .. more];
        var (exit, output, error) = await Romana(Replay());
        Assert.True(exit == 0, error);
        Assert.Contains("no audit store beside the journal; replayed the journal from its start", error);
        Assert.False(File.Exists(journal.SqliteAuditPath));
        Assert.Equal(hash, Hash(journal.SqlitePath));

        (exit, var rebuilt, error) = await Romana(["audit", "rebuild", "--journal", journal.SqlitePath, "--json"]);
        Assert.True(exit == 0, error);
        var summary = JsonDocument.Parse(rebuilt).RootElement.GetProperty("projections")[0];
        Assert.Equal("checkpoints", summary.GetProperty("projection").GetString());
        Assert.True(summary.GetProperty("checkpoints").GetInt32() >= 1);
        Assert.Equal(hash, Hash(journal.SqlitePath));
        Assert.True(File.Exists(journal.SqliteAuditPath));
        SqliteConnection.ClearAllPools();
        var storeHash = Hash(journal.SqliteAuditPath);

        (exit, var fromCheckpoint, error) = await Romana(Replay());
        Assert.True(exit == 0, error);
        Assert.Contains("from the checkpoint of", error);
        Assert.Equal(output, fromCheckpoint);
        Assert.Equal(hash, Hash(journal.SqlitePath));
        Assert.Equal(storeHash, Hash(journal.SqliteAuditPath));
    }

    private static Task<(int Exit, string Output, string Error)> Romana(string[] arguments) =>
        Processes.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), .. arguments], Paths.RepositoryRoot);
}

/// <summary>
/// The live runner on a journal an IPAM writes to while it runs: it catches up what is written after it started, its
/// checkpoints are right, a transaction that fails after the checkpoint's insert leaves the previous one, and a rebuild
/// makes the same state.
/// </summary>
public abstract class LiveCheckpointTests
{
    protected static readonly Config Quiet = ConfigurationFactory.ParseString("akka.loglevel = WARNING");

    /// <summary>Small batches and a checkpoint after every batch of at least 5 events, every batch when idle.</summary>
    protected static readonly AuditSettings Settings = new(TimeSpan.FromMinutes(1),
        new ProjectionSettings(true, 20, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(400)),
        new CheckpointSettings(5, TimeSpan.Zero));

    protected static Task<RomanaHost> StartAsync(JournalSettings journal) => RomanaHost.StartAsync(Quiet, akka => akka
        .AddRomanaPersistence(journal).AddRomanaIpam(Topologies.TwoZones()).AddRomanaProjections(journal, Settings), name: "live");

    /// <summary>Nodes join, pods come and go, a little time apart so that events have different times.</summary>
    protected static async Task ChurnAsync(RomanaHost host, int from, int count)
    {
        if (from == 0)
        {
            Assert.IsType<Succeeded>(await host.Ipam.AskAsync(new AddNode(new("a"), new("s1"), "10.1.0.1")));
            Assert.IsType<Succeeded>(await host.Ipam.AskAsync(new AddNode(new("b"), new("s3"), "10.1.0.2")));
        }
        for (var i = from; i < from + count; i++)
        {
            Assert.IsType<AddressAssigned>(await host.Ipam.AskAsync(new Allocate(new(i % 2 == 0 ? "a" : "b"), new($"k{i}"))));
            if (i % 3 == 2) Assert.IsType<Succeeded>(await host.Ipam.AskAsync(new Release(new($"k{i - 1}"), null)));
            if (i % 4 == 0) await Task.Delay(15);
        }
    }

    /// <summary>Waits until the newest checkpoint covers every event of the journal now; returns those events.</summary>
    protected static async Task<ImmutableArray<TaggedEvent>> CaughtUpAsync(AuditJournal journal, AuditStore store)
    {
        var events = await ReplayViews.EventsAsync(journal);
        var last = events.GroupBy(e => e.Tag).ToDictionary(g => g.Key, g => g.Max(e => e.Ordering));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            (CheckpointRow Row, byte[] Payload)? newest = null;
            try
            {
                newest = await CheckpointStore.NewestAsync(store, CheckpointProjection.Format, null, default);
            }
            catch (System.Data.Common.DbException)
            {
                // the runner has not made its table yet
            }
            if (newest is { } found && last.All(l => found.Row.Offsets.GetValueOrDefault(l.Key) == l.Value)) return events;
            Assert.True(DateTime.UtcNow < deadline,
                $"the runner did not catch up: newest {newest?.Row}, journal {string.Join(", ", last)}");
            await Task.Delay(100);
        }
    }

    protected static async Task<string> NewestViewsAsync(AuditStore store)
    {
        var newest = await CheckpointStore.NewestAsync(store, CheckpointProjection.Format, null, default);
        return ReplayViews.Of(JournalReplay.FromCheckpoint(ReplayCheckpoint.Decode(newest!.Value.Payload)));
    }

    /// <summary>Live events, checkpoints checked, then a rebuild from nothing (the store reset) gives the same newest state.</summary>
    protected static async Task CatchesUpLiveAndRebuildMakesTheSameAsync(JournalSettings journal)
    {
        var store = AuditStore.For(journal, readOnly: false)!;
        string live;
        ImmutableArray<TaggedEvent> events;
        await using (var host = await StartAsync(journal))
        {
            await ChurnAsync(host, 0, 30);
            await CaughtUpAsync(host.Audit, store);
            // Written after the runner started and caught up once: it goes on with them.
            await ChurnAsync(host, 30, 30);
            events = await CaughtUpAsync(host.Audit, store);
            Assert.True(await ReplayViews.CheckEveryCheckpointAsync(store, events) > 3);
            await ReplayViews.CheckMomentsAsync(host.Audit, store, ReplayViews.Moments(events, seed: 3, count: 10));
            live = await NewestViewsAsync(store);
        }
        var runs = await AuditMaintenance.CatchUpAsync(journal, Settings, reset: true, null, default);
        Assert.Equal(events.Length, Assert.Single(runs, r => r.Projection == "checkpoints").Events);
        Assert.Equal(live, await NewestViewsAsync(store));
        await ReplayViews.CheckEveryCheckpointAsync(store, events);
    }
}

public class SqliteLiveCheckpointTests : LiveCheckpointTests, IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _folder.Dispose();
    }

    private JournalSettings Journal => JournalSettings.Sqlite(Path.Combine(_folder.Path, "journal.db"));

    [Fact]
    public Task The_runner_catches_up_live_events_and_a_rebuild_makes_the_same_newest_checkpoint() =>
        CatchesUpLiveAndRebuildMakesTheSameAsync(Journal);

    [Fact]
    public async Task A_transaction_that_fails_after_the_checkpoint_insert_leaves_the_previous_one_and_the_runner_resumes()
    {
        var journal = Journal;
        var store = AuditStore.For(journal, readOnly: false)!;
        await using var host = await StartAsync(journal);
        await ChurnAsync(host, 0, 20);
        await CaughtUpAsync(host.Audit, store);
        var before = (await CheckpointStore.NewestAsync(store, CheckpointProjection.Format, null, default))!.Value.Row;
        // The offsets are written after the checkpoint, in the same transaction: a trigger that refuses them makes the
        // transaction fail after the checkpoint's row went in.
        await ExecuteAsync(store, """
            CREATE TRIGGER refuse_insert BEFORE INSERT ON romana_audit_offsets BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;
            CREATE TRIGGER refuse_update BEFORE UPDATE ON romana_audit_offsets BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;
            """);
        await ChurnAsync(host, 20, 20);
        await Task.Delay(1500); // several batches tried and refused, the runner restarting with its backoff
        var during = (await CheckpointStore.NewestAsync(store, CheckpointProjection.Format, null, default))!.Value.Row;
        Assert.Equal(before.Events, during.Events);
        var events = await ReplayViews.EventsAsync(host.Audit);
        await ReplayViews.CheckEveryCheckpointAsync(store, events);
        await ReplayViews.CheckMomentsAsync(host.Audit, store, [null, events[^1].Event.At]);

        await ExecuteAsync(store, "DROP TRIGGER refuse_insert; DROP TRIGGER refuse_update;");
        events = await CaughtUpAsync(host.Audit, store);
        await ReplayViews.CheckEveryCheckpointAsync(store, events);
        // Concurrent writers are harmless: a rebuild while the daemon's runner writes leaves only right checkpoints.
        var rebuild = AuditMaintenance.CatchUpAsync(journal, Settings, reset: true, null, default);
        await ChurnAsync(host, 40, 20);
        await rebuild;
        events = await CaughtUpAsync(host.Audit, store);
        await ReplayViews.CheckEveryCheckpointAsync(store, events);
        await ReplayViews.CheckMomentsAsync(host.Audit, store, ReplayViews.Moments(events, seed: 5, count: 8));
    }

    private static async Task ExecuteAsync(AuditStore store, string sql)
    {
        await using var connection = await store.OpenAsync(default);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}

[Collection(PostgreSqlCollection.Name)]
public class PostgreSqlLiveCheckpointTests(PostgreSqlServer server) : LiveCheckpointTests
{
    [SkippableFact]
    public async Task The_runner_catches_up_live_events_and_a_rebuild_makes_the_same_newest_checkpoint_on_postgresql()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        await using var journal = await server.CreateJournalAsync();
        await CatchesUpLiveAndRebuildMakesTheSameAsync(journal.Settings);
        // The checkpoints are tables of the journal's database.
        await using var connection = new NpgsqlConnection(journal.Settings.PostgreSqlConnectionString);
        await connection.OpenAsync();
        await using var count = new NpgsqlCommand("SELECT count(*) FROM romana_audit_checkpoints", connection);
        Assert.True((long)(await count.ExecuteScalarAsync())! > 3);
    }
}
