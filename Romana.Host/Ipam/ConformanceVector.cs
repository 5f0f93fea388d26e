using System.Text.Json;
using System.Text.Json.Nodes;
using Romana.Actors.Topology;

namespace Romana.Host.Ipam;

/// <summary>One IPAM conformance vector (shared/conformance/ipam/*.json): a topology and steps with expected outcomes.</summary>
public sealed record ConformanceVector(string Name, string File, TopologySpec Topology, string ExpectLoad, IReadOnlyList<VectorStep> Steps);

/// <summary>One step: the operation, its fields as given, and the expected outcome as JSON.</summary>
public sealed record VectorStep(int Number, string Op, IReadOnlyDictionary<string, string> Fields, JsonNode Expect)
{
    public string Describe() => Fields.Count == 0 ? Op : $"{Op} {string.Join(' ', Fields.Select(f => $"{f.Key}={f.Value}"))}";
}

/// <summary>A vector file that cannot be read; the message names the file and the field.</summary>
public sealed class VectorFormatException(string file, string field, string problem)
    : Exception($"{file}: field '{field}': {problem}");

public static class ConformanceVectorReader
{
    private static readonly Dictionary<string, string[]> FieldsByOp = new()
    {
        ["addNode"] = ["node", "subnet", "ip"],
        ["removeNode"] = ["node"],
        ["allocate"] = ["node", "key"],
        ["release"] = [],
        ["reserve"] = ["cidr"],
        ["unreserve"] = ["cidr"],
        ["blocks"] = ["node"],
        ["prefixes"] = [],
    };

    /// <summary>The vector files named: files as they are, folders by their *.json files in name order.</summary>
    public static IReadOnlyList<string> Expand(IEnumerable<string> paths) => paths.SelectMany<string, string>(path =>
        Directory.Exists(path) ? Directory.GetFiles(path, "*.json").Order(StringComparer.Ordinal)
        : File.Exists(path) ? [path]
        : throw new FileNotFoundException($"{path}: no such file or folder")).ToList();

    public static ConformanceVector Read(string file)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(file));
        }
        catch (JsonException e)
        {
            throw new VectorFormatException(file, "(document)", $"not valid JSON: {e.Message}");
        }
        if (root is not JsonObject vector) throw new VectorFormatException(file, "(document)", "expected a JSON object");

        var topology = Object(file, vector, "topology");
        var zones = Array(file, topology, "zones", "topology.zones").Select((z, i) =>
        {
            var at = $"topology.zones[{i}]";
            var zone = z as JsonObject ?? throw new VectorFormatException(file, at, "expected an object");
            var subnets = Array(file, zone, "subnets", $"{at}.subnets").Select((s, j) =>
            {
                var subnet = s as JsonObject ?? throw new VectorFormatException(file, $"{at}.subnets[{j}]", "expected an object");
                return new SubnetSpec(Text(file, subnet, "id", $"{at}.subnets[{j}].id"),
                    OptionalText(file, subnet, "podPrefix", $"{at}.subnets[{j}].podPrefix"));
            }).ToList();
            return new ZoneSpec(Text(file, zone, "name", $"{at}.name"), subnets, OptionalText(file, zone, "podPrefix", $"{at}.podPrefix"));
        }).ToList();
        var spec = new TopologySpec(Text(file, topology, "podCidr", "topology.podCidr"),
            Number(file, topology, "blockPrefixLength", "topology.blockPrefixLength"), zones);

        var expectLoad = OptionalText(file, vector, "expectLoad", "expectLoad") ?? "ok";
        if (expectLoad is not ("ok" or "error:invalid"))
            throw new VectorFormatException(file, "expectLoad", $"'{expectLoad}' is neither \"ok\" nor \"error:invalid\"");

        var steps = vector["steps"] is null ? [] : Array(file, vector, "steps", "steps").Select((s, i) => Step(file, s, i)).ToList();
        return new ConformanceVector(Text(file, vector, "name", "name"), file, spec, expectLoad, steps);
    }

    private static VectorStep Step(string file, JsonNode? node, int index)
    {
        var at = $"steps[{index}]";
        var step = node as JsonObject ?? throw new VectorFormatException(file, at, "expected an object");
        var op = Text(file, step, "op", $"{at}.op");
        if (!FieldsByOp.TryGetValue(op, out var required))
            throw new VectorFormatException(file, $"{at}.op", $"unknown op '{op}' (known: {string.Join(", ", FieldsByOp.Keys)})");
        var fields = required.ToDictionary(f => f, f => Text(file, step, f, $"{at}.{f}"));
        if (op == "release")
        {
            var key = OptionalText(file, step, "key", $"{at}.key");
            var address = OptionalText(file, step, "address", $"{at}.address");
            if ((key is null) == (address is null))
                throw new VectorFormatException(file, $"{at}.key", "release needs exactly one of 'key' and 'address'");
            fields[key is null ? "address" : "key"] = (key ?? address)!;
        }
        var expect = step["expect"] ?? throw new VectorFormatException(file, $"{at}.expect", "missing");
        return new VectorStep(index + 1, op, fields, expect.DeepClone());
    }

    private static JsonObject Object(string file, JsonObject parent, string name) =>
        parent[name] as JsonObject ?? throw new VectorFormatException(file, name, parent[name] is null ? "missing" : "expected an object");

    private static JsonArray Array(string file, JsonObject parent, string name, string path) =>
        parent[name] as JsonArray ?? throw new VectorFormatException(file, path, parent[name] is null ? "missing" : "expected an array");

    private static string Text(string file, JsonObject parent, string name, string path) =>
        OptionalText(file, parent, name, path) ?? throw new VectorFormatException(file, path, "missing");

    private static string? OptionalText(string file, JsonObject parent, string name, string path) => parent[name] switch
    {
        null => null,
        JsonValue value when value.TryGetValue<string>(out var text) => text,
        _ => throw new VectorFormatException(file, path, "expected a string"),
    };

    private static int Number(string file, JsonObject parent, string name, string path) => parent[name] switch
    {
        null => throw new VectorFormatException(file, path, "missing"),
        JsonValue value when value.TryGetValue<int>(out var number) => number,
        _ => throw new VectorFormatException(file, path, "expected an integer"),
    };
}
