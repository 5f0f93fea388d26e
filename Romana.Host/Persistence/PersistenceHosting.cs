using System.Text;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Persistence.Hosting;
using Akka.Persistence.Sql;
using Microsoft.Data.Sqlite;
using Romana.Actors.Audit;
using Romana.Actors.Persistence;
using Romana.Host.Audit;

namespace Romana.Host.Persistence;

/// <summary>
/// Akka.Persistence.Sql as typed options on Akka.Persistence.Hosting (its own Sql.Hosting package is served only at an
/// older patch level): the journal, the snapshot store and the read journal for the chosen database, with Romana's
/// serializer, its one tagging write adapter and the read adapter that upgrades older event shapes.
/// </summary>
public static class PersistenceHosting
{
    /// <summary>The read journal that audits query (Akka.Persistence.Query).</summary>
    public const string ReadJournalId = "akka.persistence.query.journal.sql";

    /// <summary>
    /// The journal and snapshot store of Romana's events, on the database <paramref name="settings"/> names. With
    /// <paramref name="readOnly"/> (audits) nothing is created or changed: no folder, no file, no schema, no switch to
    /// write-ahead logging; SQLite files are opened with Mode=ReadOnly and PostgreSQL sessions are read-only.
    /// </summary>
    public static AkkaConfigurationBuilder AddRomanaPersistence(this AkkaConfigurationBuilder builder, JournalSettings settings,
        bool readOnly = false)
    {
        builder.WithCustomSerializer("romana", [typeof(IRomanaEvent), typeof(IRomanaSnapshot), typeof(IUpgradable), typeof(IRomanaMessage)],
            system => new RomanaSerializer(system));
        if (settings.Journal == JournalKind.Memory)
        {
            if (readOnly) throw new ArgumentException("a journal in memory holds nothing to read", nameof(settings));
            // Untagged: Akka's memory journal keeps the tagging adapter's Tagged wrapper as the payload and replays it wrapped,
            // so an actor that recovered would see none of its events (the SQL journals keep tags in a column of their own).
            // Nothing reads a journal in memory by tag.
            return builder.WithInMemoryJournal(Upgrades).WithInMemorySnapshotStore();
        }
        var database = readOnly ? SqlDatabase.ReadOnly(settings) : SqlDatabase.For(settings);
        return builder
            .WithJournalAndSnapshot(new RomanaSqlJournalOptions(database), new RomanaSqlSnapshotOptions(database), Adapters, _ => { })
            .AddHocon(SqlPersistence.DefaultConfiguration, HoconAddMode.Append);
    }

    /// <summary>The one tagging write adapter and the read adapter that upgrades older event shapes.</summary>
    private static void Adapters(AkkaPersistenceJournalBuilder journal) =>
        Upgrades(journal.AddWriteEventAdapter<EventTagger>("tagger", [typeof(IRomanaEvent)]));

    private static void Upgrades(AkkaPersistenceJournalBuilder journal) =>
        journal.AddReadEventAdapter<EventUpgrader>("upgrader", [typeof(IUpgradable)]);

    /// <summary>
    /// The read journal, read-only, tuned for audits that read whole aggregates and whole tags. With
    /// <paramref name="oneShot"/> (a question: what is in the journal now, read once) the sequence actor behind every read
    /// by tag or of all events takes the table's highest ordering after 0.1 s instead of counting every ordering from 0 in
    /// batches of 10,000 first (seconds on a million events, before the first read) or waiting 10 s to take it; and an
    /// ordering missing for 0.1 s is a gap, not a write in flight. Long-running readers (the projection runner, rebuilds)
    /// keep the defaults, which wait 10 s for a write committed out of order (PostgreSQL with parallel writers).
    /// </summary>
    public static AkkaConfigurationBuilder AddRomanaAudit(this AkkaConfigurationBuilder builder, JournalSettings settings,
        bool oneShot = false)
    {
        var database = SqlDatabase.ReadOnly(settings);
        var quick = oneShot
            ? """
              journal-sequence-retrieval { query-delay = 50ms, max-tries = 2, batch-size = 100000 }
              refresh-interval = 50ms
              """
            : "";
        return builder.AddHocon(ConfigurationFactory.ParseString($$"""
            {{ReadJournalId}} {
              connection-string = {{Hocon.Quote(database.JournalConnection)}}
              provider-name = {{Hocon.Quote(database.Provider)}}
              tag-read-mode = Csv
              # Audits read whole aggregates: large pages.
              max-buffer-size = 5000
              # The read journal asks its actor for the highest ordering it may read up to; on a busy machine that answer
              # takes longer than the 1 s default, and the audit failed with an AskTimeoutException though nothing was wrong.
              journal-sequence-retrieval.ask-timeout = 30s
              {{quick}}
            }
            """), HoconAddMode.Prepend);
    }

    /// <summary>The journal's last ordering (0: empty), read with plain SQL on a read-only connection: one index lookup.</summary>
    public static async Task<long> LastOrderingAsync(JournalSettings settings, CancellationToken cancel)
    {
        await using var connection = await OpenReadOnlyAsync(settings, cancel);
        await using var query = connection.CreateCommand();
        query.CommandText = "SELECT coalesce(max(ordering), 0) FROM journal";
        return Convert.ToInt64(await query.ExecuteScalarAsync(cancel), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Who wrote the event at exactly <paramref name="ordering"/>: one seek on the primary key with plain SQL (a read through
    /// the query plugin first waits for its sequence actor, 0.1 s at best); null when the journal has no event there.
    /// </summary>
    public static async Task<JournalPosition?> EventAtAsync(JournalSettings settings, long ordering, CancellationToken cancel)
    {
        await using var connection = await OpenReadOnlyAsync(settings, cancel);
        await using var query = connection.CreateCommand();
        query.CommandText = "SELECT persistence_id, sequence_number FROM journal WHERE ordering = @ordering";
        var parameter = query.CreateParameter();
        parameter.ParameterName = "@ordering";
        parameter.Value = ordering;
        query.Parameters.Add(parameter);
        await using var reader = await query.ExecuteReaderAsync(cancel);
        return await reader.ReadAsync(cancel) ? new JournalPosition(ordering, reader.GetString(0), reader.GetInt64(1)) : null;
    }

    private static async Task<System.Data.Common.DbConnection> OpenReadOnlyAsync(JournalSettings settings, CancellationToken cancel)
    {
        var readOnly = ReadOnlyConnectionString(settings);
        System.Data.Common.DbConnection connection = settings.Journal == JournalKind.PostgreSql
            ? new Npgsql.NpgsqlConnection(readOnly)
            : new SqliteConnection(readOnly);
        await connection.OpenAsync(cancel);
        return connection;
    }

    /// <summary>A connection string that can read the journal and change nothing in it.</summary>
    public static string ReadOnlyConnectionString(JournalSettings settings) => SqlDatabase.ReadOnly(settings).JournalConnection;

    /// <summary>Where the journal and the snapshots go, and through which linq2db provider.</summary>
    internal sealed record SqlDatabase(string Provider, string JournalConnection, string SnapshotConnection, int Parallelism,
        bool CreatesSchema = true)
    {
        /// <summary>
        /// How reads (a recovery's highest sequence number, its events, its snapshot) begin their transaction. On SQLite
        /// "unspecified" becomes BEGIN IMMEDIATE (Microsoft.Data.Sqlite), which takes the file's write lock for a read: a
        /// recovery then waits for the journal's writes, and one that finds the lock taken sleeps 150 ms before it tries
        /// again. Read-uncommitted begins a deferred transaction instead (BEGIN): in write-ahead logging a reader sees the
        /// last committed state and never blocks the writer (the pragma read_uncommitted only matters in shared-cache mode,
        /// which Romana does not use). PostgreSQL keeps its default, read committed.
        /// </summary>
        public string ReadIsolation => Provider == "SQLite.MS" ? "read-uncommitted" : "unspecified";

        /// <summary>
        /// The same database for reading only: SQLite files with Mode=ReadOnly (a missing file is an error, not a new
        /// file) and PostgreSQL sessions whose transactions are read-only, and no schema created.
        /// </summary>
        public static SqlDatabase ReadOnly(JournalSettings settings) => settings.Journal switch
        {
            JournalKind.Sqlite => new("SQLite.MS", ReadOnlySqlite(settings.SqlitePath), ReadOnlySqlite(settings.SqliteSnapshotPath), 1,
                CreatesSchema: false),
            _ => new("PostgreSQL.15", ReadOnlyPostgreSql(settings.PostgreSqlConnectionString),
                ReadOnlyPostgreSql(settings.PostgreSqlConnectionString), 3, CreatesSchema: false),
        };

        public static string ReadOnlySqlite(string path) =>
            new SqliteConnectionStringBuilder { DataSource = Path.GetFullPath(path), Mode = SqliteOpenMode.ReadOnly }.ToString();

        public static string ReadOnlyPostgreSql(string connectionString)
        {
            var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
            builder.Options = $"{builder.Options} -c default_transaction_read_only=on".Trim();
            return builder.ToString();
        }

        public static SqlDatabase For(JournalSettings settings) => settings.Journal switch
        {
            // SQLite has one writer per file: the journal writes with parallelism 1, and snapshots live in a file of their
            // own, because a writer that finds the file locked backs off for 150 ms (Microsoft.Data.Sqlite).
            JournalKind.Sqlite => new("SQLite.MS", PrepareSqlite(settings, settings.SqlitePath, "the journal"),
                PrepareSqlite(settings, settings.SqliteSnapshotPath, "the snapshot file beside the journal"), 1),
            _ => new("PostgreSQL.15", settings.PostgreSqlConnectionString, settings.PostgreSqlConnectionString, 3),
        };

        /// <summary>
        /// Creates the file's folder and switches it to write-ahead logging (readers never block the writer); a file that
        /// cannot be opened or written is an error naming the setting and the path (SQLite's own message names neither).
        /// </summary>
        public static string PrepareSqlite(JournalSettings settings, string path, string what)
        {
            var full = Path.GetFullPath(path);
            var folder = Path.GetDirectoryName(full)!;
            try
            {
                Directory.CreateDirectory(folder);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new JournalUnavailableException(
                    $"{settings.SqlitePathSetting}: cannot create the folder {folder} of {what} {full}: {e.Message}", e);
            }
            var connectionString = new SqliteConnectionStringBuilder { DataSource = full }.ToString();
            try
            {
                using var connection = new SqliteConnection(connectionString);
                connection.Open();
                using var pragma = connection.CreateCommand();
                pragma.CommandText = "PRAGMA journal_mode=WAL;";
                pragma.ExecuteNonQuery();
            }
            catch (SqliteException e)
            {
                var why = Directory.Exists(full) ? " (it is a directory)" : "";
                throw new JournalUnavailableException($"{settings.SqlitePathSetting}: cannot open {what} {full} for writing{why}: " +
                    e.Message, e);
            }
            return connectionString;
        }
    }

    private sealed class RomanaSqlJournalOptions(SqlDatabase database) : JournalOptions(true)
    {
        public override string Identifier { get; set; } = "sql";

        protected override Config InternalDefaultConfig => SqlPersistence.DefaultConfiguration.GetConfig("akka.persistence.journal.sql");

        protected override StringBuilder Build(StringBuilder sb)
        {
            sb.AppendLine($"connection-string = {Hocon.Quote(database.JournalConnection)}");
            sb.AppendLine($"provider-name = {Hocon.Quote(database.Provider)}");
            sb.AppendLine($"parallelism = {database.Parallelism}");
            sb.AppendLine($"read-isolation-level = {database.ReadIsolation}");
            // Tags live in the journal row (";routes;"), not in the tag table: a row is written in one insert, a read by
            // persistence id needs no join, and a read by tag is one pass along the ordering column. (The tag table's
            // reads gather each row's tags with a subquery over the whole tag table on SQLite.)
            sb.AppendLine("tag-write-mode = Csv");
            AutoInitialize = database.CreatesSchema;
            return base.Build(sb);
        }
    }

    private sealed class RomanaSqlSnapshotOptions(SqlDatabase database) : SnapshotOptions(true)
    {
        public override string Identifier { get; set; } = "sql";

        protected override Config InternalDefaultConfig =>
            SqlPersistence.DefaultConfiguration.GetConfig("akka.persistence.snapshot-store.sql");

        protected override StringBuilder Build(StringBuilder sb)
        {
            sb.AppendLine($"connection-string = {Hocon.Quote(database.SnapshotConnection)}");
            sb.AppendLine($"provider-name = {Hocon.Quote(database.Provider)}");
            sb.AppendLine($"read-isolation-level = {database.ReadIsolation}");
            AutoInitialize = database.CreatesSchema;
            return base.Build(sb);
        }
    }
}

/// <summary>HOCON text values, quoted and escaped (a connection string may hold '=' ';' '"' or '\').</summary>
public static class Hocon
{
    public static string Quote(string text) => "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
