using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Romana.Host.Documents;
using Romana.Host.Routing;
using static Romana.Host.Documents.DocumentChecks;

namespace Romana.Host.Simulation;

/// <summary>A simulated cluster and what happens to it, at virtual times.</summary>
public sealed record Scenario(ClusterFile Cluster, ScenarioHealth? Health, IReadOnlyList<ScenarioEvent> Events, TimeSpan Until);

public sealed record ScenarioHealth(TimeSpan? ProbeInterval, int? FailureThreshold, int? RecoveryThreshold);

public abstract record ScenarioEvent(TimeSpan At, int Index)
{
    public sealed record Fail(TimeSpan At, int Index, string Node) : ScenarioEvent(At, Index);
    public sealed record Recover(TimeSpan At, int Index, string Node) : ScenarioEvent(At, Index);
    public sealed record AddNode(TimeSpan At, int Index, ClusterNode Node) : ScenarioEvent(At, Index);
    public sealed record RemoveNode(TimeSpan At, int Index, string Node) : ScenarioEvent(At, Index);
    public sealed record ThrottleEc2(TimeSpan At, int Index, TimeSpan For) : ScenarioEvent(At, Index);
    public sealed record RestartRouteManager(TimeSpan At, int Index) : ScenarioEvent(At, Index);
}

/// <summary>A scenario that cannot be run; the message names the JSON path (the event) and the value.</summary>
public sealed class ScenarioException : DocumentException
{
    public ScenarioException(DocumentError error) : base(error)
    {
    }

    public ScenarioException(string message) : base(message)
    {
    }
}

/// <summary>
/// Reads a <see cref="ScenarioDocument"/> and checks it: the cluster as a cluster file is checked (at $.cluster), each
/// event names exactly one thing that happens, to a node that exists at that point of the list, no later than "until".
/// </summary>
public static partial class ScenarioReader
{
    private static readonly string[] Kinds = ["fail", "recover", "addNode", "removeNode", "ec2", "restartRouteManager"];

    public static Scenario Read(string path) =>
        File.Exists(path) ? Parse(File.ReadAllText(path), path) : throw new ScenarioException($"{path}: no such file");

    /// <summary>The text of a scenario; <paramref name="source"/> names it in errors.</summary>
    public static Scenario Parse(string json, string? source = null) =>
        DocumentReader.Read(json, source, DocumentJson.Default.ScenarioDocument, Check, error => new ScenarioException(error));

    public static Scenario Parse(JsonObject root) => Parse(root.ToJsonString());

    /// <summary>A scenario built in code (the built-in one, benchmarks), checked as if it had been read.</summary>
    public static Scenario FromDocument(ScenarioDocument document) =>
        DocumentReader.Check(document, DocumentJson.Default.ScenarioDocument, Check, error => new ScenarioException(error));

    private static Scenario Check(ScenarioDocument document)
    {
        var cluster = ClusterFileReader.Check(Present(document.Cluster, "$.cluster"), "$.cluster");
        var health = document.Health is { } h
            ? new ScenarioHealth(
                h.ProbeIntervalMs is { } ms ? TimeSpan.FromMilliseconds(AtLeast(ms, 1, "$.health.probeIntervalMs")) : null,
                h.FailureThreshold is { } failures ? AtLeast(failures, 1, "$.health.failureThreshold") : null,
                h.RecoveryThreshold is { } recoveries ? AtLeast(recoveries, 1, "$.health.recoveryThreshold") : null)
            : null;
        var until = Time(document.Until, "$.until");

        // Nodes are known in list order: an event may name a node added by an earlier entry, not one removed by it.
        var known = cluster.Nodes.Select((n, i) => (n.Name, Path: $"$.cluster.nodes[{i}].name")).ToDictionary(n => n.Name, n => n.Path);
        var events = new List<ScenarioEvent>();
        foreach (var (e, at) in Objects(document.Events, "$.events"))
        {
            var index = events.Count;
            var time = Time(e.At, $"{at}.at");
            if (time > until) throw Problem($"{at}.at", $"after until ({document.Until})");
            var named = new (string Kind, bool Given)[]
            {
                ("fail", e.Fail is not null), ("recover", e.Recover is not null), ("addNode", e.AddNode is not null),
                ("removeNode", e.RemoveNode is not null), ("ec2", e.Ec2 is not null),
                ("restartRouteManager", e.RestartRouteManager is not null),
            }.Where(k => k.Given).Select(k => k.Kind).ToList();
            if (named.Count == 0) throw Problem(at, $"names no event: expected one of {string.Join(", ", Kinds)}");
            if (named.Count > 1) throw Problem(at, $"names {string.Join(" and ", named)}: one event per entry");
            if (e.For is not null && e.Ec2 is null) throw Problem($"{at}.for", "only an ec2 event lasts for a time");
            events.Add(named[0] switch
            {
                "fail" => new ScenarioEvent.Fail(time, index, Known(e.Fail, $"{at}.fail", known)),
                "recover" => new ScenarioEvent.Recover(time, index, Known(e.Recover, $"{at}.recover", known)),
                "removeNode" => RemoveNode(time, index, Known(e.RemoveNode, $"{at}.removeNode", known), known),
                "addNode" => AddNode(time, index, e.AddNode!, $"{at}.addNode", cluster, known),
                "ec2" => Ec2(time, index, e, at),
                _ => e.RestartRouteManager == true
                    ? new ScenarioEvent.RestartRouteManager(time, index)
                    : throw Problem($"{at}.restartRouteManager", "must be true"),
            });
        }
        return new Scenario(cluster, health, [.. events.OrderBy(e => e.At).ThenBy(e => e.Index)], until);
    }

    private static ScenarioEvent RemoveNode(TimeSpan time, int index, string node, Dictionary<string, string> known)
    {
        known.Remove(node);
        return new ScenarioEvent.RemoveNode(time, index, node);
    }

    /// <summary>The node is written as in the cluster file, and checked by the cluster file's own rules.</summary>
    private static ScenarioEvent AddNode(TimeSpan time, int index, ClusterNodeDocument node, string at, ClusterFile cluster,
        Dictionary<string, string> known) =>
        new ScenarioEvent.AddNode(time, index, ClusterFileReader.Node(node, at, cluster.Subnets, known));

    private static ScenarioEvent Ec2(TimeSpan time, int index, ScenarioEventDocument e, string at) =>
        e.Ec2 == "throttle"
            ? new ScenarioEvent.ThrottleEc2(time, index, Time(e.For, $"{at}.for"))
            : throw Problem($"{at}.ec2", "not a known EC2 fault (throttle)");

    private static string Known(string? node, string path, Dictionary<string, string> known) =>
        known.ContainsKey(Text(node, path))
            ? node!
            : throw Problem(path, "unknown node (not in the cluster, or removed by an earlier event)");

    /// <summary>"90s", "500ms", "1.5s", "2m".</summary>
    public static bool TryParseTime(string text, out TimeSpan time)
    {
        var match = TimePattern().Match(text);
        time = default;
        if (!match.Success) return false;
        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        time = match.Groups[2].Value switch
        {
            "ms" => TimeSpan.FromMilliseconds(value),
            "s" => TimeSpan.FromSeconds(value),
            _ => TimeSpan.FromMinutes(value),
        };
        return true;
    }

    private static TimeSpan Time(string? text, string path) =>
        TryParseTime(Text(text, path), out var time) ? time : throw Problem(path, "not a time such as 500ms, 20s or 2m");

    [GeneratedRegex(@"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$")]
    private static partial Regex TimePattern();
}
