using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Routing;
using Romana.Host.Simulation;

namespace Romana.Actors.Tests.Documents;

/// <summary>Scenarios: the examples load, and a mistake anywhere, in the cluster or in an event, names its path and value.</summary>
public class ScenarioDocumentTests
{
    private static readonly string Cluster =
        File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "small-single-zone.json"));

    private static string Scenario(string events, string until = "\"30s\"", string more = "") =>
        $$"""{"cluster": {{Cluster}}, "events": [{{events}}], "until": {{until}}{{more}}}""";

    private static string ErrorOf(string json) =>
        Assert.Throws<ScenarioException>(() => ScenarioReader.Parse(json, "scenario.json")).Message;

    [Fact]
    public void The_example_scenarios_load_with_every_kind_of_event()
    {
        var folder = Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "scenarios");
        var failure = ScenarioReader.Read(Path.Combine(folder, "forwarder-failure.json"));
        Assert.Equal([typeof(ScenarioEvent.Fail), typeof(ScenarioEvent.Recover)], failure.Events.Select(e => e.GetType()));
        Assert.Equal(TimeSpan.FromSeconds(40), failure.Until);
        Assert.Equal(new ScenarioHealth(TimeSpan.FromMilliseconds(500), 3, 3), failure.Health);

        var day = ScenarioReader.Read(Path.Combine(folder, "three-zones-day.json"));
        Assert.Equal(9, day.Events.Count);
        Assert.Equal(TimeSpan.FromSeconds(10.4), day.Events[1].At);
        Assert.Equal(TimeSpan.FromSeconds(5), Assert.Single(day.Events.OfType<ScenarioEvent.ThrottleEc2>()).For);
        Assert.Single(day.Events.OfType<ScenarioEvent.RestartRouteManager>());
        var added = Assert.Single(day.Events.OfType<ScenarioEvent.AddNode>()).Node;
        Assert.Equal(new ClusterNode("subnet-0b2-node-99", "subnet-0b2", "10.0.48.99", "eni-late0b2", "i-late", 40, true), added);
        Assert.Equal("subnet-0c1-node-02", Assert.Single(day.Events.OfType<ScenarioEvent.RemoveNode>()).Node);
    }

    [Theory]
    [InlineData("""{"at": "5s", "explode": true}""",
        "$.events[0].explode = true: unknown field (known: at, fail, failForwarder, recover, addNode, removeNode, ec2, for, "
        + "restartRouteManager)")]
    [InlineData("""{"at": "5s"}""",
        "$.events[0] = {\"at\":\"5s\"}: names no event: expected one of fail, failForwarder, recover, addNode, removeNode, ec2, "
        + "restartRouteManager")]
    [InlineData("""{"at": "5s", "fail": "subnet-0a1-node-01", "recover": "subnet-0a1-node-02"}""",
        "$.events[0] = {\"at\":\"5s\",\"fail\":\"subnet-0a1-node-01\",\"recover\":\"subnet-0a1-node-02\"}: " +
        "names fail and recover: one event per entry")]
    [InlineData("""{"fail": "subnet-0a1-node-01"}""", "$.events[0].at: missing")]
    [InlineData("""{"at": 5, "fail": "subnet-0a1-node-01"}""", "$.events[0].at = 5: expected a string")]
    [InlineData("""{"at": "-5s", "fail": "subnet-0a1-node-01"}""", "$.events[0].at = \"-5s\": not a time such as 500ms, 20s or 2m")]
    [InlineData("""{"at": "50s", "fail": "subnet-0a1-node-01"}""", "$.events[0].at = \"50s\": after until (30s)")]
    [InlineData("""{"at": "5s", "fail": "subnet-0a1-node-01", "for": "2s"}""",
        "$.events[0].for = \"2s\": only an ec2 event lasts for a time")]
    [InlineData("""{"at": "5s", "ec2": "throttle"}""", "$.events[0].for: missing")]
    [InlineData("""{"at": "5s", "restartRouteManager": false}""", "$.events[0].restartRouteManager = false: must be true")]
    [InlineData("""{"at": "5s", "restartRouteManager": "yes"}""", "$.events[0].restartRouteManager = \"yes\": expected true or false")]
    [InlineData("""{"at": "5s", "removeNode": "subnet-0a1-node-01"}, {"at": "6s", "fail": "subnet-0a1-node-01"}""",
        "$.events[1].fail = \"subnet-0a1-node-01\": unknown node (not in the cluster, or removed by an earlier event)")]
    [InlineData("""{"at": "5s", "addNode": {"name": "subnet-0a1-node-01", "subnet": "subnet-0a1", "ip": "10.0.0.99", "eni": "eni-x"}}""",
        "$.events[0].addNode.name = \"subnet-0a1-node-01\": appears twice (first at $.cluster.nodes[0].name)")]
    [InlineData("""{"at": "5s", "addNode": {"name": "x", "subnet": "subnet-0a1", "ip": "10.0.0.99", "eni": "eni-x", "pods": -3}}""",
        "$.events[0].addNode.pods = -3: must be 0 or more")]
    [InlineData("""{"at": "5s", "addNode": "x"}""", "$.events[0].addNode = \"x\": expected an object")]
    public void A_bad_event_is_named_by_its_path_and_value(string events, string expected) =>
        Assert.Equal($"scenario.json: {expected}", ErrorOf(Scenario(events)));

    [Fact]
    public void A_node_removed_and_added_again_is_known_again()
    {
        var scenario = ScenarioReader.Parse(Scenario("""
            {"at": "5s", "removeNode": "subnet-0a1-node-01"},
            {"at": "6s", "addNode": {"name": "subnet-0a1-node-01", "subnet": "subnet-0a1", "ip": "10.0.0.10", "eni": "eni-again"}},
            {"at": "7s", "fail": "subnet-0a1-node-01"}
            """));
        Assert.Equal(3, scenario.Events.Count);
    }

    [Theory]
    [InlineData("""{"events": [], "until": "30s"}""", "$.cluster: missing")]
    [InlineData("""{"cluster": {}, "events": [], "until": "30s"}""", "$.cluster.podCidr: missing")]
    public void A_bad_cluster_is_named_by_its_path_inside_the_scenario(string json, string expected) =>
        Assert.Equal($"scenario.json: {expected}", ErrorOf(json));

    [Theory]
    [InlineData("", "\"30s\"", ", \"health\": {\"failureThreshold\": 0}", "$.health.failureThreshold = 0: must lie between 1 and 100")]
    [InlineData("", "\"30s\"", ", \"health\": {\"probeInterval\": 500}",
        "$.health.probeInterval = 500: unknown field (known: probeIntervalMs, failureThreshold, recoveryThreshold)")]
    [InlineData("", "\"soon\"", "", "$.until = \"soon\": not a time such as 500ms, 20s or 2m")]
    [InlineData("", "null", "", "$.until = null: missing")]
    public void A_bad_setting_is_named_by_its_path_and_value(string events, string until, string more, string expected) =>
        Assert.Equal($"scenario.json: {expected}", ErrorOf(Scenario(events, until, more)));

    [Fact]
    public void Events_that_are_not_a_list_or_not_json_are_named()
    {
        Assert.Equal("scenario.json: $.events = {}: expected an array",
            ErrorOf($$"""{"cluster": {{Cluster}}, "events": {}, "until": "30s"}"""));
        var error = ErrorOf(Scenario("""{"at": 5s}"""));
        Assert.Matches("""^scenario\.json: \$\.events\[0\]\.at: not valid JSON at line \d+, column \d+, near '.*"at": 5s""", error);
    }

    [Fact]
    public void A_scenario_file_names_itself_in_errors()
    {
        using var folder = new TempFolder();
        var file = folder.Write("bad.json", Scenario("""{"at": "5s", "fail": "nobody"}"""));
        var error = Assert.Throws<ScenarioException>(() => ScenarioReader.Read(file));
        Assert.StartsWith($"{file}: $.events[0].fail = \"nobody\": ", error.Message);
    }

    [Fact]
    public void The_built_in_scenario_is_checked_as_a_document()
    {
        var cluster = BuiltInScenario.Cluster(2);
        var scenario = BuiltInScenario.Scenario(cluster, [(5, "fail", "subnet-a1-node-000"), (9.5, "recover", "subnet-a1-node-000")], 30);
        Assert.Equal([TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(9.5)], scenario.Events.Select(e => e.At));
        var error = Assert.Throws<ScenarioException>(() => BuiltInScenario.Scenario(cluster, [(5, "fail", "nobody")], 30));
        Assert.StartsWith("$.events[0].fail = \"nobody\": unknown node", error.Message);
    }
}
