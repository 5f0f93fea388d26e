using System.Security.Cryptography;
using Akka.Configuration;
using Microsoft.Data.Sqlite;
using Npgsql;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Composition;

namespace Romana.Actors.Tests.Audit;

/// <summary>
/// `romana audit` opens a journal read-only: whatever the file is, it leaves it as it found it (no schema, no snapshot
/// file, no switch to write-ahead logging) and says what the file is when it is not a Romana journal.
/// </summary>
public class AuditOpeningTests
{
    private static Task<(int Exit, string Output, string Error)> AuditAsync(string journal) =>
        Processes.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), "audit", "routes", "--journal", journal],
            Paths.RepositoryRoot);

    private static string Hash(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    private static string[] Files(TempFolder folder) => [.. Directory.GetFiles(folder.Path).Select(Path.GetFileName).Order()!];

    [Fact]
    public async Task An_empty_file_is_named_as_such_and_left_empty()
    {
        using var folder = new TempFolder();
        var journal = folder.Write("empty.db", "");
        var (exit, _, error) = await AuditAsync(journal);
        Assert.Equal(2, exit);
        Assert.Equal($"romana: {journal}: an empty file, not a Romana journal", error.Trim());
        Assert.Equal(0, new FileInfo(journal).Length);
        Assert.Equal(["empty.db"], Files(folder));
    }

    [Fact]
    public async Task A_file_that_is_not_a_database_is_named_as_such_and_left_as_it_was()
    {
        using var folder = new TempFolder();
        var journal = folder.Write("notes.db", "these are notes, not a database\n");
        var hash = Hash(journal);
        var (exit, _, error) = await AuditAsync(journal);
        Assert.Equal(2, exit);
        Assert.Equal($"romana: {journal}: not a SQLite database", error.Trim());
        Assert.Equal(hash, Hash(journal));
        Assert.Equal(["notes.db"], Files(folder));
    }

    [Fact]
    public async Task A_database_that_is_not_a_journal_is_named_as_such_and_left_as_it_was()
    {
        using var folder = new TempFolder();
        var journal = Path.Combine(folder.Path, "other.db");
        using (var connection = new SqliteConnection($"Data Source={journal};Pooling=False"))
        {
            connection.Open();
            using var create = connection.CreateCommand();
            create.CommandText = "CREATE TABLE things (name TEXT); INSERT INTO things VALUES ('a');";
            create.ExecuteNonQuery();
        }
        var hash = Hash(journal);
        var (exit, _, error) = await AuditAsync(journal);
        Assert.Equal(2, exit);
        Assert.Equal($"romana: {journal}: a SQLite database, but not a Romana journal (it has no journal table)", error.Trim());
        Assert.Equal(hash, Hash(journal));
        Assert.Equal(["other.db"], Files(folder));
    }

    [Fact]
    public async Task A_journal_is_answered_from_and_left_as_it_was_without_a_snapshot_file()
    {
        using var folder = new TempFolder();
        var journal = Path.Combine(folder.Path, "journal.db");
        File.Copy(Path.Combine(Paths.RepositoryRoot, "Romana.Actors.Tests", "Fixtures", "journal-2282ad0", "journal.db"), journal);
        var hash = Hash(journal);
        var (exit, output, error) = await AuditAsync(journal);
        Assert.True(exit == 0, error);
        Assert.Contains("changes", output);
        Assert.Equal(hash, Hash(journal));
        Assert.DoesNotContain("journal.snapshots.db", Files(folder));
    }
}

/// <summary>The same on PostgreSQL: an audit of a database without Romana's tables creates none.</summary>
[Collection(PostgreSqlCollection.Name)]
public class PostgreSqlAuditOpeningTests(PostgreSqlServer server)
{
    [SkippableFact]
    public async Task An_audit_of_an_empty_database_creates_no_schema_and_says_what_it_found()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        await using var journal = await server.CreateJournalAsync();
        var error = await Assert.ThrowsAsync<ConfigurationError>(() => RomanaHost.StartAuditAsync(journal.Settings));
        Assert.EndsWith(": a PostgreSQL database, but not a Romana journal (it has no journal table)", error.Message);
        await using var connection = new NpgsqlConnection(journal.Settings.PostgreSqlConnectionString);
        await connection.OpenAsync();
        await using var tables = new NpgsqlCommand(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')", connection);
        Assert.Equal(0L, await tables.ExecuteScalarAsync());
    }

    [SkippableFact]
    public async Task An_audit_of_a_journal_still_answers()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        await using var journal = await server.CreateJournalAsync();
        var quiet = ConfigurationFactory.ParseString("akka.loglevel = WARNING");
        await (await RomanaHost.StartIpamAsync(Topologies.OneSubnet(), journal.Settings, quiet)).DisposeAsync();
        await using var romana = await RomanaHost.StartAuditAsync(journal.Settings);
        Assert.Contains("zone-z1", await romana.Audit.PersistenceIdsAsync());
    }
}
