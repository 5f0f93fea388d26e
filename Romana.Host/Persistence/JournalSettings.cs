using Akka.Configuration;
using Romana.Actors.Configuration;

namespace Romana.Host.Persistence;

/// <summary>
/// Where events go: an embedded SQLite file, PostgreSQL, or memory. Memory is for dry runs only (`romana plan`): nothing
/// outlives the process, so it is never chosen by configuration.
/// </summary>
public enum JournalKind { Sqlite, PostgreSql, Memory }

/// <summary>
/// Where events and snapshots live (romana.persistence): an embedded SQLite file, or PostgreSQL; or memory, for a dry run.
/// </summary>
public sealed record JournalSettings(JournalKind Journal, string SqlitePath, string PostgreSqlConnectionString)
{
    public const string SqlitePathKey = "romana.persistence.sqlite.path";

    /// <summary>What named <see cref="SqlitePath"/>, for errors about it: the setting, or a command's --journal.</summary>
    public string SqlitePathSetting { get; init; } = SqlitePathKey;

    public static JournalSettings From(Config config)
    {
        var kind = ConfigValues.Text(config, "romana.persistence.journal") switch
        {
            "sqlite" => JournalKind.Sqlite,
            "postgresql" => JournalKind.PostgreSql,
            var other => throw ConfigValues.Error(config, "romana.persistence.journal",
                $"{Romana.Actors.Quoting.Quote(other)} is neither sqlite nor postgresql"),
        };
        return new JournalSettings(kind, ConfigValues.Text(config, "romana.persistence.sqlite.path"),
            ConfigValues.Text(config, "romana.persistence.postgresql.connection-string"));
    }

    /// <param name="setting">What named the path (a command's --journal unless said otherwise).</param>
    public static JournalSettings Sqlite(string path, string setting = "--journal") =>
        new(JournalKind.Sqlite, path, "") { SqlitePathSetting = setting };

    public static JournalSettings PostgreSql(string connectionString) => new(JournalKind.PostgreSql, "", connectionString);

    /// <summary>Akka.Persistence's memory journal and snapshot store: a dry run's, gone with the process.</summary>
    public static JournalSettings InMemory() => new(JournalKind.Memory, "", "");

    /// <summary>Snapshots sit beside the journal file: romana.db keeps its snapshots in romana.snapshots.db.</summary>
    public string SqliteSnapshotPath => Path.ChangeExtension(SqlitePath, ".snapshots" + Path.GetExtension(SqlitePath));

    /// <summary>
    /// The audit's derived data (checkpoints, the address index) sits beside the journal file too: romana.audit.db. On
    /// PostgreSQL it is tables of the journal's database named romana_audit_*.
    /// </summary>
    public string SqliteAuditPath => Path.ChangeExtension(SqlitePath, ".audit" + Path.GetExtension(SqlitePath));

    public string Describe() => Journal switch
    {
        JournalKind.Sqlite => $"SQLite file {Path.GetFullPath(SqlitePath)}",
        JournalKind.PostgreSql => "PostgreSQL",
        _ => "memory (kept by nothing)",
    };
}
