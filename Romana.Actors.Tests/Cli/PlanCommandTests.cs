using System.Text.Json.Nodes;
using Romana.Actors.Addressing;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Cli;

namespace Romana.Actors.Tests.Cli;

public class PlanCommandTests
{
    private static string Example(string name) => Path.Combine(Paths.RepositoryRoot, "hocon", "examples", name);

    private static async Task<(int Exit, string Output)> PlanAsync(string path, bool json = true)
    {
        var output = new StringWriter();
        var exit = await PlanCommand.RunAsync(path, json, output);
        return (exit, output.ToString());
    }

    [Theory]
    [InlineData("small-single-zone.json")]
    [InlineData("one-zone-60-nodes.json")]
    [InlineData("three-zones.json")]
    [InlineData("one-subnet.json")]
    public async Task Every_example_plans_within_its_budgets_in_the_documented_shape(string example)
    {
        var (exit, output) = await PlanAsync(Example(example));
        Assert.Equal(0, exit);
        var plan = JsonNode.Parse(output)!.AsObject();
        Assert.Equal(["subnets", "nodes", "routeTables", "forwardedFraction"], plan.Select(p => p.Key));
        Assert.Equal(["id", "podPrefix"], plan["subnets"]![0]!.AsObject().Select(p => p.Key));
        Assert.Equal(["name", "subnet", "ip", "blocks", "healthy"], plan["nodes"]![0]!.AsObject().Select(p => p.Key));
        foreach (var table in plan["routeTables"]!.AsArray())
        {
            Assert.Equal(["id", "budget", "routes"], table!.AsObject().Select(p => p.Key));
            Assert.InRange(table["routes"]!.AsArray().Count, 1, table["budget"]!.GetValue<int>());
            Assert.Equal(["cidr", "target", "eni"], table["routes"]![0]!.AsObject().Select(p => p.Key));
        }
        Assert.InRange(plan["forwardedFraction"]!.GetValue<double>(), 0, 1);
    }

    [Fact]
    public async Task Sixty_nodes_fit_a_table_of_fifty_where_one_route_per_node_would_not()
    {
        var (_, output) = await PlanAsync(Example("one-zone-60-nodes.json"));
        var plan = JsonNode.Parse(output)!;
        Assert.Equal(60, plan["nodes"]!.AsArray().Count);
        Assert.All(plan["routeTables"]!.AsArray(), t => Assert.True(t!["routes"]!.AsArray().Count <= 47));
    }

    [Fact]
    public async Task Ten_nodes_in_one_subnet_with_one_table_get_a_route_straight_to_every_nodes_block()
    {
        // Issue 13: ten nodes in subnet-0, one table rtb-shared with a budget of 48 (one-subnet.json). The table serves that
        // subnet alone, and used to get no route at all (its nodes use host routes); instances that are not nodes need them.
        var (exit, output) = await PlanAsync(Example("one-subnet.json"));
        Assert.Equal(0, exit);
        var plan = JsonNode.Parse(output)!;
        var table = Assert.Single(plan["routeTables"]!.AsArray())!;
        Assert.Equal(48, table["budget"]!.GetValue<int>());
        var routes = table["routes"]!.AsArray().Select(r => (Cidr: Ipv4Cidr.Parse(r!["cidr"]!.GetValue<string>()),
            Target: r["target"]!.GetValue<string>())).ToList();
        var blocks = plan["nodes"]!.AsArray().SelectMany(n => n!["blocks"]!.AsArray()
            .Select(b => (Block: Ipv4Cidr.Parse(b!.GetValue<string>()), Owner: n["name"]!.GetValue<string>()))).ToList();
        Assert.Equal(10, blocks.Count);
        Assert.InRange(routes.Count, 1, blocks.Count);
        foreach (var (block, owner) in blocks)
            Assert.Equal(owner, routes.Where(r => r.Cidr.Contains(block)).MaxBy(r => r.Cidr.PrefixLength).Target);
        Assert.Equal(0, plan["forwardedFraction"]!.GetValue<double>());
    }

    [Fact]
    public async Task The_same_file_plans_the_same_way_every_time()
    {
        var (_, first) = await PlanAsync(Example("three-zones.json"));
        var (_, second) = await PlanAsync(Example("three-zones.json"));
        Assert.Equal(first, second);
    }

    [Fact]
    public async Task An_impossible_budget_exits_2_and_says_budget()
    {
        using var folder = new TempFolder();
        var cluster = JsonNode.Parse(File.ReadAllText(Example("three-zones.json")))!;
        cluster["routeTables"]![2]!["foreignRoutes"] = 49;
        var file = folder.Write("tight.json", cluster.ToJsonString());
        var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(2, (await PlanAsync(file)).Exit);
        }
        finally
        {
            Console.SetError(previous);
        }
        Assert.Contains("budget", error.ToString());
        Assert.Contains("route table rtb-c needs 6 routes (one per subnet with pods it must reach) but its budget is 1", error.ToString());
    }

    [Theory]
    [InlineData("""{"podCidr": "100.64.0.0/16", "zones": [], "nodes": []}""", "$.blockPrefixLength: missing")]
    [InlineData("""
        {"podCidr": "100.64.0.0/16", "blockPrefixLength": 26,
         "zones": [{"name": "z", "subnets": [{"id": "s", "cidr": "10.0.0.0/33", "routeTable": "r"}]}], "nodes": []}
        """, "$.zones[0].subnets[0].cidr = \"10.0.0.0/33\": not an IPv4 CIDR")]
    [InlineData("""
        {"podCidr": "100.64.0.0/16", "blockPrefixLength": 26,
         "zones": [{"name": "z", "subnets": [{"id": "s", "cidr": "10.0.0.0/24", "routeTable": "r"}]}],
         "nodes": [{"name": "n", "subnet": "x", "ip": "10.0.0.5", "eni": "eni-1"}]}
        """, "$.nodes[0].subnet = \"x\": not a subnet of any zone")]
    [InlineData("""
        {"podCidr": "100.64.0.0/16", "blockPrefixLength": 26,
         "zones": [{"name": "z", "subnets": [{"id": "s", "cidr": "10.0.0.0/24", "routeTable": "r"}]}],
         "nodes": [{"name": "n", "subnet": "s", "ip": "10.0.9.5", "eni": "eni-1"}]}
        """, "$.nodes[0].ip = \"10.0.9.5\": not inside subnet s's CIDR 10.0.0.0/24")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 26, "routeLimit": "fifty", "zones": [], "nodes": []}""",
        "$.routeLimit = \"fifty\": expected an integer")]
    // issue 11: 2^31 - 1 pods on one node grew to 13.7 GB without an answer; now refused before any work
    [InlineData("""
        {"podCidr": "100.64.0.0/16", "blockPrefixLength": 26,
         "zones": [{"name": "z", "subnets": [{"id": "s", "cidr": "10.0.0.0/24", "routeTable": "r"}]}],
         "nodes": [{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "pods": 2147483647}]}
        """, "bad.json: $.nodes[0].pods = 2147483647: more than the 65,536 pods a node may have")]
    public async Task Malformed_input_exits_2_with_one_line_naming_the_field(string json, string expected)
    {
        using var folder = new TempFolder();
        var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(2, (await PlanAsync(folder.Write("bad.json", json))).Exit);
        }
        finally
        {
            Console.SetError(previous);
        }
        var line = Assert.Single(error.ToString().Trim().Split('\n'));
        Assert.Contains(expected, line);
    }
}
