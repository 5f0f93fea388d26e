using System.Text.Json.Nodes;
using Romana.Actors.Topology;
using Romana.Host.Documents;
using static Romana.Host.Documents.DocumentChecks;

namespace Romana.Host.Ipam;

/// <summary>One IPAM conformance vector (shared/conformance/ipam/*.json): a topology and steps with expected outcomes.</summary>
public sealed record ConformanceVector(string Name, string File, TopologySpec Topology, string ExpectLoad, IReadOnlyList<VectorStep> Steps);

/// <summary>One step: the operation, its fields as given, and the expected outcome as JSON.</summary>
public sealed record VectorStep(int Number, string Op, IReadOnlyDictionary<string, string> Fields, JsonNode Expect)
{
    public string Describe() => Fields.Count == 0 ? Op : $"{Op} {string.Join(' ', Fields.Select(f => $"{f.Key}={f.Value}"))}";
}

/// <summary>A vector file that cannot be read; the message names the file, the JSON path and the value.</summary>
public sealed class VectorFormatException : DocumentException
{
    public VectorFormatException(DocumentError error) : base(error)
    {
    }

    /// <summary>A refusal with no place in the file: the file itself (too large).</summary>
    public VectorFormatException(string message) : base(message)
    {
    }
}

/// <summary>
/// Reads a <see cref="ConformanceVectorDocument"/>. Only the shape is checked (the fields each op takes, and no
/// others): whether the topology or a step makes sense is the outcome the vector expects from the run.
/// </summary>
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

    public static ConformanceVector Read(string file) =>
        Parse(DocumentFile.ReadText(file, message => new VectorFormatException(message)), file);

    /// <summary>The text of a vector; <paramref name="file"/> names it in errors and in the vector.</summary>
    public static ConformanceVector Parse(string json, string file) =>
        DocumentReader.Read(json, file, DocumentJson.Default.ConformanceVectorDocument, d => Check(d, file),
            error => new VectorFormatException(error));

    private static ConformanceVector Check(ConformanceVectorDocument vector, string file)
    {
        var name = Present(vector.Name, "$.name");
        var topology = Present(vector.Topology, "$.topology");
        var zones = Objects(topology.Zones, "$.topology.zones").Select(z => new ZoneSpec(
            Present(z.Item.Name, $"{z.Path}.name"),
            [.. Objects(z.Item.Subnets, $"{z.Path}.subnets")
                .Select(s => new SubnetSpec(Present(s.Item.Id, $"{s.Path}.id"), s.Item.PodPrefix))],
            z.Item.PodPrefix)).ToList();
        var spec = new TopologySpec(Present(topology.PodCidr, "$.topology.podCidr"),
            Present(topology.BlockPrefixLength, "$.topology.blockPrefixLength"), zones);

        var expectLoad = vector.ExpectLoad ?? "ok";
        if (expectLoad is not ("ok" or "error:invalid")) throw Problem("$.expectLoad", "neither \"ok\" nor \"error:invalid\"");

        if (vector.Steps?.Count > DocumentLimits.MostVectorSteps)
            throw Problem("$.steps", $"{vector.Steps.Count:N0} steps, more than the {DocumentLimits.MostVectorSteps:N0} a vector may have");
        var steps = vector.Steps is null ? [] : Objects(vector.Steps, "$.steps").Select((s, i) => Step(s.Item, s.Path, i)).ToList();
        return new ConformanceVector(name, file, spec, expectLoad, steps);
    }

    private static VectorStep Step(VectorStepDocument step, string at, int index)
    {
        var op = Present(step.Op, $"{at}.op");
        if (!FieldsByOp.TryGetValue(op, out var required))
            throw Problem($"{at}.op", $"unknown op (known: {string.Join(", ", FieldsByOp.Keys)})");
        var given = new Dictionary<string, string?>
        {
            ["node"] = step.Node, ["subnet"] = step.Subnet, ["ip"] = step.Ip, ["key"] = step.Key, ["address"] = step.Address,
            ["cidr"] = step.Cidr,
        };
        var fields = required.ToDictionary(f => f, f => Present(given[f], $"{at}.{f}"));
        var takes = op == "release" ? ["key", "address"] : required;
        if (given.FirstOrDefault(g => g.Value is not null && !takes.Contains(g.Key)) is { Key: { } extra })
            throw Problem($"{at}.{extra}", $"not a field of {op} (it takes: {(takes.Length == 0 ? "none" : string.Join(", ", takes))})");
        if (op == "release")
        {
            if ((step.Key is null) == (step.Address is null))
                throw Problem(at, "release needs exactly one of 'key' and 'address'");
            fields[step.Key is null ? "address" : "key"] = (step.Key ?? step.Address)!;
        }
        return new VectorStep(index + 1, op, fields, Present(step.Expect, $"{at}.expect"));
    }
}
