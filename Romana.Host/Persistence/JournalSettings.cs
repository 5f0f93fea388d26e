using Akka.Configuration;
using Romana.Actors.Configuration;

namespace Romana.Host.Persistence;

public enum JournalKind { Sqlite, PostgreSql }

/// <summary>Where events and snapshots live (romana.persistence): an embedded SQLite file, or PostgreSQL.</summary>
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

    /// <summary>Snapshots sit beside the journal file: romana.db keeps its snapshots in romana.snapshots.db.</summary>
    public string SqliteSnapshotPath => Path.ChangeExtension(SqlitePath, ".snapshots" + Path.GetExtension(SqlitePath));

    public string Describe() => Journal == JournalKind.Sqlite ? $"SQLite file {Path.GetFullPath(SqlitePath)}" : "PostgreSQL";
}
