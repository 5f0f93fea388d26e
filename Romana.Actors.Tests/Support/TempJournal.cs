using Akka.Actor;
using Akka.Configuration;
using Microsoft.Data.Sqlite;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using Romana.Host.Composition;
using Romana.Host.Persistence;

namespace Romana.Actors.Tests.Support;

/// <summary>A real SQLite journal file in a temporary folder, removed at the end.</summary>
public sealed class TempJournal : IDisposable
{
    public static readonly Config Quiet = ConfigurationFactory.ParseString("akka.loglevel = WARNING");
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("romana-test-");

    public TempJournal() => Settings = JournalSettings.Sqlite(Path.Combine(_folder.FullName, "journal.db"));

    public JournalSettings Settings { get; }

    /// <summary>The IPAM composed as production composes it, on this journal.</summary>
    public async Task<StartedIpam> StartAsync(ClusterTopology topology, IpamSettings? settings = null) =>
        new(await RomanaHost.StartIpamAsync(topology, Settings, Quiet, settings));

    /// <summary>How many events of this type the journal file holds, read with plain SQL.</summary>
    public long CountEvents(string manifest)
    {
        using var connection = new SqliteConnection($"Data Source={Settings.SqlitePath}");
        connection.Open();
        using var query = connection.CreateCommand();
        query.CommandText = "SELECT COUNT(*) FROM journal WHERE manifest = $manifest";
        query.Parameters.AddWithValue("$manifest", manifest);
        return (long)query.ExecuteScalar()!;
    }

    /// <summary>How many events match a SQL condition on the journal table (payload is the event's JSON text).</summary>
    public long CountEventsWhere(string condition)
    {
        using var connection = new SqliteConnection($"Data Source={Settings.SqlitePath}");
        connection.Open();
        using var query = connection.CreateCommand();
        query.CommandText = $"SELECT COUNT(*) FROM journal WHERE {condition.Replace("payload", "CAST(message AS TEXT)")}";
        return (long)query.ExecuteScalar()!;
    }

    public long CountSnapshots()
    {
        using var connection = new SqliteConnection($"Data Source={Settings.SqliteSnapshotPath}");
        connection.Open();
        using var query = connection.CreateCommand();
        query.CommandText = "SELECT COUNT(*) FROM snapshot";
        return (long)query.ExecuteScalar()!;
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _folder.Delete(recursive: true);
    }
}

/// <summary>A started IPAM under test: its front door, and its host to stop.</summary>
public sealed class StartedIpam(RomanaHost host) : IAsyncDisposable
{
    public RomanaHost Host => host;
    public IpamClient Client => host.Ipam;
    public ActorSystem System => host.System;

    public Task<IpamMessages.IpamReply> AskAsync(object message) => host.Ipam.AskAsync(message);

    public ValueTask DisposeAsync() => host.DisposeAsync();
}
