using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Documents;
using Romana.Host.Ipam;
using Romana.Host.Routing;
using Romana.Host.Simulation;

namespace Romana.Actors.Tests.Documents;

/// <summary>
/// Every count of a document is bounded by what its topology can hold and by the limits of <see cref="DocumentLimits"/>, and
/// refused when read (one line: the path and the value), before any work starts.
/// </summary>
public class DocumentBoundsTests
{
    private const string OneSubnet = """
        "podCidr": "100.64.0.0/16", "blockPrefixLength": 26,
        "zones": [{"name": "z", "subnets": [{"id": "s", "cidr": "10.0.0.0/24", "routeTable": "r"}]}]
        """;

    private static string Cluster(string nodes, string topology = OneSubnet, string more = "") =>
        $$"""{ {{topology}}, "nodes": [{{nodes}}]{{more}} }""";

    private static string Node(string name, int pods, string ip = "10.0.0.5", string subnet = "s") =>
        $$"""{"name": "{{name}}", "subnet": "{{subnet}}", "ip": "{{ip}}", "eni": "eni-{{name}}", "pods": {{pods}}}""";

    private static string ErrorOf(string json) =>
        Assert.Throws<ClusterFileException>(() => ClusterFileReader.Parse(json, "cluster.json")).Message;

    private static readonly string SmallCluster =
        File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "small-single-zone.json"));

    private static string ScenarioError(string events, string until = "\"30s\"", string more = "") =>
        Assert.Throws<ScenarioException>(() => ScenarioReader.Parse(
            $$"""{"cluster": {{SmallCluster}}, "events": [{{events}}], "until": {{until}}{{more}}}""", "scenario.json")).Message;

    [Fact]
    public void A_node_with_more_pods_than_its_subnet_holds_is_refused_naming_the_path_and_the_value() =>
        Assert.Equal("cluster.json: $.nodes[0].pods = 2147483647: more than the 65,536 pods a node may have " +
            "(the addresses of a /16, the largest block)", ErrorOf(Cluster(Node("n", int.MaxValue))));

    [Fact]
    public void A_node_with_more_pods_than_its_subnets_pod_prefix_holds_is_refused() =>
        Assert.Equal("cluster.json: $.nodes[0].pods = 20000: more than subnet s's pod prefix 100.64.0.0/18 holds (16,384 addresses)",
            ErrorOf(Cluster(Node("n", 20_000), OneSubnet.Replace("100.64.0.0/16", "100.64.0.0/18"))));

    [Fact]
    public void Nodes_that_together_need_more_blocks_than_their_subnet_has_are_refused_at_the_first_that_does_not_fit() =>
        Assert.Equal("cluster.json: $.nodes[2].pods = 1: subnet s's pod prefix 100.64.0.0/24 has 4 blocks of /26, " +
            "and its nodes up to this one need 5",
            ErrorOf(Cluster($"{Node("a", 128, "10.0.0.5")}, {Node("b", 100, "10.0.0.6")}, {Node("c", 1, "10.0.0.7")}",
                OneSubnet.Replace("100.64.0.0/16", "100.64.0.0/24"))));

    [Fact]
    public void More_pods_than_a_cluster_may_hold_are_refused_at_the_node_that_goes_over()
    {
        var nodes = string.Join(", ", Enumerable.Range(0, 20).Select(i => Node($"n{i}", 60_000, $"10.0.0.{10 + i}")));
        Assert.Equal("cluster.json: $.nodes[16].pods = 60000: the cluster's nodes up to this one hold 1,020,000 pods, " +
            "more than the 1,000,000 a cluster file may hold", ErrorOf(Cluster(nodes, OneSubnet.Replace("/16\", \"blockPrefixLength\": 26",
                "/10\", \"blockPrefixLength\": 16"))));
    }

    [Fact]
    public void Two_nodes_with_one_ip_are_refused() =>
        Assert.Equal("cluster.json: $.nodes[1].ip = \"10.0.0.5\": also the IP of node a ($.nodes[0].ip)",
            ErrorOf(Cluster($"{Node("a", 1)}, {Node("b", 1)}")));

    [Theory]
    [InlineData(", \"routeLimit\": 1001", "$.routeLimit = 1001: more than 1,000, the most routes an EC2 route table can hold")]
    [InlineData(", \"routeTables\": [{\"id\": \"r\", \"foreignRoutes\": 5000}]",
        "$.routeTables[0].foreignRoutes = 5000: more than 1,000, the most routes an EC2 route table can hold")]
    public void Route_limits_beyond_what_ec2_allows_are_refused(string more, string expected) =>
        Assert.Equal($"cluster.json: {expected}", ErrorOf(Cluster(Node("n", 1), more: more)));

    [Fact]
    public void A_name_longer_than_kubernetes_allows_is_refused_and_quoted_shortened()
    {
        var name = new string('n', 300);
        var error = ErrorOf(Cluster(Node(name, 1)));
        Assert.Equal($"cluster.json: $.nodes[0].name = \"{new string('n', 99)}… (302 characters): longer than 253 characters", error);
    }

    [Fact]
    public void A_long_unknown_field_name_is_shortened_in_the_path()
    {
        var error = ErrorOf(Cluster(Node("n", 1), more: $", \"{new string('x', 5000)}\": 1"));
        Assert.StartsWith($"cluster.json: $.{new string('x', 98)}… (5,002 characters) = 1: unknown field", error);
        Assert.True(error.Length < 400, error);
    }

    [Fact]
    public void A_document_larger_than_64_MiB_is_refused_before_it_is_read()
    {
        using var folder = new TempFolder();
        var path = Path.Combine(folder.Path, "huge.json");
        using (var file = File.Create(path)) file.SetLength(DocumentLimits.LargestDocumentBytes + 1);
        Assert.Equal($"{path}: 67,108,865 bytes, more than the 64 MiB a document may be",
            Assert.Throws<ClusterFileException>(() => ClusterFileReader.Read(path)).Message);
        Assert.Equal($"{path}: 67,108,865 bytes, more than the 64 MiB a document may be",
            Assert.Throws<ScenarioException>(() => ScenarioReader.Read(path)).Message);
        Assert.Equal($"{path}: 67,108,865 bytes, more than the 64 MiB a document may be",
            Assert.Throws<VectorFormatException>(() => ConformanceVectorReader.Read(path)).Message);
    }

    [Theory]
    [InlineData("\"10000000m\"", "$.until = \"10000000m\": longer than 60 minutes, the most a simulation may run")]
    [InlineData("\"99999999999999999999999999999m\"",
        "$.until = \"99999999999999999999999999999m\": longer than 60 minutes, the most a simulation may run")]
    public void A_simulation_longer_than_an_hour_is_refused(string until, string expected) =>
        Assert.Equal($"scenario.json: {expected}", ScenarioError("", until));

    [Fact]
    public void An_ec2_fault_that_outlasts_the_simulation_is_refused() =>
        Assert.Equal("scenario.json: $.events[0].for = \"90s\": lasts beyond until (30s)",
            ScenarioError("""{"at": "5s", "ec2": "throttle", "for": "90s"}"""));

    [Fact]
    public void More_events_than_a_simulation_may_have_are_refused()
    {
        var events = string.Join(", ", Enumerable.Repeat("""{"at": "1s", "restartRouteManager": true}""", 10_001));
        var error = ScenarioError(events);
        Assert.StartsWith("scenario.json: $.events = [{\"at\":\"1s\",\"restartRouteManager\":true}", error);
        Assert.EndsWith(": 10,001 events, more than the 10,000 a simulation may have", error);
    }

    [Theory]
    [InlineData("{\"probeIntervalMs\": 1}", "$.health.probeIntervalMs = 1: must lie between 50 and 60000")]
    [InlineData("{\"probeIntervalMs\": 600000}", "$.health.probeIntervalMs = 600000: must lie between 50 and 60000")]
    [InlineData("{\"failureThreshold\": 1000}", "$.health.failureThreshold = 1000: must lie between 1 and 100")]
    public void Health_settings_that_a_simulation_cannot_run_are_refused(string health, string expected) =>
        Assert.Equal($"scenario.json: {expected}", ScenarioError("", more: $", \"health\": {health}"));

    [Fact]
    public void A_node_added_by_an_event_counts_against_its_subnet()
    {
        var error = ScenarioError("""
            {"at": "5s", "addNode": {"name": "x", "subnet": "subnet-0a1", "ip": "10.0.0.99", "eni": "eni-x", "pods": 70000}}
            """);
        Assert.Equal("scenario.json: $.events[0].addNode.pods = 70000: more than the 65,536 pods a node may have " +
            "(the addresses of a /16, the largest block)", error);
    }

    [Fact]
    public void An_event_that_fails_and_recovers_at_once_is_malformed() =>
        Assert.EndsWith(": names fail and recover: one event per entry",
            ScenarioError("""{"at": "5s", "fail": "subnet-0a1-node-01", "recover": "subnet-0a1-node-01"}"""));

    [Fact]
    public void A_vector_with_more_steps_than_a_vector_may_have_is_refused()
    {
        var steps = string.Join(", ", Enumerable.Repeat("""{"op": "prefixes", "expect": {}}""", 100_001));
        var error = Assert.Throws<VectorFormatException>(() => ConformanceVectorReader.Parse($$"""
            {"name": "big",
             "topology": {"podCidr": "10.0.0.0/16", "blockPrefixLength": 24, "zones": [{"name": "z", "subnets": [{"id": "s"}]}]},
             "steps": [{{steps}}]}
            """, "big.json"));
        Assert.EndsWith(": 100,001 steps, more than the 100,000 a vector may have", error.Message);
    }
}
