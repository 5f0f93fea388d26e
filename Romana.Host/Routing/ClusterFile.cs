using System.Text.Json.Nodes;
using Romana.Actors.Addressing;
using Romana.Actors.Topology;
using Romana.Host.Documents;
using static Romana.Host.Documents.DocumentChecks;

namespace Romana.Host.Routing;

/// <summary>A cluster as `romana plan` and `romana simulate` read it: the topology, the route tables and the nodes.</summary>
public sealed record ClusterFile(TopologySpec Topology, int RouteLimit, IReadOnlyList<ClusterSubnet> Subnets,
    IReadOnlyList<ClusterRouteTable> RouteTables, IReadOnlyList<ClusterNode> Nodes);

public sealed record ClusterSubnet(string Id, string Zone, string Cidr, string RouteTable);

public sealed record ClusterRouteTable(string Id, int ForeignRoutes);

public sealed record ClusterNode(string Name, string Subnet, string Ip, string Eni, string InstanceId, int Pods, bool Healthy);

/// <summary>A cluster file that cannot be used; the message names the JSON path and the value.</summary>
public sealed class ClusterFileException : DocumentException
{
    public ClusterFileException(DocumentError error) : base(error)
    {
    }

    /// <summary>A refusal with no place in the file: the file is missing, or the IPAM refused a node while loading.</summary>
    public ClusterFileException(string message) : base(message)
    {
    }
}

/// <summary>
/// Reads a <see cref="ClusterFileDocument"/> and checks it: fields of the right types and no others, the CIDRs and
/// addresses well formed, every node in a known subnet and inside its CIDR. Carving the pod CIDR is left to
/// <see cref="TopologyCarver"/>.
/// </summary>
public static class ClusterFileReader
{
    public const int DefaultRouteLimit = 50;

    public static ClusterFile Read(string path) =>
        File.Exists(path) ? Parse(File.ReadAllText(path), path) : throw new ClusterFileException($"{path}: no such file");

    /// <summary>The text of a cluster file; <paramref name="source"/> names it in errors.</summary>
    public static ClusterFile Parse(string json, string? source = null) =>
        DocumentReader.Read(json, source, DocumentJson.Default.ClusterFileDocument, d => Check(d, "$"), Fail);

    public static ClusterFile Parse(JsonObject root) => Parse(root.ToJsonString());

    /// <summary>A cluster file built in code (the built-in scenario), checked as if it had been read.</summary>
    public static ClusterFile FromDocument(ClusterFileDocument document) =>
        DocumentReader.Check(document, DocumentJson.Default.ClusterFileDocument, d => Check(d, "$"), Fail);

    private static ClusterFileException Fail(DocumentError error) => new(error);

    /// <summary>The cluster at <paramref name="at"/>: "$" in a cluster file, "$.cluster" in a scenario.</summary>
    internal static ClusterFile Check(ClusterFileDocument document, string at)
    {
        var podCidr = Cidr(document.PodCidr, $"{at}.podCidr");
        var blockPrefixLength = Present(document.BlockPrefixLength, $"{at}.blockPrefixLength");
        if (blockPrefixLength is < 0 or > 32) throw Problem($"{at}.blockPrefixLength", "not a prefix length (0 to 32)");

        var zones = new List<ZoneSpec>();
        var subnets = new List<ClusterSubnet>();
        var subnetPaths = new Dictionary<string, string>();
        var zonePaths = new Dictionary<string, string>();
        foreach (var (zone, zoneAt) in Objects(document.Zones, $"{at}.zones"))
        {
            var zoneName = Text(zone.Name, $"{zoneAt}.name");
            if (!zonePaths.TryAdd(zoneName, $"{zoneAt}.name")) throw Twice($"{zoneAt}.name", zonePaths[zoneName]);
            var specs = new List<SubnetSpec>();
            foreach (var (subnet, subnetAt) in Objects(zone.Subnets, $"{zoneAt}.subnets"))
            {
                var id = Text(subnet.Id, $"{subnetAt}.id");
                if (!subnetPaths.TryAdd(id, $"{subnetAt}.id")) throw Twice($"{subnetAt}.id", subnetPaths[id]);
                var cidr = Cidr(subnet.Cidr, $"{subnetAt}.cidr");
                var table = Text(subnet.RouteTable, $"{subnetAt}.routeTable");
                specs.Add(new SubnetSpec(id, OptionalCidr(subnet.PodPrefix, $"{subnetAt}.podPrefix"), cidr, table));
                subnets.Add(new ClusterSubnet(id, zoneName, cidr, table));
            }
            zones.Add(new ZoneSpec(zoneName, specs, OptionalCidr(zone.PodPrefix, $"{zoneAt}.podPrefix")));
        }

        var routeLimit = AtLeast(document.RouteLimit ?? DefaultRouteLimit, 1, $"{at}.routeLimit");
        var tables = new List<ClusterRouteTable>();
        var tablePaths = new Dictionary<string, string>();
        foreach (var (table, tableAt) in document.RouteTables is null ? [] : Objects(document.RouteTables, $"{at}.routeTables"))
        {
            var id = Text(table.Id, $"{tableAt}.id");
            if (!tablePaths.TryAdd(id, $"{tableAt}.id")) throw Twice($"{tableAt}.id", tablePaths[id]);
            tables.Add(new ClusterRouteTable(id, AtLeast(table.ForeignRoutes ?? 0, 0, $"{tableAt}.foreignRoutes")));
        }
        foreach (var table in subnets.Select(s => s.RouteTable).Distinct().Where(id => !tablePaths.ContainsKey(id)))
            tables.Add(new ClusterRouteTable(table, 0)); // referenced by a subnet and not listed: no foreign routes

        var nodePaths = new Dictionary<string, string>();
        var nodes = Objects(document.Nodes, $"{at}.nodes").Select(n => Node(n.Item, n.Path, subnets, nodePaths)).ToList();
        return new ClusterFile(new TopologySpec(podCidr, blockPrefixLength, zones), routeLimit, subnets, tables, nodes);
    }

    /// <summary>
    /// A node of the file, or of a scenario's addNode event; <paramref name="names"/> holds the names taken so far and
    /// where, and receives this one.
    /// </summary>
    internal static ClusterNode Node(ClusterNodeDocument node, string at, IReadOnlyList<ClusterSubnet> subnets,
        Dictionary<string, string> names)
    {
        var name = Text(node.Name, $"{at}.name");
        if (names.TryGetValue(name, out var first)) throw Twice($"{at}.name", first);
        var subnetId = Text(node.Subnet, $"{at}.subnet");
        var subnet = subnets.FirstOrDefault(s => s.Id == subnetId)
            ?? throw Problem($"{at}.subnet", $"not a subnet of any zone (subnets: {string.Join(", ", subnets.Select(s => s.Id))})");
        var ip = Text(node.Ip, $"{at}.ip");
        if (!Ipv4.TryParse(ip, out var address)) throw Problem($"{at}.ip", "not an IPv4 address");
        if (!Ipv4Cidr.Parse(subnet.Cidr).Contains(address))
            throw Problem($"{at}.ip", $"not inside subnet {subnet.Id}'s CIDR {subnet.Cidr}");
        var eni = Text(node.Eni, $"{at}.eni");
        var pods = AtLeast(node.Pods ?? 0, 0, $"{at}.pods");
        names[name] = $"{at}.name";
        return new ClusterNode(name, subnetId, ip, eni, node.InstanceId ?? "", pods, node.Healthy ?? true);
    }

    private static DocumentProblem Twice(string path, string first) => Problem(path, $"appears twice (first at {first})");
}
