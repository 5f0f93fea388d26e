using System.Text.Json.Nodes;
using Romana.Actors.Tests.Support;
using Romana.Host.Simulation;

namespace Romana.Actors.Tests.Simulation;

/// <summary>Scenarios run on the production actors in virtual time; every run checks the invariants after every event.</summary>
public class SimulationScenarioTests
{
    private static JsonObject Cluster(string example) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", example)))!.AsObject();

    private static Task<SimulationResult> RunAsync(JsonObject cluster, string until, params JsonObject[] events) =>
        RunAsync(cluster, until, converges: true, events);

    private static async Task<SimulationResult> RunAsync(JsonObject cluster, string until, bool converges, params JsonObject[] events)
    {
        var scenario = ScenarioReader.Parse(new JsonObject
        {
            ["cluster"] = cluster,
            ["health"] = new JsonObject { ["probeIntervalMs"] = 500, ["failureThreshold"] = 3, ["recoveryThreshold"] = 3 },
            ["events"] = new JsonArray([.. events]),
            ["until"] = until,
        });
        var result = await SimulationRun.RunAsync(scenario, new SimulationOptions());
        Assert.True(result.Violation is null, $"at {result.ViolationAt}s: {result.Violation}");
        Assert.True(result.InvariantChecks >= 1, "the invariants were never checked");
        if (converges) Assert.True(result.NotConverged is null, $"not converged since {result.NotConvergedSince}s: {result.NotConverged}");
        return result;
    }

    private static JsonObject At(string at, string key, JsonNode value) => new() { ["at"] = at, [key] = value };

    /// <summary>Failure to repaired routes within interval × threshold + 500 ms: the bound of the issue.</summary>
    private static void RepairedInTime(Failover failover)
    {
        Assert.NotNull(failover.DetectedAt);
        Assert.NotNull(failover.RoutesRepairedAt);
        Assert.InRange(failover.RoutesRepairedAt!.Value - failover.FailedAt, 0, 2.0);
    }

    private static string Forwarder(SimulationResult result, string subnetPrefix) =>
        result.Timeline.First(e => e.Event == "routeCreated" && e.Details["cidr"] == subnetPrefix).Details["target"];

    [Fact]
    public async Task One_zone_small_a_forwarder_fails_and_its_routes_move_within_two_seconds()
    {
        var result = await RunAsync(Cluster("small-single-zone.json"), "30s", At("5s", "fail", "subnet-0a1-node-02"));
        var failover = Assert.Single(result.Failovers);
        RepairedInTime(failover);
        Assert.Contains(result.Timeline,
            e => e.Event == "routeReplaced" && e.Details["from"] == "subnet-0a1-node-02" && e.Details["reason"] == "failover");
        Assert.DoesNotContain(result.Final.RouteTables.SelectMany(t => t.Routes), r => r.Target == "subnet-0a1-node-02");
    }

    [Fact]
    public async Task One_zone_over_fifty_nodes_fits_and_fails_over()
    {
        var result = await RunAsync(Cluster("one-zone-60-nodes.json"), "25s", At("5s", "fail", "subnet-0a2-node-07"),
            At("6s", "fail", "subnet-0a1-node-12"));
        Assert.Equal(60, result.Final.Nodes.Count);
        Assert.All(result.Final.RouteTables, t => Assert.True(t.Routes.Count <= 47));
        Assert.All(result.Failovers, RepairedInTime);
    }

    [Fact]
    public async Task Three_zones_with_three_tables_of_different_budgets_stay_within_each()
    {
        var cluster = Cluster("three-zones.json");
        var result = await RunAsync(cluster, "20s", At("5s", "fail", "subnet-0b1-node-01"));
        var budgets = cluster["routeTables"]!.AsArray()
            .ToDictionary(t => t!["id"]!.GetValue<string>(), t => 50 - t!["foreignRoutes"]!.GetValue<int>());
        foreach (var table in result.Final.RouteTables)
            Assert.InRange(table.Routes.Count, 1, budgets[table.Id]);
        Assert.All(result.Failovers, RepairedInTime);
    }

    [Fact]
    public async Task Two_failures_in_one_subnet_in_quick_succession_land_on_the_survivor()
    {
        var result = await RunAsync(Cluster("small-single-zone.json"), "30s",
            At("5s", "fail", "subnet-0a1-node-01"), At("5.3s", "fail", "subnet-0a1-node-02"));
        Assert.All(result.Failovers, RepairedInTime);
        var targets = result.Final.RouteTables.SelectMany(t => t.Routes)
            .Where(r => r.Cidr.ToString().StartsWith("100.64.0.", StringComparison.Ordinal)).Select(r => r.Target).Distinct();
        Assert.Equal(["subnet-0a1-node-03"], targets);
    }

    [Fact]
    public async Task When_every_node_of_a_subnet_fails_its_routes_are_kept_and_it_is_said_loudly()
    {
        var result = await RunAsync(Cluster("small-single-zone.json"), "30s",
            At("5s", "fail", "subnet-0a2-node-01"), At("5s", "fail", "subnet-0a2-node-02"), At("5s", "fail", "subnet-0a2-node-03"));
        var alarm = Assert.Single(result.Timeline, e => e.Event == "noHealthyForwarder");
        Assert.Equal("subnet-0a2", alarm.Details["subnet"]);
        var routesToDarkSubnet = result.Final.RouteTables.SelectMany(t => t.Routes)
            .Count(r => r.Cidr.ToString().StartsWith("100.64.128.", StringComparison.Ordinal));
        Assert.Equal(3, routesToDarkSubnet);
        Assert.DoesNotContain(result.Timeline, e => e.Event == "routeDeleted");
    }

    [Fact]
    public async Task A_recovered_node_is_eligible_again_but_routes_do_not_move_back()
    {
        var result = await RunAsync(Cluster("small-single-zone.json"), "45s",
            At("5s", "fail", "subnet-0a1-node-02"), At("15s", "recover", "subnet-0a1-node-02"));
        Assert.Contains(result.Timeline, e => e.Event == "forwarderRecovered" && e.Details["node"] == "subnet-0a1-node-02");
        var afterRecovery = result.Timeline.Where(e => e.At > 15 && e.Event.StartsWith("route", StringComparison.Ordinal)).ToList();
        Assert.Empty(afterRecovery);
    }

    [Fact]
    public async Task Throttling_during_a_failover_delays_the_repair_until_ec2_answers_again()
    {
        var result = await RunAsync(Cluster("small-single-zone.json"), "40s",
            At("4s", "ec2", "throttle").Also("for", "6s"), At("5s", "fail", "subnet-0a1-node-02"));
        var failover = Assert.Single(result.Failovers);
        Assert.NotNull(failover.RoutesRepairedAt);
        Assert.True(failover.RoutesRepairedAt >= 10, $"repaired at {failover.RoutesRepairedAt}, while EC2 throttled until 10 s");
        Assert.Contains(result.Timeline, e => e.Event == "ec2ThrottleEnded");
    }

    [Fact]
    public async Task A_run_whose_routes_never_get_to_ec2_ends_not_converged_naming_an_unreachable_pair()
    {
        var result = await RunAsync(Cluster("small-single-zone.json"), "10s", converges: false,
            At("0s", "ec2", "throttle").Also("for", "10s"));
        Assert.Null(result.ConvergedAt);
        Assert.NotNull(result.NotConverged);
        Assert.Equal(Romana.Actors.Routing.ViolationKind.NotRouted, result.NotConverged!.Kind);
        Assert.Equal(0, result.NotConvergedSince);
    }

    /// <summary>
    /// 300 nodes in 60 subnets of 3 zones (limit 100, EC2's rate limit): the forwarders of two subnets fail at 10 s and 14 s,
    /// while the first convergence is still creating routes at EC2's rate. Each repair is judged on what EC2 holds (no route
    /// to the dead node, its subnet reachable) and stays within the bound; no route is created or replaced toward a node
    /// judged failed; the first complete convergence comes after both failures.
    /// </summary>
    [Fact]
    public async Task Failures_in_the_middle_of_a_large_first_convergence_are_repaired_first_and_within_the_bound()
    {
        var result = await SimulationRun.RunAsync(ScaleScenario.Scenario(nodesPerSubnet: 5), new SimulationOptions());
        Assert.True(result.Violation is null, $"at {result.ViolationAt}s: {result.Violation}");
        Assert.True(result.NotConverged is null, $"not converged: {result.NotConverged}");
        Assert.Equal(2, result.Failovers.Length);
        Assert.All(result.Failovers, f =>
        {
            RepairedInTime(f);
            Assert.True(f.RoutesMoved >= 1, $"{f.Node} forwarded nothing");
        });
        Assert.True(result.ConvergedAt > 14, $"the first convergence ended at {result.ConvergedAt}s, before the failures");
        foreach (var judged in result.Timeline.Where(e => e.Event == "forwarderFailed"))
        {
            var node = judged.Details["node"];
            Assert.DoesNotContain(result.Timeline, e => e.At >= judged.At
                && ((e.Event == "routeCreated" && e.Details["target"] == node) || (e.Event == "routeReplaced" && e.Details["to"] == node)));
        }
    }

    [Fact]
    public async Task The_route_manager_restarted_during_a_failover_recovers_from_its_journal_and_finishes()
    {
        var result = await RunAsync(Cluster("small-single-zone.json"), "30s",
            At("5s", "fail", "subnet-0a1-node-02"), At("6.1s", "restartRouteManager", true));
        RepairedInTime(Assert.Single(result.Failovers));
        var creates = result.Timeline.Where(e => e.Event == "routeCreated").GroupBy(e => (e.Details["table"], e.Details["cidr"]));
        Assert.All(creates, c => Assert.Single(c));
    }

    [Fact]
    public async Task A_flapping_node_does_not_move_a_route_per_flap()
    {
        var flaps = Enumerable.Range(0, 20).Select(i => At($"{5 + i * 0.5:0.0}s", i % 2 == 0 ? "fail" : "recover", "subnet-0a1-node-02"))
            .ToArray();
        var result = await RunAsync(Cluster("small-single-zone.json"), "30s", flaps);
        Assert.DoesNotContain(result.Timeline, e => e.Event is "forwarderFailed" or "routeReplaced");
    }

    [Fact]
    public async Task Nodes_added_and_removed_are_routed_and_unrouted()
    {
        var node = new JsonObject
        {
            ["name"] = "late-node", ["subnet"] = "subnet-0a2", ["ip"] = "10.0.1.50", ["eni"] = "eni-late", ["instanceId"] = "i-late",
            ["pods"] = 70, ["healthy"] = true
        };
        var result = await RunAsync(Cluster("small-single-zone.json"), "30s",
            At("5s", "addNode", node), At("15s", "removeNode", "subnet-0a1-node-03"));
        Assert.Contains(result.Final.Nodes, n => n.Name == "late-node");
        Assert.DoesNotContain(result.Final.Nodes, n => n.Name == "subnet-0a1-node-03");
        Assert.DoesNotContain(result.Final.RouteTables.SelectMany(t => t.Routes), r => r.Target == "subnet-0a1-node-03");
    }

    [Theory]
    [InlineData("""{"at": "5s", "fail": "nobody"}""",
        """$.events[0].fail = "nobody": unknown node (not in the cluster, or removed by an earlier event)""")]
    [InlineData("""{"at": "soon", "fail": "subnet-0a1-node-01"}""", """$.events[0].at = "soon": not a time such as 500ms, 20s or 2m""")]
    [InlineData("""{"at": "5s", "explode": true}""",
        "$.events[0].explode = true: unknown field (known: at, fail, failForwarder, recover, addNode, removeNode, ec2, for, "
        + "restartRouteManager)")]
    [InlineData("""{"at": "5s", "ec2": "melt", "for": "1s"}""", """$.events[0].ec2 = "melt": not a known EC2 fault (throttle)""")]
    [InlineData("""{"at": "5s", "addNode": {"name": "x", "subnet": "nope", "ip": "10.0.0.9", "eni": "eni-x"}}""",
        """$.events[0].addNode.subnet = "nope": not a subnet of any zone (subnets: subnet-0a1, subnet-0a2)""")]
    public void A_malformed_event_is_refused_naming_it(string json, string expected)
    {
        var error = Assert.Throws<ScenarioException>(() => ScenarioReader.Parse(new JsonObject
        {
            ["cluster"] = Cluster("small-single-zone.json"),
            ["events"] = new JsonArray(JsonNode.Parse(json)),
            ["until"] = "30s",
        }));
        Assert.Equal(expected, error.Message);
    }
}

internal static class JsonObjectExtensions
{
    public static JsonObject Also(this JsonObject o, string key, JsonNode value)
    {
        o[key] = value;
        return o;
    }
}
