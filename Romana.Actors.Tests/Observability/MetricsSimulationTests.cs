using System.Text.Json.Nodes;
using Romana.Actors.Tests.Support;
using Romana.Host.Simulation;
using Xunit.Abstractions;

namespace Romana.Actors.Tests.Observability;

/// <summary>
/// /metrics as the simulation's production actors fill it (the daemon's collectors, composed by the same AddRomanaMetrics):
/// checked by promtool, and each figure against what the simulation itself saw.
/// </summary>
public class MetricsSimulationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task After_the_cluster_loads_and_a_forwarder_fails_the_metrics_match_the_pods_ec2_and_the_failover()
    {
        var cluster = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "small-single-zone.json")))!
            .AsObject();
        var pods = cluster["nodes"]!.AsArray().ToDictionary(n => n!["name"]!.GetValue<string>(), n => n!["pods"]!.GetValue<int>());
        var scenario = ScenarioReader.Parse(new JsonObject
        {
            ["cluster"] = cluster,
            ["health"] = new JsonObject { ["probeIntervalMs"] = 500, ["failureThreshold"] = 3, ["recoveryThreshold"] = 3 },
            ["events"] = new JsonArray(new JsonObject { ["at"] = "5s", ["fail"] = "subnet-0a1-node-02" }),
            ["until"] = "15s",
        });
        var result = await SimulationRun.RunAsync(scenario, new SimulationOptions());
        Assert.True(result.Violation is null, $"at {result.ViolationAt}s: {result.Violation}");
        var metrics = result.Metrics!;
        output.WriteLine(metrics.Text);

        var promtool = Exposition.Promtool(metrics.Text);
        Assert.True(promtool is not null, "promtool is missing: apt-get install prometheus (Debian's package has it)");
        Assert.True(promtool.Value.ExitCode == 0, $"promtool check metrics: exit {promtool.Value.ExitCode}: {promtool.Value.Output}");
        var text = new Exposition(metrics.Text);

        // Allocations: one per pod of each node, all held at the end (nothing was released).
        Assert.Equal(pods.ToDictionary(p => p.Key, p => (double)p.Value), text.By("romana_ipam_allocations_total", "node"));
        Assert.Equal(pods.ToDictionary(p => p.Key, p => (double)p.Value), text.By("romana_ipam_node_addresses_held", "node"));
        Assert.Empty(text.Values("romana_ipam_releases_total"));
        Assert.Equal(pods.Values.Sum(), text.Sum("romana_ipam_subnet_addresses_held"));
        Assert.Equal(text.Sum("romana_ipam_node_blocks"), text.Sum("romana_ipam_subnet_blocks"));

        // The failover: counted once, its failure-to-repair time no longer than the simulation's own measure (from the
        // moment the node went down to the moment EC2 held no route through it), and no shorter than the two probe
        // intervals between the first missed probe and the third, which judges it failed.
        var failover = Assert.Single(result.Failovers);
        Assert.NotNull(failover.RoutesRepairedAt);
        Assert.Equal(1, text.Sum("romana_failovers_total"));
        Assert.Equal(1, text.Single("romana_failover_repair_seconds_count"));
        var repair = text.Single("romana_failover_repair_seconds_sum");
        output.WriteLine($"repair: metric {repair:0.###} s; simulation {failover.RoutesRepairedAt - failover.FailedAt:0.###} s");
        Assert.InRange(repair, 2 * 0.5, failover.RoutesRepairedAt!.Value - failover.FailedAt);
        Assert.True(text.Single("romana_health_probes_total", "result=missed") >= 3);
        Assert.True(text.Single("romana_health_probes_total", "result=answered") > 0);

        // EC2: every call the in-memory EC2 received, by action, and no other.
        Assert.NotEmpty(metrics.Ec2Calls);
        Assert.Equal(metrics.Ec2Calls.ToDictionary(c => c.Key, c => (double)c.Value), text.By("romana_ec2_calls_total", "action"));

        // Routes per table: what EC2 holds to the cluster's nodes, within the budget (the limit minus the foreign routes).
        Assert.Equal(metrics.Ec2PodRoutes.ToDictionary(t => t.Key, t => (double)t.Value), text.By("romana_routes", "table"));
        Assert.Equal(50 - 2, text.Single("romana_route_budget", "table=rtb-main"));
        Assert.True(text.Single("romana_journal_write_seconds_count", "writer=node") > 0);
        Assert.True(text.Single("romana_journal_write_seconds_count", "writer=routes") > 0);
    }
}
