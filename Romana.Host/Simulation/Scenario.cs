using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Romana.Host.Routing;

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

/// <summary>A scenario that cannot be run; the message names the event or field.</summary>
public sealed class ScenarioException(string message) : Exception(message);

public static partial class ScenarioReader
{
    public static Scenario Read(string path)
    {
        if (!File.Exists(path)) throw new ScenarioException($"{path}: no such file");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new ScenarioException($"{path}: not valid JSON: {e.Message}");
        }
        return Parse(root as JsonObject ?? throw new ScenarioException($"{path}: expected a JSON object"));
    }

    public static Scenario Parse(JsonObject root)
    {
        ClusterFile cluster;
        try
        {
            cluster = ClusterFileReader.Parse(root["cluster"] as JsonObject ?? throw new ScenarioException("field 'cluster': missing or not an object"));
        }
        catch (ClusterFileException e)
        {
            throw new ScenarioException($"cluster: {e.Message}");
        }
        var health = root["health"] is JsonObject h
            ? new ScenarioHealth(Milliseconds(h, "probeIntervalMs"), Integer(h, "failureThreshold"), Integer(h, "recoveryThreshold"))
            : null;
        var until = Time(Text(root, "until", "until"), "until");

        var known = cluster.Nodes.Select(n => n.Name).ToHashSet();
        var events = new List<ScenarioEvent>();
        var list = root["events"] as JsonArray ?? throw new ScenarioException("field 'events': missing or not an array");
        for (var i = 0; i < list.Count; i++)
        {
            var at = $"events[{i}]";
            var e = list[i] as JsonObject ?? throw new ScenarioException($"{at}: expected an object");
            var time = Time(Text(e, "at", $"{at}.at"), $"{at}.at");
            if (time > until) throw new ScenarioException($"{at}.at: {Text(e, "at", "")} is after until ({Text(root, "until", "")})");
            events.Add(e switch
            {
                _ when e["fail"] is not null => new ScenarioEvent.Fail(time, i, Node(e, "fail", at, known)),
                _ when e["recover"] is not null => new ScenarioEvent.Recover(time, i, Node(e, "recover", at, known)),
                _ when e["removeNode"] is not null => RemoveNode(e, time, i, at, known),
                _ when e["addNode"] is not null => AddNode(e, time, i, at, cluster, known),
                _ when e["ec2"] is not null => Ec2(e, time, i, at),
                _ when e["restartRouteManager"] is JsonValue v && v.TryGetValue<bool>(out var restart) && restart => new ScenarioEvent.RestartRouteManager(time, i),
                _ => throw new ScenarioException($"{at}: expected one of fail, recover, addNode, removeNode, ec2, restartRouteManager"),
            });
        }
        return new Scenario(cluster, health, [.. events.OrderBy(e => e.At).ThenBy(e => e.Index)], until);
    }

    private static ScenarioEvent RemoveNode(JsonObject e, TimeSpan time, int i, string at, HashSet<string> known)
    {
        var node = Node(e, "removeNode", at, known);
        known.Remove(node);
        return new ScenarioEvent.RemoveNode(time, i, node);
    }

    private static ScenarioEvent AddNode(JsonObject e, TimeSpan time, int i, string at, ClusterFile cluster, HashSet<string> known)
    {
        // The node is written as in the cluster file: read it with the cluster file's own rules.
        var probe = new JsonObject
        {
            ["podCidr"] = "0.0.0.0/0", ["blockPrefixLength"] = 32,
            ["zones"] = new JsonArray([.. cluster.Subnets.GroupBy(s => s.Zone).Select(z => (JsonNode)new JsonObject
            {
                ["name"] = z.Key,
                ["subnets"] = new JsonArray([.. z.Select(s => (JsonNode)new JsonObject { ["id"] = s.Id, ["cidr"] = s.Cidr, ["routeTable"] = s.RouteTable })]),
            })]),
            ["nodes"] = new JsonArray(e["addNode"]!.DeepClone()),
        };
        ClusterNode node;
        try
        {
            node = ClusterFileReader.Parse(probe).Nodes.Single();
        }
        catch (ClusterFileException error)
        {
            throw new ScenarioException($"{at}.addNode: {error.Message.Replace("nodes[0].", "")}");
        }
        if (!known.Add(node.Name)) throw new ScenarioException($"{at}.addNode: node '{node.Name}' already exists");
        return new ScenarioEvent.AddNode(time, i, node);
    }

    private static ScenarioEvent Ec2(JsonObject e, TimeSpan time, int i, string at)
    {
        var what = Text(e, "ec2", $"{at}.ec2");
        if (what != "throttle") throw new ScenarioException($"{at}.ec2: '{what}' is not a known EC2 fault (throttle)");
        return new ScenarioEvent.ThrottleEc2(time, i, Time(Text(e, "for", $"{at}.for"), $"{at}.for"));
    }

    private static string Node(JsonObject e, string field, string at, HashSet<string> known)
    {
        var node = Text(e, field, $"{at}.{field}");
        return known.Contains(node) ? node : throw new ScenarioException($"{at}.{field}: unknown node '{node}'");
    }

    /// <summary>"90s", "500ms", "1.5s", "2m".</summary>
    public static TimeSpan Time(string text, string field)
    {
        var match = TimePattern().Match(text);
        if (!match.Success) throw new ScenarioException($"{field}: '{text}' is not a time such as 500ms, 20s or 2m");
        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return match.Groups[2].Value switch
        {
            "ms" => TimeSpan.FromMilliseconds(value),
            "s" => TimeSpan.FromSeconds(value),
            _ => TimeSpan.FromMinutes(value),
        };
    }

    [GeneratedRegex(@"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$")]
    private static partial Regex TimePattern();

    private static string Text(JsonObject e, string name, string field) => e[name] switch
    {
        JsonValue value when value.TryGetValue<string>(out var text) => text,
        null => throw new ScenarioException($"{field}: missing"),
        _ => throw new ScenarioException($"{field}: expected a string"),
    };

    private static int? Integer(JsonObject e, string name) => e[name] switch
    {
        null => null,
        JsonValue value when value.TryGetValue<int>(out var n) && n > 0 => n,
        _ => throw new ScenarioException($"health.{name}: expected a positive integer"),
    };

    private static TimeSpan? Milliseconds(JsonObject e, string name) => Integer(e, name) is { } ms ? TimeSpan.FromMilliseconds(ms) : null;
}
