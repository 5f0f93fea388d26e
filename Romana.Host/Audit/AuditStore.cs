using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Romana.Host.Persistence;

namespace Romana.Host.Audit;

/// <summary>
/// Where the audit's derived data lives (checkpoints, the address index, the projections' offsets): on SQLite a file
/// beside the journal (<see cref="JournalSettings.SqliteAuditPath"/>), so its writes never take the journal's lock; on
/// PostgreSQL tables named romana_audit_* in the journal's database. Derived data only: deleting it loses nothing.
/// </summary>
public sealed class AuditStore
{
    private readonly string _connectionString;

    private AuditStore(JournalSettings journal, bool isPostgreSql, bool readOnly, string connectionString, string describe)
    {
        Journal = journal;
        IsPostgreSql = isPostgreSql;
        ReadOnly = readOnly;
        _connectionString = connectionString;
        Describe = describe;
    }

    /// <summary>The journal this store is beside: what its data was derived from (<see cref="JournalMarks"/> checks it).</summary>
    public JournalSettings Journal { get; }

    public bool IsPostgreSql { get; }

    /// <summary>Opened for `romana audit`, which changes nothing: not the journal and not this store.</summary>
    public bool ReadOnly { get; }

    public string Describe { get; }

    /// <summary>
    /// The store of this journal. Writable: the SQLite file is created (write-ahead logging) and errors name the setting and
    /// the path. Read-only: null when the SQLite file does not exist, since a read-only open cannot create it.
    /// </summary>
    public static AuditStore? For(JournalSettings settings, bool readOnly) => settings.Journal switch
    {
        JournalKind.Sqlite when readOnly => File.Exists(settings.SqliteAuditPath)
            ? new AuditStore(settings, false, true, PersistenceHosting.SqlDatabase.ReadOnlySqlite(settings.SqliteAuditPath),
                Where(settings))
            : null,
        JournalKind.Sqlite => new AuditStore(settings, false, false,
            PersistenceHosting.SqlDatabase.PrepareSqlite(settings, settings.SqliteAuditPath, "the audit store beside the journal"),
            Where(settings)),
        JournalKind.PostgreSql => new AuditStore(settings, true, readOnly, readOnly
            ? PersistenceHosting.SqlDatabase.ReadOnlyPostgreSql(settings.PostgreSqlConnectionString)
            : settings.PostgreSqlConnectionString, "tables romana_audit_* of the PostgreSQL journal's database"),
        _ => null,
    };

    private static string Where(JournalSettings settings) => $"SQLite file {Path.GetFullPath(settings.SqliteAuditPath)}";

    public async Task<DbConnection> OpenAsync(CancellationToken cancel)
    {
        DbConnection connection = IsPostgreSql ? new NpgsqlConnection(_connectionString) : new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancel);
        return connection;
    }

    /// <summary>Whether the store has this table: one opened read-only cannot create it, and an older store may lack it.</summary>
    public async Task<bool> HasTableAsync(DbConnection connection, string table, CancellationToken cancel)
    {
        await using var query = connection.CreateCommand();
        query.CommandText = IsPostgreSql
            ? "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = @name"
            : "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = @name";
        var name = query.CreateParameter();
        name.ParameterName = "@name";
        name.Value = table;
        query.Parameters.Add(name);
        return Convert.ToInt64(await query.ExecuteScalarAsync(cancel), System.Globalization.CultureInfo.InvariantCulture) > 0;
    }

    /// <summary>
    /// The offsets of every projection, one row per projection and tag. <c>format</c> is the projection's data format: a
    /// projection that finds another format than its own drops its data and rebuilds it (never trusts it).
    /// </summary>
    public const string OffsetsTable = """
        CREATE TABLE IF NOT EXISTS romana_audit_offsets (
          projection VARCHAR(64) NOT NULL,
          tag VARCHAR(64) NOT NULL,
          ordering BIGINT NOT NULL,
          format INTEGER NOT NULL,
          PRIMARY KEY (projection, tag))
        """;
}
