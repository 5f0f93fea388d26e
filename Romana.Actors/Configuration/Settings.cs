using Akka.Configuration;

namespace Romana.Actors.Configuration;

/// <summary>Tunables of the IPAM actors (romana.ipam).</summary>
public sealed record IpamSettings(int SnapshotEvery, TimeSpan AskTimeout, TimeSpan StartupTimeout, TimeSpan RestartMinBackoff, TimeSpan RestartMaxBackoff)
{
    public static IpamSettings Default => From(RomanaConfig.Reference);

    public static IpamSettings From(Config config)
    {
        var ipam = config.GetConfig("romana.ipam");
        var settings = new IpamSettings(ipam.GetInt("snapshot-every"), ipam.GetTimeSpan("ask-timeout"), ipam.GetTimeSpan("startup-timeout"),
            ipam.GetTimeSpan("node-restart.min-backoff"), ipam.GetTimeSpan("node-restart.max-backoff"));
        if (settings.SnapshotEvery < 1)
            throw new ConfigurationError($"romana.ipam.snapshot-every: {settings.SnapshotEvery} must be at least 1");
        return settings;
    }
}

public enum JournalKind { Sqlite, PostgreSql }

/// <summary>Where events and snapshots live (romana.persistence): an embedded SQLite file, or PostgreSQL.</summary>
public sealed record JournalSettings(JournalKind Journal, string SqlitePath, string PostgreSqlConnectionString)
{
    public static JournalSettings From(Config config)
    {
        var section = config.GetConfig("romana.persistence");
        var kind = section.GetString("journal") switch
        {
            "sqlite" => JournalKind.Sqlite,
            "postgresql" => JournalKind.PostgreSql,
            var other => throw new ConfigurationError($"romana.persistence.journal: '{other}' is neither sqlite nor postgresql"),
        };
        return new JournalSettings(kind, section.GetString("sqlite.path"), section.GetString("postgresql.connection-string"));
    }

    public static JournalSettings Sqlite(string path) => new(JournalKind.Sqlite, path, "");

    /// <summary>Snapshots sit beside the journal file: romana.db keeps its snapshots in romana.snapshots.db.</summary>
    public string SqliteSnapshotPath => Path.ChangeExtension(SqlitePath, ".snapshots" + Path.GetExtension(SqlitePath));

    public string Describe() => Journal == JournalKind.Sqlite ? $"SQLite file {Path.GetFullPath(SqlitePath)}" : "PostgreSQL";
}
