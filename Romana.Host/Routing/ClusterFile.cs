using System.Text.Json;
using System.Text.Json.Nodes;
using Romana.Actors.Addressing;
using Romana.Actors.Topology;

namespace Romana.Host.Routing;

/// <summary>A cluster as `romana plan` and `romana simulate` read it: the topology, the route tables and the nodes.</summary>
public sealed record ClusterFile(TopologySpec Topology, int RouteLimit, IReadOnlyList<ClusterSubnet> Subnets,
    IReadOnlyList<ClusterRouteTable> RouteTables, IReadOnlyList<ClusterNode> Nodes);

public sealed record ClusterSubnet(string Id, string Zone, string Cidr, string RouteTable);

public sealed record ClusterRouteTable(string Id, int ForeignRoutes);

public sealed record ClusterNode(string Name, string Subnet, string Ip, string Eni, string InstanceId, int Pods, bool Healthy);

/// <summary>A cluster file that cannot be used; the message names the field and the value.</summary>
public sealed class ClusterFileException(string message) : Exception(message);

public static class ClusterFileReader
{
    public static ClusterFile Read(string path)
    {
        if (!File.Exists(path)) throw new ClusterFileException($"{path}: no such file");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new ClusterFileException($"{path}: not valid JSON: {e.Message}");
        }
        return Parse(root as JsonObject ?? throw new ClusterFileException($"{path}: expected a JSON object"));
    }

    public static ClusterFile Parse(JsonObject root)
    {
        var zones = new List<ZoneSpec>();
        var subnets = new List<ClusterSubnet>();
        foreach (var (zone, z) in Array(root, "zones", "zones").Select((v, i) => (v, i)))
        {
            var zoneObject = Object(zone, $"zones[{z}]");
            var zoneName = Text(zoneObject, "name", $"zones[{z}].name");
            var specs = new List<SubnetSpec>();
            foreach (var (subnet, s) in Array(zoneObject, "subnets", $"zones[{z}].subnets").Select((v, i) => (v, i)))
            {
                var at = $"zones[{z}].subnets[{s}]";
                var subnetObject = Object(subnet, at);
                var id = Text(subnetObject, "id", $"{at}.id");
                var cidr = Text(subnetObject, "cidr", $"{at}.cidr");
                if (!Ipv4Cidr.TryParse(cidr, out _)) throw Field($"{at}.cidr", $"'{cidr}' is not an IPv4 CIDR");
                var table = Text(subnetObject, "routeTable", $"{at}.routeTable");
                specs.Add(new SubnetSpec(id, OptionalText(subnetObject, "podPrefix", $"{at}.podPrefix"), cidr, table));
                subnets.Add(new ClusterSubnet(id, zoneName, cidr, table));
            }
            zones.Add(new ZoneSpec(zoneName, specs, OptionalText(zoneObject, "podPrefix", $"zones[{z}].podPrefix")));
        }
        var topology = new TopologySpec(Text(root, "podCidr", "podCidr"), Number(root, "blockPrefixLength", "blockPrefixLength") ?? throw Field("blockPrefixLength", "missing"), zones);

        var routeLimit = Number(root, "routeLimit", "routeLimit") ?? 50;
        if (routeLimit < 1) throw Field("routeLimit", $"{routeLimit} must be at least 1");
        var tables = root["routeTables"] is null ? [] : Array(root, "routeTables", "routeTables").Select((t, i) =>
        {
            var table = Object(t, $"routeTables[{i}]");
            var foreign = Number(table, "foreignRoutes", $"routeTables[{i}].foreignRoutes") ?? 0;
            if (foreign < 0) throw Field($"routeTables[{i}].foreignRoutes", $"{foreign} must be 0 or more");
            return new ClusterRouteTable(Text(table, "id", $"routeTables[{i}].id"), foreign);
        }).ToList();
        foreach (var table in subnets.Select(s => s.RouteTable).Distinct().Where(id => tables.All(t => t.Id != id)))
            tables.Add(new ClusterRouteTable(table, 0)); // referenced by a subnet and not listed: no foreign routes

        var names = new HashSet<string>();
        var nodes = Array(root, "nodes", "nodes").Select((n, i) =>
        {
            var at = $"nodes[{i}]";
            var node = Object(n, at);
            var name = Text(node, "name", $"{at}.name");
            if (!names.Add(name)) throw Field($"{at}.name", $"'{name}' appears twice");
            var subnet = Text(node, "subnet", $"{at}.subnet");
            if (subnets.All(s => s.Id != subnet)) throw Field($"{at}.subnet", $"'{subnet}' is not a subnet of any zone");
            var pods = Number(node, "pods", $"{at}.pods") ?? 0;
            if (pods < 0) throw Field($"{at}.pods", $"{pods} must be 0 or more");
            return new ClusterNode(name, subnet, Text(node, "ip", $"{at}.ip"), Text(node, "eni", $"{at}.eni"),
                OptionalText(node, "instanceId", $"{at}.instanceId") ?? "", pods, Bool(node, "healthy", $"{at}.healthy") ?? true);
        }).ToList();
        return new ClusterFile(topology, routeLimit, subnets, tables, nodes);
    }

    private static ClusterFileException Field(string field, string problem) => new($"field '{field}': {problem}");

    private static JsonObject Object(JsonNode? node, string path) => node as JsonObject ?? throw Field(path, "expected an object");

    private static JsonArray Array(JsonObject parent, string name, string path) =>
        parent[name] as JsonArray ?? throw Field(path, parent[name] is null ? "missing" : "expected an array");

    private static string Text(JsonObject parent, string name, string path) =>
        OptionalText(parent, name, path) ?? throw Field(path, "missing");

    private static string? OptionalText(JsonObject parent, string name, string path) => parent[name] switch
    {
        null => null,
        JsonValue value when value.TryGetValue<string>(out var text) => text,
        _ => throw Field(path, "expected a string"),
    };

    private static int? Number(JsonObject parent, string name, string path) => parent[name] switch
    {
        null => null,
        JsonValue value when value.TryGetValue<int>(out var number) => number,
        _ => throw Field(path, "expected an integer"),
    };

    private static bool? Bool(JsonObject parent, string name, string path) => parent[name] switch
    {
        null => null,
        JsonValue value when value.TryGetValue<bool>(out var flag) => flag,
        _ => throw Field(path, "expected true or false"),
    };
}
