using System.Text.Json.Nodes;
using Romana.Actors.Tests.Support;
using Romana.Host.Ipam;

namespace Romana.Actors.Tests.Documents;

/// <summary>Conformance vectors: every shared vector loads as written; a malformed one names the file, the path and the value.</summary>
public class ConformanceVectorDocumentTests
{
    private const string Topology = """
        "topology": {"podCidr": "10.0.0.0/30", "blockPrefixLength": 30, "zones": [{"name": "z", "subnets": [{"id": "s"}]}]}
        """;

    private static string WithSteps(string steps) => $$"""{"name": "x", {{Topology}}, "steps": [{{steps}}]}""";

    private static string ErrorOf(string json) =>
        Assert.Throws<VectorFormatException>(() => ConformanceVectorReader.Parse(json, "v.json")).Message;

    [Fact]
    public void Every_shared_vector_loads_with_all_its_steps()
    {
        var files = Directory.GetFiles(Paths.IpamVectors, "*.json");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var vector = ConformanceVectorReader.Read(file);
            var written = JsonNode.Parse(File.ReadAllText(file))!;
            Assert.Equal(written["name"]!.GetValue<string>(), vector.Name);
            Assert.Equal(written["steps"]?.AsArray().Count ?? 0, vector.Steps.Count);
            Assert.All(vector.Steps, (step, i) =>
                Assert.True(JsonNode.DeepEquals(written["steps"]![i]!["expect"], step.Expect), step.Describe()));
        }
    }

    [Fact]
    public void A_step_keeps_its_fields_in_the_order_of_its_op()
    {
        var vector = ConformanceVectorReader.Parse(WithSteps("""
            {"op": "addNode", "ip": "192.168.0.1", "subnet": "s", "node": "n", "expect": "ok"},
            {"op": "release", "address": "10.0.0.1", "expect": "error:not-found"},
            {"op": "prefixes", "expect": {"z": "10.0.0.0/30", "s": "10.0.0.0/30"}}
            """), "v.json");
        Assert.Equal(["addNode node=n subnet=s ip=192.168.0.1", "release address=10.0.0.1", "prefixes"],
            vector.Steps.Select(s => s.Describe()));
        Assert.Equal([1, 2, 3], vector.Steps.Select(s => s.Number));
        Assert.Equal("ok", vector.ExpectLoad);
        Assert.Equal("v.json", vector.File);
    }

    [Theory]
    [InlineData("""{"op": "fly", "expect": "ok"}""",
        "$.steps[0].op = \"fly\": unknown op (known: addNode, removeNode, allocate, release, reserve, unreserve, blocks, prefixes)")]
    [InlineData("""{"op": "allocate", "node": "n", "expect": "ok"}""", "$.steps[0].key: missing")]
    [InlineData("""{"op": "allocate", "node": "n", "key": "k", "subnet": "s", "expect": "ok"}""",
        "$.steps[0].subnet = \"s\": not a field of allocate (it takes: node, key)")]
    [InlineData("""{"op": "prefixes", "node": "n", "expect": {}}""", "$.steps[0].node = \"n\": not a field of prefixes (it takes: none)")]
    [InlineData("""{"op": "release", "key": "k", "address": "10.0.0.1", "expect": "ok"}""",
        "$.steps[0] = {\"op\":\"release\",\"key\":\"k\",\"address\":\"10.0.0.1\",\"expect\":\"ok\"}: " +
        "release needs exactly one of 'key' and 'address'")]
    [InlineData("""{"op": "blocks", "node": "n"}""", "$.steps[0].expect: missing")]
    [InlineData("""{"op": "blocks", "node": 7, "expect": []}""", "$.steps[0].node = 7: expected a string")]
    [InlineData("""{"op": "blocks", "node": "n", "expect": [], "comment": "why"}""",
        "$.steps[0].comment = \"why\": unknown field (known: op, node, subnet, ip, key, address, cidr, expect)")]
    public void A_bad_step_is_named_by_its_path_and_value(string step, string expected) =>
        Assert.Equal($"v.json: {expected}", ErrorOf(WithSteps(step)));

    [Theory]
    [InlineData("""{"name": "x", "steps": []}""", "$.topology: missing")]
    [InlineData("""{"name": "x", "topology": {"podCidr": "10.0.0.0/30", "blockPrefixLength": "30", "zones": []}}""",
        "$.topology.blockPrefixLength = \"30\": expected an integer")]
    [InlineData("""{"name": "x", "topology": {"podCidr": "10.0.0.0/30", "blockPrefixLength": 30, "zones": [{"name": "z"}]}}""",
        "$.topology.zones[0].subnets: missing")]
    [InlineData("""{"name": "x", "topology": {"podCidr": "10.0.0.0/30", "blockPrefixLength": 30, "zones": []}, "expectLoad": "error"}""",
        "$.expectLoad = \"error\": neither \"ok\" nor \"error:invalid\"")]
    [InlineData("""{"name": "x", "tags": ["a"], "topology": {"podCidr": "10.0.0.0/30", "blockPrefixLength": 30, "zones": []}}""",
        "$.tags = [\"a\"]: unknown field (known: name, from, note, topology, expectLoad, steps)")]
    [InlineData("""{"topology": {"podCidr": "10.0.0.0/30", "blockPrefixLength": 30, "zones": []}}""", "$.name: missing")]
    public void A_bad_vector_is_named_by_its_path_and_value(string json, string expected) =>
        Assert.Equal($"v.json: {expected}", ErrorOf(json));

    [Fact]
    public void What_only_the_run_can_judge_is_left_to_the_run()
    {
        // A block prefix of 33 and an empty zone name are outcomes to compare ("expectLoad"), not malformed vectors.
        var vector = ConformanceVectorReader.Parse("""
            {"name": "x", "topology": {"podCidr": "10.0.0.0/8", "blockPrefixLength": 33, "zones": [{"name": "", "subnets": [{"id": "s"}]}]},
             "expectLoad": "error:invalid"}
            """, "v.json");
        Assert.Equal(33, vector.Topology.BlockPrefixLength);
        Assert.Empty(vector.Steps);
    }

    [Fact]
    public void Text_that_is_not_json_names_the_path_and_the_position()
    {
        var error = ErrorOf("{\"name\": \"x\",\n \"steps\": [{\"op\": \"blocks\", \"node\": \"n\", \"expect\": [\"10.0.0.0/30\",]}]}");
        Assert.StartsWith("v.json: $.steps[0].expect: not valid JSON at line 2, column ", error);
        Assert.Contains("trailing comma", error);
    }
}
