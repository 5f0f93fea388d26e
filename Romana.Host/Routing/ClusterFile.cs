using System.Text.Json.Nodes;
using Romana.Actors;
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

    public static ClusterFile Read(string path) => Parse(DocumentFile.ReadText(path, message => new ClusterFileException(message)), path);

    /// <summary>The text of a cluster file; <paramref name="source"/> names it in errors.</summary>
    public static ClusterFile Parse(string json, string? source = null) =>
        DocumentReader.Read(json, source, DocumentJson.Default.ClusterFileDocument, d => Check(d, "$"), Fail);

    public static ClusterFile Parse(JsonObject root) => Parse(root.ToJsonString());

    /// <summary>A cluster file built in code (the built-in scenario), checked as if it had been read.</summary>
    public static ClusterFile FromDocument(ClusterFileDocument document) =>
        DocumentReader.Check(document, DocumentJson.Default.ClusterFileDocument, d => Check(d, "$"), Fail);

    private static ClusterFileException Fail(DocumentError error) => new(error);

    /// <summary>The cluster at <paramref name="at"/>: "$" in a cluster file, "$.cluster" in a scenario.</summary>
    internal static ClusterFile Check(ClusterFileDocument document, string at) =>
        Check(document, at, DocumentLimits.MostNodes, "a cluster file", out _);

    /// <summary>
    /// The cluster at <paramref name="at"/>, with at most <paramref name="mostNodes"/> nodes (<paramref name="what"/> says whose
    /// bound it is), and what its nodes take of the topology, for a scenario's events to go on counting.
    /// </summary>
    internal static ClusterFile Check(ClusterFileDocument document, string at, int mostNodes, string what, out ClusterCapacity capacity)
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
            var zoneName = Name(zone.Name, $"{zoneAt}.name");
            if (!zonePaths.TryAdd(zoneName, $"{zoneAt}.name")) throw Twice($"{zoneAt}.name", zonePaths[zoneName]);
            if (zonePaths.Count > DocumentLimits.MostSubnets)
                throw Problem($"{zoneAt}.name", $"more than {DocumentLimits.MostSubnets:N0} zones, the most a topology may have");
            var specs = new List<SubnetSpec>();
            foreach (var (subnet, subnetAt) in Objects(zone.Subnets, $"{zoneAt}.subnets"))
            {
                var id = Name(subnet.Id, $"{subnetAt}.id");
                if (!subnetPaths.TryAdd(id, $"{subnetAt}.id")) throw Twice($"{subnetAt}.id", subnetPaths[id]);
                if (subnetPaths.Count > DocumentLimits.MostSubnets)
                    throw Problem($"{subnetAt}.id", $"more than {DocumentLimits.MostSubnets:N0} subnets, the most a topology may have");
                var cidr = Cidr(subnet.Cidr, $"{subnetAt}.cidr");
                var table = Name(subnet.RouteTable, $"{subnetAt}.routeTable");
                specs.Add(new SubnetSpec(id, OptionalCidr(subnet.PodPrefix, $"{subnetAt}.podPrefix"), cidr, table));
                subnets.Add(new ClusterSubnet(id, zoneName, cidr, table));
            }
            zones.Add(new ZoneSpec(zoneName, specs, OptionalCidr(zone.PodPrefix, $"{zoneAt}.podPrefix")));
        }

        var routeLimit = Routes(AtLeast(document.RouteLimit ?? DefaultRouteLimit, 1, $"{at}.routeLimit"), $"{at}.routeLimit");
        var tables = new List<ClusterRouteTable>();
        var tablePaths = new Dictionary<string, string>();
        foreach (var (table, tableAt) in document.RouteTables is null ? [] : Objects(document.RouteTables, $"{at}.routeTables"))
        {
            var id = Name(table.Id, $"{tableAt}.id");
            if (!tablePaths.TryAdd(id, $"{tableAt}.id")) throw Twice($"{tableAt}.id", tablePaths[id]);
            if (tablePaths.Count > DocumentLimits.MostSubnets)
                throw Problem($"{tableAt}.id", $"more than {DocumentLimits.MostSubnets:N0} route tables, one per subnet at most");
            var foreign = Routes(AtLeast(table.ForeignRoutes ?? 0, 0, $"{tableAt}.foreignRoutes"), $"{tableAt}.foreignRoutes");
            tables.Add(new ClusterRouteTable(id, foreign));
        }
        foreach (var table in subnets.Select(s => s.RouteTable).Distinct().Where(id => !tablePaths.ContainsKey(id)))
            tables.Add(new ClusterRouteTable(table, 0)); // referenced by a subnet and not listed: no foreign routes

        var topology = new TopologySpec(podCidr, blockPrefixLength, zones);
        if (document.Nodes?.Count > mostNodes)
            throw Problem($"{at}.nodes", $"{document.Nodes.Count:N0} nodes, more than the {mostNodes:N0} {what} may have");
        capacity = new ClusterCapacity(topology, mostNodes, what);
        var nodePaths = new Dictionary<string, string>();
        var nodes = new List<ClusterNode>();
        foreach (var (node, nodeAt) in Objects(document.Nodes, $"{at}.nodes"))
            nodes.Add(Node(node, nodeAt, subnets, nodePaths, capacity));
        return new ClusterFile(topology, routeLimit, subnets, tables, nodes);
    }

    /// <summary>
    /// A node of the file, or of a scenario's addNode event; <paramref name="names"/> holds the names taken so far and
    /// where, and receives this one.
    /// </summary>
    internal static ClusterNode Node(ClusterNodeDocument node, string at, IReadOnlyList<ClusterSubnet> subnets,
        Dictionary<string, string> names, ClusterCapacity capacity)
    {
        var name = Name(node.Name, $"{at}.name");
        if (names.TryGetValue(name, out var first)) throw Twice($"{at}.name", first);
        var subnetId = Text(node.Subnet, $"{at}.subnet");
        var subnet = subnets.FirstOrDefault(s => s.Id == subnetId)
            ?? throw Problem($"{at}.subnet",
                $"not a subnet of any zone (subnets: {Quoting.Bounded(string.Join(", ", subnets.Select(s => s.Id)))})");
        var ip = Text(node.Ip, $"{at}.ip");
        if (!Ipv4.TryParse(ip, out var address)) throw Problem($"{at}.ip", "not an IPv4 address");
        if (!Ipv4Cidr.Parse(subnet.Cidr).Contains(address))
            throw Problem($"{at}.ip", $"not inside subnet {subnet.Id}'s CIDR {subnet.Cidr}");
        var eni = Name(node.Eni, $"{at}.eni");
        var instance = node.InstanceId is null ? "" : Name(node.InstanceId, $"{at}.instanceId");
        var pods = AtLeast(node.Pods ?? 0, 0, $"{at}.pods");
        var added = new ClusterNode(name, subnetId, ip, eni, instance, pods, node.Healthy ?? true);
        capacity.Add(added, at);
        names[name] = $"{at}.name";
        return added;
    }

    /// <summary>A route count: EC2 allows at most 1,000 routes in a table.</summary>
    private static int Routes(int count, string path) => count <= DocumentLimits.MostRoutes
        ? count
        : throw Problem(path, $"more than {DocumentLimits.MostRoutes:N0}, the most routes an EC2 route table can hold");

    private static DocumentProblem Twice(string path, string first) => Problem(path, $"appears twice (first at {first})");
}

/// <summary>
/// What the nodes of a cluster take, counted as they are added (and given back as a scenario removes them), against what the
/// topology can hold and the bounds of a document: pods of a node, blocks of a subnet, pods and nodes in all, one IP per
/// node. Where the topology does not carve, its subnets are not counted here: the carver's refusal comes first.
/// </summary>
internal sealed class ClusterCapacity
{
    private readonly Dictionary<string, (Ipv4Cidr Prefix, ulong Blocks)> _subnets = new();
    private readonly ulong _blockSize;
    private readonly int _blockPrefixLength;
    private readonly int _mostNodes;
    private readonly string _what;
    private readonly Dictionary<string, ulong> _blocksTaken = new();
    private readonly Dictionary<string, (string Name, string Path)> _ips = new();
    private readonly Dictionary<string, (ClusterNode Node, ulong Blocks)> _nodes = new();
    private long _pods;

    public ClusterCapacity(TopologySpec topology, int mostNodes, string what)
    {
        _mostNodes = mostNodes;
        _what = what;
        _blockPrefixLength = topology.BlockPrefixLength;
        _blockSize = topology.BlockPrefixLength is >= 0 and <= 32 ? 1UL << (32 - topology.BlockPrefixLength) : 1;
        if (topology.Zones.Sum(z => z.Subnets.Count) <= DocumentLimits.MostSubnets
            && TopologyCarver.TryCarve(topology, out var carved, out _))
            foreach (var subnet in carved.Subnets)
                _subnets[subnet.Id.Value] = (subnet.PodPrefix, subnet.PodPrefix.Size / _blockSize);
    }

    /// <summary>Counts the node, or refuses it naming the field of <paramref name="at"/> that goes beyond a bound.</summary>
    public void Add(ClusterNode node, string at)
    {
        if (node.Pods > DocumentLimits.MostPodsPerNode)
            throw Problem($"{at}.pods", $"more than the {DocumentLimits.MostPodsPerNode:N0} pods a node may have " +
                "(the addresses of a /16, the largest block)");
        var blocks = ((ulong)node.Pods + _blockSize - 1) / _blockSize;
        if (_subnets.TryGetValue(node.Subnet, out var subnet))
        {
            if ((ulong)node.Pods > subnet.Prefix.Size)
                throw Problem($"{at}.pods",
                    $"more than subnet {node.Subnet}'s pod prefix {subnet.Prefix} holds ({subnet.Prefix.Size:N0} addresses)");
            var taken = _blocksTaken.GetValueOrDefault(node.Subnet) + blocks;
            if (taken > subnet.Blocks)
                throw Problem($"{at}.pods", $"subnet {node.Subnet}'s pod prefix {subnet.Prefix} has {subnet.Blocks:N0} blocks of " +
                    $"/{_blockPrefixLength}, and its nodes up to this one need {taken:N0}");
        }
        if (_pods + node.Pods > DocumentLimits.MostPods)
            throw Problem($"{at}.pods", $"the cluster's nodes up to this one hold {_pods + node.Pods:N0} pods, " +
                $"more than the {DocumentLimits.MostPods:N0} {_what} may hold");
        if (_nodes.Count + 1 > _mostNodes)
            throw Problem(at, $"more than the {_mostNodes:N0} nodes {_what} may have at once");
        var ip = Ipv4.Parse(node.Ip).ToString();
        if (_ips.TryGetValue(ip, out var owner))
            throw Problem($"{at}.ip", $"also the IP of node {owner.Name} ({owner.Path})");
        _blocksTaken[node.Subnet] = _blocksTaken.GetValueOrDefault(node.Subnet) + blocks;
        _ips[ip] = (node.Name, $"{at}.ip");
        _nodes[node.Name] = (node, blocks);
        _pods += node.Pods;
    }

    /// <summary>A node removed gives back its blocks, its pods and its IP.</summary>
    public void Remove(string name)
    {
        if (!_nodes.Remove(name, out var removed)) return;
        _blocksTaken[removed.Node.Subnet] -= removed.Blocks;
        _ips.Remove(Ipv4.Parse(removed.Node.Ip).ToString());
        _pods -= removed.Node.Pods;
    }
}
