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
    /// <summary>The node that forwards the subnet's route at that moment fails (a scenario cannot know it in advance).</summary>
    public sealed record FailForwarder(TimeSpan At, int Index, string Subnet) : ScenarioEvent(At, Index);
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
    private static readonly string[] Kinds = ["fail", "failForwarder", "recover", "addNode", "removeNode", "ec2", "restartRouteManager"];

    public static Scenario Read(string path) => Parse(DocumentFile.ReadText(path, message => new ScenarioException(message)), path);

    /// <summary>The text of a scenario; <paramref name="source"/> names it in errors.</summary>
    public static Scenario Parse(string json, string? source = null) =>
        DocumentReader.Read(json, source, DocumentJson.Default.ScenarioDocument, Check, error => new ScenarioException(error));

    public static Scenario Parse(JsonObject root) => Parse(root.ToJsonString());

    /// <summary>A scenario built in code (the built-in one, benchmarks), checked as if it had been read.</summary>
    public static Scenario FromDocument(ScenarioDocument document) =>
        DocumentReader.Check(document, DocumentJson.Default.ScenarioDocument, Check, error => new ScenarioException(error));

    private static Scenario Check(ScenarioDocument document)
    {
        var cluster = ClusterFileReader.Check(Present(document.Cluster, "$.cluster"), "$.cluster", DocumentLimits.MostSimulatedNodes,
            "a simulation", out var capacity);
        var health = document.Health is { } h
            ? new ScenarioHealth(
                h.ProbeIntervalMs is { } ms
                    ? TimeSpan.FromMilliseconds(Between(ms, DocumentLimits.ShortestProbeIntervalMs, DocumentLimits.LongestProbeIntervalMs,
                        "$.health.probeIntervalMs"))
                    : null,
                h.FailureThreshold is { } failures
                    ? Between(failures, 1, DocumentLimits.MostProbeThreshold, "$.health.failureThreshold")
                    : null,
                h.RecoveryThreshold is { } recoveries
                    ? Between(recoveries, 1, DocumentLimits.MostProbeThreshold, "$.health.recoveryThreshold")
                    : null)
            : null;
        var longest = DocumentLimits.LongestSimulation;
        var until = Time(document.Until, "$.until", longest,
            $"longer than {longest.TotalMinutes:0} minutes, the most a simulation may run");
        if (document.Events?.Count > DocumentLimits.MostEvents)
            throw Problem("$.events",
                $"{document.Events.Count:N0} events, more than the {DocumentLimits.MostEvents:N0} a simulation may have");

        // Nodes are known in list order: an event may name a node added by an earlier entry, not one removed by it.
        var known = cluster.Nodes.Select((n, i) => (n.Name, Path: $"$.cluster.nodes[{i}].name")).ToDictionary(n => n.Name, n => n.Path);
        var events = new List<ScenarioEvent>();
        foreach (var (e, at) in Objects(document.Events, "$.events"))
        {
            var index = events.Count;
            var time = Time(e.At, $"{at}.at", until, $"after until ({document.Until})");
            var named = new (string Kind, bool Given)[]
            {
                ("fail", e.Fail is not null), ("failForwarder", e.FailForwarder is not null), ("recover", e.Recover is not null),
                ("addNode", e.AddNode is not null),
                ("removeNode", e.RemoveNode is not null), ("ec2", e.Ec2 is not null),
                ("restartRouteManager", e.RestartRouteManager is not null),
            }.Where(k => k.Given).Select(k => k.Kind).ToList();
            if (named.Count == 0) throw Problem(at, $"names no event: expected one of {string.Join(", ", Kinds)}");
            if (named.Count > 1) throw Problem(at, $"names {string.Join(" and ", named)}: one event per entry");
            if (e.For is not null && e.Ec2 is null) throw Problem($"{at}.for", "only an ec2 event lasts for a time");
            events.Add(named[0] switch
            {
                "fail" => new ScenarioEvent.Fail(time, index, Known(e.Fail, $"{at}.fail", known)),
                "failForwarder" =>
                    new ScenarioEvent.FailForwarder(time, index, KnownSubnet(e.FailForwarder, $"{at}.failForwarder", cluster)),
                "recover" => new ScenarioEvent.Recover(time, index, Known(e.Recover, $"{at}.recover", known)),
                "removeNode" => RemoveNode(time, index, Known(e.RemoveNode, $"{at}.removeNode", known), known, capacity),
                "addNode" => AddNode(time, index, e.AddNode!, $"{at}.addNode", cluster, known, capacity),
                "ec2" => Ec2(time, index, e, at, until - time, document.Until),
                _ => e.RestartRouteManager == true
                    ? new ScenarioEvent.RestartRouteManager(time, index)
                    : throw Problem($"{at}.restartRouteManager", "must be true"),
            });
        }
        return new Scenario(cluster, health, [.. events.OrderBy(e => e.At).ThenBy(e => e.Index)], until);
    }

    private static ScenarioEvent RemoveNode(TimeSpan time, int index, string node, Dictionary<string, string> known,
        ClusterCapacity capacity)
    {
        known.Remove(node);
        capacity.Remove(node);
        return new ScenarioEvent.RemoveNode(time, index, node);
    }

    /// <summary>
    /// The node is written as in the cluster file, checked by the cluster file's own rules, and counted with the nodes
    /// there at that point of the list.
    /// </summary>
    private static ScenarioEvent AddNode(TimeSpan time, int index, ClusterNodeDocument node, string at, ClusterFile cluster,
        Dictionary<string, string> known, ClusterCapacity capacity) =>
        new ScenarioEvent.AddNode(time, index, ClusterFileReader.Node(node, at, cluster.Subnets, known, capacity));

    /// <summary>A fault lasts no longer than the run has left (<paramref name="left"/>).</summary>
    private static ScenarioEvent Ec2(TimeSpan time, int index, ScenarioEventDocument e, string at, TimeSpan left, string? until) =>
        e.Ec2 == "throttle"
            ? new ScenarioEvent.ThrottleEc2(time, index, Time(e.For, $"{at}.for", left, $"lasts beyond until ({until})"))
            : throw Problem($"{at}.ec2", "not a known EC2 fault (throttle)");

    private static string Known(string? node, string path, Dictionary<string, string> known) =>
        known.ContainsKey(Name(node, path))
            ? node!
            : throw Problem(path, "unknown node (not in the cluster, or removed by an earlier event)");

    private static string KnownSubnet(string? subnet, string path, ClusterFile cluster) =>
        cluster.Subnets.Any(s => s.Id == Name(subnet, path))
            ? subnet!
            : throw Problem(path, "unknown subnet (not in the cluster)");

    /// <summary>"90s", "500ms", "1.5s", "2m", in milliseconds (a double: a time too long for a TimeSpan is still read).</summary>
    public static bool TryParseMilliseconds(string text, out double milliseconds)
    {
        var match = TimePattern().Match(text);
        milliseconds = 0;
        if (!match.Success) return false;
        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        milliseconds = match.Groups[2].Value switch
        {
            "ms" => value,
            "s" => value * 1000,
            _ => value * 60_000,
        };
        return true;
    }

    /// <summary>A time no longer than <paramref name="longest"/>; a longer one is refused with <paramref name="tooLong"/>.</summary>
    private static TimeSpan Time(string? text, string path, TimeSpan longest, string tooLong)
    {
        if (!TryParseMilliseconds(Text(text, path), out var milliseconds)) throw Problem(path, "not a time such as 500ms, 20s or 2m");
        return milliseconds <= longest.TotalMilliseconds ? TimeSpan.FromMilliseconds(milliseconds) : throw Problem(path, tooLong);
    }

    [GeneratedRegex(@"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$")]
    private static partial Regex TimePattern();
}
