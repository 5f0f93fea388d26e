using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using Romana.Host.Cli;
using Romana.Host.Documents;
using Romana.Host.Simulation;

namespace Romana.Actors.Tests.Documents;

/// <summary>The documents Romana writes: their exact text (README and scripts rely on it), and reading them back.</summary>
public class PlanDocumentTests
{
    private static Ipv4Cidr Cidr(string text) => Ipv4Cidr.Parse(text);

    private static PlanDocument Small() => PlanDocument.Of(
        [("s1", Cidr("100.64.0.0/17"))],
        [new PlanDocument.Node("n1", "s1", "10.0.0.10", [Cidr("100.64.0.0/26")], true),
         new PlanDocument.Node("n2", "s1", "10.0.0.11", [], false)],
        [new TablePlan("rtb-1", 48, [new PlannedRoute(Cidr("100.64.0.0/26"), new NodeName("n1"), "eni-1"),
            new PlannedRoute(Cidr("100.64.0.0/17"), new NodeName("n1"), "eni-1")])],
        0.12345678);

    [Fact]
    public void The_plan_document_is_written_as_documented_with_routes_in_prefix_order_and_six_places()
    {
        Assert.Equal("""
            {
              "subnets": [
                {
                  "id": "s1",
                  "podPrefix": "100.64.0.0/17"
                }
              ],
              "nodes": [
                {
                  "name": "n1",
                  "subnet": "s1",
                  "ip": "10.0.0.10",
                  "blocks": [
                    "100.64.0.0/26"
                  ],
                  "healthy": true
                },
                {
                  "name": "n2",
                  "subnet": "s1",
                  "ip": "10.0.0.11",
                  "blocks": [],
                  "healthy": false
                }
              ],
              "routeTables": [
                {
                  "id": "rtb-1",
                  "budget": 48,
                  "routes": [
                    {
                      "cidr": "100.64.0.0/17",
                      "target": "n1",
                      "eni": "eni-1"
                    },
                    {
                      "cidr": "100.64.0.0/26",
                      "target": "n1",
                      "eni": "eni-1"
                    }
                  ]
                }
              ],
              "forwardedFraction": 0.123457
            }
            """.ReplaceLineEndings("\n"), Small().ToJson().ReplaceLineEndings("\n"));
    }

    [Fact]
    public void A_plan_document_reads_back_to_the_same_values_and_text()
    {
        var written = Small().ToJson();
        var read = PlanDocument.Parse(written);
        Assert.Equal(written, read.ToJson());
        Assert.Equal(Small().Subnets, read.Subnets);
        Assert.Equal([Cidr("100.64.0.0/26")], read.Nodes[0].Blocks.ToArray());
        Assert.Equal(Small().RouteTables[0].Routes, read.RouteTables[0].Routes);
        Assert.Equal(0.123457, read.ForwardedFraction);
    }

    [Fact]
    public async Task The_output_of_romana_plan_reads_back_and_prints_the_same_text()
    {
        var output = new StringWriter();
        var example = Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "small-single-zone.json");
        Assert.Equal(0, await PlanCommand.RunAsync(example, true, output));
        var printed = output.ToString().TrimEnd('\n', '\r');
        var plan = PlanDocument.Parse(printed, "plan.json");
        Assert.Equal(printed, plan.ToJson());
        Assert.Equal(6, plan.Nodes.Count);
        Assert.Equal(48, Assert.Single(plan.RouteTables).Budget);
    }

    [Theory]
    [InlineData("""{"subnets": [{"id": "s", "podPrefix": "100.64.0.0/33"}], "nodes": [], "routeTables": [], "forwardedFraction": 0}""",
        "$.subnets[0].podPrefix = \"100.64.0.0/33\": expected an IPv4 CIDR such as 100.64.0.0/26")]
    [InlineData("""{"subnets": [], "nodes": [], "routeTables": [], "forwardedFraction": 0, "extra": 1}""",
        "$.extra = 1: unknown field (known: subnets, nodes, routeTables, forwardedFraction)")]
    [InlineData("""{"subnets": [], "nodes": [], "routeTables": [{"id": "r", "budget": "48", "routes": []}], "forwardedFraction": 0}""",
        "$.routeTables[0].budget = \"48\": expected an integer")]
    public void A_malformed_plan_document_is_named_by_its_path_and_value(string json, string expected)
    {
        var error = Assert.Throws<PlanDocumentException>(() => PlanDocument.Parse(json, "plan.json"));
        Assert.Equal($"plan.json: {expected}", error.Message);
    }

    [Fact]
    public void The_simulation_document_flattens_details_in_name_order_and_writes_null_for_a_repair_that_never_came()
    {
        var details = ImmutableSortedDictionary.CreateRange([KeyValuePair.Create("reason", "failover"), KeyValuePair.Create("from", "n1")]);
        var result = new SimulationResult([new TimelineEntry(6.3, "routeReplaced", details)], [new Failover("n1", 5, 6.2, null, 0)],
            PlanDocument.Of([], [], [], 0), null, null, 1, "(temporary)", TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(1),
            DateTimeOffset.UnixEpoch, [], ConvergedAt: 2.5);
        Assert.Equal("""
            {
              "timeline": [
                {
                  "at": 6.3,
                  "event": "routeReplaced",
                  "from": "n1",
                  "reason": "failover"
                }
              ],
              "failovers": [
                {
                  "node": "n1",
                  "failedAt": 5,
                  "detectedAt": 6.2,
                  "routesRepairedAt": null
                }
              ],
              "final": {
                "subnets": [],
                "nodes": [],
                "routeTables": [],
                "forwardedFraction": 0
              },
              "convergedAt": 2.5
            }
            """.ReplaceLineEndings("\n"), SimulationDocument.Of(result).ToJson().ReplaceLineEndings("\n"));
    }
}
