using System.Net;
using System.Net.Sockets;
using Npgsql;
using Romana.Actors.Configuration;
using Romana.Host.Ipam;
using Romana.Host.Persistence;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// A throwaway PostgreSQL server for the tests, started with scripts/postgres-start.sh on a free loopback port. Where
/// the machine has no PostgreSQL server binaries (a laptop with only the .NET SDK), <see cref="Unavailable"/> says so
/// and the tests are skipped with that reason; CI installs PostgreSQL in .ci/run, so they run there.
/// </summary>
public sealed class PostgreSqlServer : IAsyncLifetime
{
    private readonly string _folder = Path.Combine("/tmp", $"romana-pg-{Guid.NewGuid():N}");
    private string? _connectionString;
    private int _databases;

    public string? Unavailable { get; private set; }

    public async Task InitializeAsync()
    {
        var (exit, output, error) = await RunAsync("postgres-start.sh", _folder, FreePort().ToString());
        if (exit == 0) _connectionString = output.Trim();
        else Unavailable = $"no PostgreSQL server here ({error.Trim()}); .ci/run installs one";
    }

    /// <summary>A new empty database on the server, for one journal.</summary>
    public async Task<FreshJournal> CreateJournalAsync()
    {
        var name = $"romana_{Interlocked.Increment(ref _databases)}";
        await using (var connection = new NpgsqlConnection(_connectionString))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await create.ExecuteNonQueryAsync();
        }
        var settings = new JournalSettings(JournalKind.PostgreSql, "",
            new NpgsqlConnectionStringBuilder(_connectionString) { Database = name }.ToString());
        return new FreshJournal(settings, () =>
        {
            NpgsqlConnection.ClearAllPools();
            return Task.CompletedTask;
        });
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_connectionString is not null) await RunAsync("postgres-stop.sh", _folder);
    }

    private static Task<(int Exit, string Output, string Error)> RunAsync(string script, params string[] arguments) =>
        Processes.RunAsync(Path.Combine(Paths.RepositoryRoot, "scripts", script), arguments);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

[CollectionDefinition(Name)]
public sealed class PostgreSqlCollection : ICollectionFixture<PostgreSqlServer>
{
    public const string Name = "PostgreSQL";
}

/// <summary>
/// Tests of several cluster members in this process: they run after every other test and alone (members under a loaded
/// machine miss heartbeats and gossip rounds that the tests' bounds leave no room for), on their own PostgreSQL server.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection : ICollectionFixture<PostgreSqlServer>
{
    public const string Name = "Cluster";
}
