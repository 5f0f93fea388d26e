using Romana.Actors.Tests.Support;
using Romana.Host.Documents;
using Romana.Host.Routing;
using Romana.Host.Simulation;

namespace Romana.Actors.Tests.Documents;

/// <summary>Cluster files: the examples load, and every kind of mistake is one line naming the JSON path and the value.</summary>
public class ClusterFileDocumentTests
{
    private const string Zones = """
        "podCidr": "100.64.0.0/16", "blockPrefixLength": 26,
        "zones": [{"name": "z", "subnets": [{"id": "s", "cidr": "10.0.0.0/24", "routeTable": "r"}]}]
        """;

    private static string WithNodes(string nodes, string more = "") => $$"""{ {{Zones}}, "nodes": [{{nodes}}]{{more}} }""";

    private const string Node = """{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "pods": 3}""";

    private static string ErrorOf(string json) =>
        Assert.Throws<ClusterFileException>(() => ClusterFileReader.Parse(json, "cluster.json")).Message;

    [Theory]
    [InlineData("small-single-zone.json", 2, 6, 1)]
    [InlineData("one-zone-60-nodes.json", 2, 60, 2)]
    [InlineData("three-zones.json", 6, 48, 3)]
    public void Every_example_loads(string example, int subnets, int nodes, int tables)
    {
        var cluster = ClusterFileReader.Read(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", example));
        Assert.Equal(subnets, cluster.Subnets.Count);
        Assert.Equal(nodes, cluster.Nodes.Count);
        Assert.Equal(tables, cluster.RouteTables.Count);
        Assert.All(cluster.Nodes, n => Assert.True(n.Healthy));
    }

    [Fact]
    public void Defaults_fill_what_may_be_left_out()
    {
        var cluster = ClusterFileReader.Parse(WithNodes("""{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1"}"""));
        Assert.Equal(ClusterFileReader.DefaultRouteLimit, cluster.RouteLimit);
        Assert.Equal(new ClusterRouteTable("r", 0), Assert.Single(cluster.RouteTables));
        Assert.Equal(new ClusterNode("n", "s", "10.0.0.5", "eni-1", "", 0, true), Assert.Single(cluster.Nodes));
        Assert.Equal(new ClusterSubnet("s", "z", "10.0.0.0/24", "r"), Assert.Single(cluster.Subnets));
    }

    [Theory]
    // wrong types, as System.Text.Json finds them
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "pods": "3"}""",
        "$.nodes[0].pods = \"3\": expected an integer")]
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "healthy": "yes"}""",
        "$.nodes[0].healthy = \"yes\": expected true or false")]
    [InlineData("""{"name": ["n"], "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1"}""", "$.nodes[0].name = [\"n\"]: expected a string")]
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "pods": 2.5}""",
        "$.nodes[0].pods = 2.5: expected an integer")]
    [InlineData("null", "$.nodes[0] = null: expected an object")]
    // unknown and repeated fields
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "podz": 3}""",
        "$.nodes[0].podz = 3: unknown field (known: name, subnet, ip, eni, instanceId, pods, healthy)")]
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "Pods": 3}""",
        "$.nodes[0].Pods = 3: unknown field (known: name, subnet, ip, eni, instanceId, pods, healthy)")]
    [InlineData("""{"name": "n", "name": "m", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1"}""",
        "$.nodes[0].name = \"n\": appears twice in its object")]
    // missing fields and the checks of the reader
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.0.5"}""", "$.nodes[0].eni: missing")]
    [InlineData("""{"name": " ", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1"}""", "$.nodes[0].name = \" \": must not be empty")]
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "pods": -1}""",
        "$.nodes[0].pods = -1: must be 0 or more")]
    [InlineData("""{"name": "n", "subnet": "x", "ip": "10.0.0.5", "eni": "eni-1"}""",
        "$.nodes[0].subnet = \"x\": not a subnet of any zone (subnets: s)")]
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.0", "eni": "eni-1"}""", "$.nodes[0].ip = \"10.0.0\": not an IPv4 address")]
    [InlineData("""{"name": "n", "subnet": "s", "ip": "10.0.9.5", "eni": "eni-1"}""",
        "$.nodes[0].ip = \"10.0.9.5\": not inside subnet s's CIDR 10.0.0.0/24")]
    [InlineData(Node + ", " + Node, "$.nodes[1].name = \"n\": appears twice (first at $.nodes[0].name)")]
    public void A_bad_node_is_named_by_its_path_and_value(string node, string expected) =>
        Assert.Equal($"cluster.json: {expected}", ErrorOf(WithNodes(node)));

    [Theory]
    [InlineData("""{"blockPrefixLength": 26, "zones": [], "nodes": []}""", "$.podCidr: missing")]
    [InlineData("""{"podCidr": "100.64.0.0", "blockPrefixLength": 26, "zones": [], "nodes": []}""",
        "$.podCidr = \"100.64.0.0\": not an IPv4 CIDR such as 10.0.0.0/24")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "zones": [], "nodes": []}""", "$.blockPrefixLength: missing")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 40, "zones": [], "nodes": []}""",
        "$.blockPrefixLength = 40: not a prefix length (0 to 32)")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 26, "zones": {}, "nodes": []}""", "$.zones = {}: expected an array")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 26, "routeLimit": 99999999999, "zones": [], "nodes": []}""",
        "$.routeLimit = 99999999999: expected an integer from -2147483648 to 2147483647")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 26, "routeLimit": 0, "zones": [], "nodes": []}""",
        "$.routeLimit = 0: must be at least 1")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 26, "zones": [], "nodes": [], "comment": "x"}""",
        "$.comment = \"x\": unknown field (known: podCidr, blockPrefixLength, routeLimit, zones, routeTables, nodes)")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 26, "zones": [], "routeTables": [{"id": "r", "foreignRoutes": -2}]}""",
        "$.routeTables[0].foreignRoutes = -2: must be 0 or more")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 26, "zones": [], "routeTables": [{"id": "r"}, {"id": "r"}]}""",
        "$.routeTables[1].id = \"r\": appears twice (first at $.routeTables[0].id)")]
    [InlineData("[]", "$ = []: expected an object")]
    [InlineData("null", "$ = null: expected an object")]
    [InlineData("  ", "$: empty: expected a JSON document")]
    public void A_bad_field_is_named_by_its_path_and_value(string json, string expected) =>
        Assert.Equal($"cluster.json: {expected}", ErrorOf(json));

    [Theory]
    [InlineData("""{"id": "s", "cidr": "10.0.0.0/33", "routeTable": "r"}""",
        "$.zones[0].subnets[0].cidr = \"10.0.0.0/33\": not an IPv4 CIDR such as 10.0.0.0/24")]
    [InlineData("""{"id": "s", "cidr": "10.0.0.0/24", "routeTable": "r", "podPrefix": "100.64.0.0/99"}""",
        "$.zones[0].subnets[0].podPrefix = \"100.64.0.0/99\": not an IPv4 CIDR such as 10.0.0.0/24")]
    [InlineData("""{"id": "s", "cidr": "10.0.0.0/24"}""", "$.zones[0].subnets[0].routeTable: missing")]
    [InlineData("""{"id": "s", "cidr": "10.0.0.0/24", "routeTable": "r"}, {"id": "s", "cidr": "10.0.1.0/24", "routeTable": "r"}""",
        "$.zones[0].subnets[1].id = \"s\": appears twice (first at $.zones[0].subnets[0].id)")]
    public void A_bad_subnet_is_named_by_its_path_and_value(string subnets, string expected) =>
        Assert.Equal($"cluster.json: {expected}", ErrorOf($$"""
            {"podCidr": "100.64.0.0/16", "blockPrefixLength": 26, "zones": [{"name": "z", "subnets": [{{subnets}}]}], "nodes": []}
            """));

    [Theory]
    [InlineData("""{"podCidr": "100.64.0.0/16", "blockPrefixLength": 26,""", "$: not valid JSON at line 1, column ")]
    [InlineData("{\n  \"podCidr\": \"100.64.0.0/16\",\n  \"blockPrefixLength\": tru\n}",
        "$.blockPrefixLength: not valid JSON at line 3, column ")]
    [InlineData("""{"podCidr": "100.64.0.0/16", "nodes": [1,]}""", "$.nodes: not valid JSON at line 1, column ")]
    public void Text_that_is_not_json_is_named_by_the_path_and_the_line_and_column(string json, string expected)
    {
        var error = ErrorOf(json);
        Assert.StartsWith($"cluster.json: {expected}", error);
        Assert.Contains("near '", error);
        Assert.DoesNotContain("\n", error);
    }

    [Fact]
    public void A_syntax_error_early_in_a_long_file_is_still_one_short_line()
    {
        var example = File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "three-zones.json"));
        var at = example.IndexOf("\"healthy\": true", StringComparison.Ordinal);
        var error = ErrorOf(example[..at] + "\"healthy\": tru" + example[(at + "\"healthy\": true".Length)..]);
        Assert.StartsWith("cluster.json: $.nodes[0].healthy: not valid JSON at line ", error);
        Assert.DoesNotContain("\n", error);
        Assert.True(error.Length < 200, error);
    }

    [Fact]
    public void The_text_near_a_syntax_error_shows_the_bad_token()
    {
        var error = ErrorOf("{\n  \"podCidr\": \"100.64.0.0/16\",\n  \"blockPrefixLength\": tru\n}");
        Assert.Contains("tru", error[error.IndexOf("near", StringComparison.Ordinal)..]);
    }

    [Fact]
    public void A_long_value_is_shortened_in_the_message()
    {
        var node = $$"""{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "instanceIdd": "{{new string('x', 200)}}"}""";
        var error = ErrorOf(WithNodes(node));
        Assert.StartsWith($"cluster.json: $.nodes[0].instanceIdd = \"{new string('x', 99)}… (202 characters): unknown field", error);
        Assert.True(error.Length < 250, error);
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        var error = Assert.Throws<ClusterFileException>(() => ClusterFileReader.Read("/nonexistent/cluster.json"));
        Assert.Equal("/nonexistent/cluster.json: no such file", error.Message);
    }

    [Fact]
    public void A_document_built_in_code_is_checked_like_a_file()
    {
        Assert.Equal(12, ClusterFileReader.FromDocument(BuiltInScenario.Cluster(2)).Nodes.Count);
        var tooLow = BuiltInScenario.Cluster(2) with { RouteLimit = 0 };
        var error = Assert.Throws<ClusterFileException>(() => ClusterFileReader.FromDocument(tooLow));
        Assert.Equal("$.routeLimit = 0: must be at least 1", error.Message);
        Assert.Equal(new DocumentError(null, "$.routeLimit", "0", "must be at least 1"), error.Error);
    }
}
