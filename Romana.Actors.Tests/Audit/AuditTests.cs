using System.Text.Json;
using System.Text.Json.Nodes;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Persistence;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Cli;
using Romana.Host.Composition;
using Romana.Host.Persistence;
using Romana.Host.Simulation;

namespace Romana.Actors.Tests.Audit;

/// <summary>
/// One simulation with known events (a failure, a recovery, a node added, a node removed), whose journal the tests
/// question through Akka.Persistence.Query; the live state was captured at several moments to compare replays with.
/// </summary>
public sealed class AuditFixture : IAsyncLifetime
{
    private readonly TempFolder _folder = new();

    public JournalSettings Settings { get; private set; } = null!;
    public SimulationResult Result { get; private set; } = null!;

    public static readonly TimeSpan[] Moments = [TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(6), TimeSpan.FromSeconds(9),
        TimeSpan.FromSeconds(16), TimeSpan.FromSeconds(23)];

    public async Task InitializeAsync()
    {
        var cluster = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples",
            "small-single-zone.json")))!.AsObject();
        var scenario = ScenarioReader.Parse(new JsonObject
        {
            ["cluster"] = cluster,
            ["events"] = new JsonArray(
                new JsonObject { ["at"] = "5s", ["fail"] = "subnet-0a1-node-02" },
                new JsonObject
                {
                    ["at"] = "8s",
                    ["addNode"] = new JsonObject
                    {
                        ["name"] = "late", ["subnet"] = "subnet-0a2", ["ip"] = "10.0.1.77", ["eni"] = "eni-late", ["pods"] = 5
                    }
                },
                new JsonObject { ["at"] = "12s", ["recover"] = "subnet-0a1-node-02" },
                new JsonObject { ["at"] = "20s", ["removeNode"] = "subnet-0a2-node-03" }),
            ["until"] = "25s",
        });
        var path = _folder.Write("journal.db", "");
        File.Delete(path);
        Settings = JournalSettings.Sqlite(path);
        Result = await SimulationRun.RunAsync(scenario, new SimulationOptions(path, CaptureAt: Moments));
        Assert.Null(Result.Violation);
    }

    public Task DisposeAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _folder.Dispose();
        return Task.CompletedTask;
    }
}

public class AuditTests(AuditFixture simulation) : IClassFixture<AuditFixture>
{
    private static string Json<T>(T value) => JsonSerializer.Serialize(value, RomanaSerializer.Options);

    private double Seconds(DateTimeOffset at) => (at - simulation.Result.Start).TotalSeconds;

    [Fact]
    public async Task A_replay_to_a_time_reproduces_exactly_the_live_state_at_that_time()
    {
        Assert.Equal(AuditFixture.Moments.Length, simulation.Result.Captures.Length);
        await using var romana = await RomanaHost.StartAuditAsync(simulation.Settings);
        var journal = romana.Audit;
        foreach (var capture in simulation.Result.Captures)
        {
            var replay = await AuditQueries.ReplayAsync(journal, capture.At);
            Assert.Equal(Json(capture.Ipam), Json(replay.Ipam()));
            var replayed = replay.Routes.Owned.SelectMany(t => t.Value.Values.Select(r => (t.Key, r))).OrderBy(x => x.Key)
                .ThenBy(x => x.r.Cidr);
            Assert.Equal(Json(capture.Routes.OrderBy(x => x.Table).ThenBy(x => x.Route.Cidr).Select(x => new { x.Table, x.Route })),
                Json(replayed.Select(x => new { Table = x.Key, Route = x.r })));
        }
    }

    [Fact]
    public async Task The_replay_at_the_end_is_the_final_plan_document()
    {
        await using var romana = await RomanaHost.StartAuditAsync(simulation.Settings);
        var journal = romana.Audit;
        var document = AuditCommands.ReplayDocument(await AuditQueries.ReplayAsync(journal, null));
        var final = simulation.Result.Final;
        Assert.Equal(final.Subnets, document.Subnets);
        Assert.Equal(final.RouteTables.Select(t => (t.Id, t.Budget)), document.RouteTables.Select(t => (t.Id, t.Budget)));
        Assert.Equal(final.RouteTables.SelectMany(t => t.Routes.Select(r => (t.Id, r))),
            document.RouteTables.SelectMany(t => t.Routes.Select(r => (t.Id, r))));
        Assert.Equal(final.ForwardedFraction, document.ForwardedFraction, 6);
        Assert.Equal(final.Nodes.Select(n => n.Name).Order(), document.Nodes.Select(n => n.Name).Order());
    }

    [Fact]
    public async Task An_address_of_a_removed_node_was_held_by_its_pod_from_the_start_until_the_removal()
    {
        await using var romana = await RomanaHost.StartAuditAsync(simulation.Settings);
        var journal = romana.Audit;
        var replay = await AuditQueries.ReplayAsync(journal, simulation.Result.Start.AddSeconds(19));
        var node = replay.Ipam().Nodes.Single(n => n.Node.Value == "subnet-0a2-node-03");
        var held = node.Allocations.First();

        var holding = Assert.Single(await AuditQueries.AddressAsync(journal, held.Address));
        Assert.Equal(held.Key, holding.Key);
        Assert.Equal("default/subnet-0a2-node-03-pod-0", holding.Pod);
        Assert.Equal("subnet-0a2-node-03", holding.Node.Value);
        Assert.InRange(Seconds(holding.From), -1, 0.5);
        Assert.InRange(Seconds(holding.To!.Value), 20, 20.5);
        Assert.Equal("node removed", holding.ReleaseReason);
    }

    [Fact]
    public async Task A_route_moved_from_the_failed_node_to_a_survivor_at_the_failover()
    {
        await using var romana = await RomanaHost.StartAuditAsync(simulation.Settings);
        var journal = romana.Audit;
        var changes = await AuditQueries.RoutesAsync(journal, null, null);
        var failover = Assert.Single(changes, c => c.Change == "replaced");
        Assert.Equal("failover", failover.Reason);
        Assert.Equal("subnet-0a1-node-02", failover.From!.Value.Value);
        Assert.StartsWith("subnet-0a1-node-0", failover.To!.Value.Value);
        var repaired = simulation.Result.Failovers.Single().RoutesRepairedAt!.Value;
        Assert.Equal(repaired, Seconds(failover.At), 2);
        Assert.Empty(await AuditQueries.RoutesAsync(journal, null, failover.At.AddSeconds(1))
            .ContinueWith(t => t.Result.Where(c => c.Change == "replaced")));
    }

    [Fact]
    public async Task A_nodes_history_has_its_join_blocks_and_health_judgements_in_order()
    {
        await using var romana = await RomanaHost.StartAuditAsync(simulation.Settings);
        var journal = romana.Audit;
        var history = await AuditQueries.NodeAsync(journal, new NodeName("subnet-0a1-node-02"));
        Assert.Equal("subnet-0a1", history.Subnet!.Value.Value);
        Assert.Equal(["joined", "block adopted", "judged failed", "judged recovered"], history.Changes.Select(c => c.What));
        Assert.InRange(Seconds(history.Changes[2].At), 5, 7);
        Assert.NotEmpty(history.Addresses);
        Assert.All(history.Addresses, a => Assert.Null(a.To));
    }

    [Fact]
    public async Task A_node_that_joined_late_is_absent_from_a_replay_before_it_joined()
    {
        await using var romana = await RomanaHost.StartAuditAsync(simulation.Settings);
        var journal = romana.Audit;
        Assert.DoesNotContain((await AuditQueries.ReplayAsync(journal, simulation.Result.Start.AddSeconds(7))).Ipam().Nodes,
            n => n.Node.Value == "late");
        Assert.Contains((await AuditQueries.ReplayAsync(journal, simulation.Result.Start.AddSeconds(9))).Ipam().Nodes,
            n => n.Node.Value == "late");
    }

    [Theory]
    [InlineData("-5m", 300)]
    [InlineData("-2h", 7200)]
    [InlineData("-30s", 30)]
    public void Relative_times_count_back_from_now(string text, double seconds) =>
        Assert.InRange((DateTimeOffset.UtcNow - AuditCommands.Time(text, "--at")).TotalSeconds, seconds - 5, seconds + 5);

    [Fact]
    public void A_malformed_time_names_the_option() =>
        Assert.Equal("--until: 'yesterday' is neither an ISO 8601 time nor a relative one such as -5m",
            Assert.Throws<ConfigurationError>(() => AuditCommands.Time("yesterday", "--until")).Message);
}
