using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Audit;
using Romana.Host.Composition;
using Romana.Host.Persistence;
using Romana.Host.Simulation;
using static Romana.Actors.Ipam.NodeMessages;

namespace Romana.Actors.Tests.Audit;

/// <summary>
/// An audit store left beside a journal it was not made from (a journal replaced by hand: another cluster's, or an older
/// copy restored) is never trusted: the questions answer from the journal and say why, and a catch-up makes the store
/// again. The journal is the simulation's (<see cref="AuditFixture"/>); its store is made as the daemon's runner makes it.
/// </summary>
public class JournalMarksTests(AuditFixture simulation) : IClassFixture<AuditFixture>, IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _folder.Dispose();
    }

    /// <summary>A copy of <paramref name="source"/>'s SQLite file (its committed state) at <paramref name="path"/>.</summary>
    private static void Copy(string source, string path)
    {
        using var from = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = source, Pooling = false }.ToString());
        using var to = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        from.Open();
        to.Open();
        from.BackupDatabase(to);
    }

    private JournalSettings CopyOfTheSimulation(string name)
    {
        var path = Path.Combine(Directory.CreateDirectory(Path.Combine(_folder.Path, name)).FullName, "journal.db");
        Copy(simulation.Settings.SqlitePath, path);
        return JournalSettings.Sqlite(path);
    }

    private static void Execute(string database, string sql)
    {
        using var connection = new SqliteConnection(
            new SqliteConnectionStringBuilder { DataSource = database, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>Every address the journal handed out: what the address question is asked about.</summary>
    private static async Task<List<Ipv4>> AddressesAsync(AuditJournal journal)
    {
        var addresses = new SortedSet<Ipv4>();
        await journal.ByTagAsync(EventTags.Ipam, e =>
        {
            if (e is AddressesAllocated allocated) addresses.UnionWith(allocated.Addresses.Select(a => a.Address));
            return true;
        });
        return [.. addresses];
    }

    /// <summary>Both questions fall back to the journal, <paramref name="why"/> in their notes, and answer as the journal does.</summary>
    private static async Task AssertNotTrustedAsync(JournalSettings settings, string why)
    {
        await using var romana = await RomanaHost.StartAuditAsync(settings);
        var address = (await AddressesAsync(romana.Audit))[0];
        var indexed = await IndexedAudit.AddressAsync(settings, romana.Audit, address, 10_000, default);
        Assert.Null(indexed.Value);
        Assert.Contains(why, indexed.Note);
        Assert.Contains("`romana audit rebuild` makes it again", indexed.Note);

        var store = AuditStore.For(settings, readOnly: true)!;
        var (replay, source) = await AuditMaintenance.ReplayAsync(romana.Audit, store, null, AuditQueries.DefaultLateWrites, default);
        Assert.Null(source.Checkpoint);
        Assert.Contains(why, source.Note);
        Assert.Contains("its checkpoints are not used", source.Note);
        Assert.Equal(ReplayViews.Of(await AuditQueries.ReplayAsync(romana.Audit, null)), ReplayViews.Of(replay));
    }

    /// <summary>A catch-up (as the runner starts, or `simulate` ends) says why and makes both projections again, which answer.</summary>
    private static async Task AssertMadeAgainAsync(JournalSettings settings, string why)
    {
        var lines = new List<string>();
        var runs = await AuditMaintenance.CatchUpAsync(settings, AuditSettings.From(Akka.Configuration.Config.Empty), reset: false,
            null, default, lines.Add);
        Assert.Equal(2, lines.Count(line => line.Contains(why) && line.EndsWith("it is made again from the journal's start")));
        await using var romana = await RomanaHost.StartAuditAsync(settings);
        var events = await ReplayViews.EventsAsync(romana.Audit);
        Assert.Equal(events.Length, Assert.Single(runs, r => r.Projection == CheckpointProjection.ProjectionName).Events);
        await IndexChecks.AssertSameAnswersAsync(settings, romana.Audit);
        var store = AuditStore.For(settings, readOnly: true)!;
        var (_, source) = await AuditMaintenance.ReplayAsync(romana.Audit, store, null, AuditQueries.DefaultLateWrites, default);
        Assert.NotNull(source.Checkpoint);
        await ReplayViews.CheckMomentsAsync(romana.Audit, store, ReplayViews.Moments(events, seed: 5, count: 4));
    }

    [Fact]
    public async Task A_store_beside_another_clusters_journal_is_not_trusted_and_is_made_again()
    {
        // Another cluster, simulated briefly: its journal is shorter, so where its store's mark points the simulation's
        // journal has an event of its own.
        var cluster = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "one-subnet.json")))!;
        var other = Path.Combine(Directory.CreateDirectory(Path.Combine(_folder.Path, "other")).FullName, "journal.db");
        var scenario = ScenarioReader.Parse(new JsonObject { ["cluster"] = cluster, ["events"] = new JsonArray(), ["until"] = "2s" });
        await SimulationRun.RunAsync(scenario, new SimulationOptions(other));
        SqliteConnection.ClearAllPools();

        var journal = CopyOfTheSimulation("replaced");
        Copy(JournalSettings.Sqlite(other).SqliteAuditPath, journal.SqliteAuditPath);
        await AssertNotTrustedAsync(journal, "was made from another journal: it read ");
        await AssertMadeAgainAsync(journal, "was made from another journal");
    }

    [Fact]
    public async Task A_store_beside_an_older_copy_of_its_journal_is_not_trusted_and_is_made_again()
    {
        var journal = CopyOfTheSimulation("restored");
        await AuditMaintenance.CatchUpAsync(journal, AuditSettings.From(Akka.Configuration.Config.Empty), reset: true, null, default);
        SqliteConnection.ClearAllPools();
        // An older copy of an append-only journal is a prefix of it: the events after some ordering are not there yet.
        Execute(journal.SqlitePath, "DELETE FROM journal WHERE ordering > (SELECT max(ordering) / 2 FROM journal)");
        await AssertNotTrustedAsync(journal, "this journal has no event at ordering");
        await AssertMadeAgainAsync(journal, "this journal has no event at ordering");
    }

    [Fact]
    public async Task A_store_that_does_not_say_which_journal_it_was_made_from_is_not_trusted()
    {
        var journal = CopyOfTheSimulation("unmarked");
        await AuditMaintenance.CatchUpAsync(journal, AuditSettings.From(Akka.Configuration.Config.Empty), reset: true, null, default);
        SqliteConnection.ClearAllPools();
        Execute(journal.SqliteAuditPath, "DROP TABLE romana_audit_marks");
        await AssertNotTrustedAsync(journal, "does not say which journal it was made from");
        await AssertMadeAgainAsync(journal, "does not say which journal it was made from");
    }

    [Fact]
    public async Task A_store_beside_its_own_journal_grown_since_is_trusted_and_goes_on()
    {
        // The journal's first half, projected; then the rest written after it (the whole simulation): the store is behind,
        // not stale, and a catch-up goes on from it without starting again.
        var journal = CopyOfTheSimulation("grown");
        var whole = Path.Combine(_folder.Path, "whole.db");
        Copy(journal.SqlitePath, whole);
        Execute(journal.SqlitePath, "DELETE FROM journal WHERE ordering > (SELECT max(ordering) / 2 FROM journal)");
        await AuditMaintenance.CatchUpAsync(journal, AuditSettings.From(Akka.Configuration.Config.Empty), reset: true, null, default);
        SqliteConnection.ClearAllPools();
        Copy(whole, journal.SqlitePath);
        var lines = new List<string>();
        var runs = await AuditMaintenance.CatchUpAsync(journal, AuditSettings.From(Akka.Configuration.Config.Empty), reset: false, null,
            default, lines.Add);
        Assert.Empty(lines);
        await using var romana = await RomanaHost.StartAuditAsync(journal);
        var events = await ReplayViews.EventsAsync(romana.Audit);
        var caughtUp = Assert.Single(runs, r => r.Projection == CheckpointProjection.ProjectionName).Events;
        Assert.InRange(caughtUp, 1, events.Length / 2 + 1);
        await IndexChecks.AssertSameAnswersAsync(journal, romana.Audit);
    }
}
