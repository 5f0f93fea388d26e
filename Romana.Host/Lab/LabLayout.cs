using System.Globalization;
using System.Net;
using System.Numerics;

namespace Romana.Host.Lab;

/// <summary>What <c>romana lab up</c> was asked for: the size of the VPC and the route tables' limit.</summary>
public sealed record LabOptions(int Zones = 2, int SubnetsPerZone = 2, int NodesPerSubnet = 2, int PodsPerNode = 2, int RouteLimit = 6)
{
    public static readonly LabOptions Default = new();
}

public sealed record LabSubnet(string Id, string Zone, string VpcCidr, string Gateway, string Bridge, string RouteTable, string PodPrefix);

public sealed record LabNode(string Name, string Netns, string Zone, string Subnet, string Ip, string Eni, string Port, string Gateway,
    string Bridge)
{
    public string Folder => Path.Combine(LabLayout.RunFolder, "nodes", Name);
    public string Socket => Path.Combine(Folder, "cni.sock");
    public string ConfigPath => Path.Combine(Folder, "romana.conf");
}

public sealed record LabPod(string Name, string Netns, string Node, string ContainerId);

/// <summary>
/// An instance of a subnet that is not a node (a bastion, as a load balancer or a NAT path would be): one address in the
/// subnet's VPC CIDR on its bridge, a default route to the subnet's gateway and nothing else: no host routes, no daemon.
/// </summary>
public sealed record LabBastion(string Name, string Netns, string Subnet, string Ip, string Port, string Gateway, string Bridge);

public sealed record LabRouteTable(string Id, string Zone, int KernelTable, IReadOnlyList<string> Subnets);

/// <summary>
/// The lab's VPC as names and addresses, a pure function of <see cref="LabOptions"/> (DESIGN.md section 6). Everything the
/// lab makes is named with <see cref="Prefix"/>: namespaces <c>rlab-*</c>, links <c>rl-*</c> (inside the lab's namespaces
/// only), nft tables <c>rlab_*</c>, and the folder <see cref="RunFolder"/>.
/// <list type="bullet">
/// <item>VPC 10.0.0.0/16; subnet k (0-based over all zones) is 10.0.(k+1).0/24, its gateway .1 on the router's bridge
/// <c>rl-br-SUBNET</c>, its nodes .11, .12, ..., its bastion .250; the lab's services (PostgreSQL, EC2) listen on 10.0.255.1
/// in the router.</item>
/// <item>Pod CIDR 100.64.0.0/16 in /26 blocks; zones, then subnets, share it in power-of-two slots as Romana carves it.</item>
/// <item>One route table per zone (<c>rtb-lab-ZONE</c>), mirrored into kernel table 101 + the zone's index in the router,
/// with one route Romana does not own: 0.0.0.0/0 to the internet gateway <c>igw-lab</c>, the "outside" namespace at
/// 198.51.100.1.</item>
/// </list>
/// </summary>
public sealed class LabLayout
{
    public const string Prefix = "rlab";
    public const string RunFolder = "/run/romana-lab";
    public const string VpcCidr = "10.0.0.0/16";
    public const string PodCidr = "100.64.0.0/16";
    public const int BlockPrefixLength = 26;
    public const string ServicesAddress = "10.0.255.1";
    public const int PostgresPort = 5432;
    public const int Ec2Port = 9607;
    public const string OutsideAddress = "198.51.100.1";
    public const string RouterOutsideAddress = "198.51.100.2";
    public const string OutsidePrefix = "198.51.100.0/24";
    public const string InternetGateway = "igw-lab";
    public const string RouterNetns = Prefix + "-router";
    public const string OutsideNetns = Prefix + "-outside";
    public const string OutsideLink = "rl-out";
    public const string ClusterTag = "romana.io/cluster=lab";
    public const int FirstKernelTable = 101;

    public static readonly (string Name, int Min, int Max)[] Bounds =
    [
        ("--zones", 1, 8), ("--subnets-per-zone", 1, 8), ("--nodes-per-subnet", 1, 16), ("--pods-per-node", 0, 32),
        ("--route-limit", 1, 1000),
    ];

    public LabLayout(LabOptions options)
    {
        Options = options;
        var zoneBits = BitsFor(options.Zones);
        var subnetBits = BitsFor(options.SubnetsPerZone);
        var nodeBits = BitsFor(options.NodesPerSubnet);
        var (podBase, podLength) = ParseCidr(PodCidr);
        var subnets = new List<LabSubnet>();
        var nodes = new List<LabNode>();
        var pods = new List<LabPod>();
        var bastions = new List<LabBastion>();
        var tables = new List<LabRouteTable>();
        for (var z = 0; z < options.Zones; z++)
        {
            var zone = $"lab-{(char)('a' + z)}";
            var zoneSubnets = new List<string>();
            for (var s = 0; s < options.SubnetsPerZone; s++)
            {
                var k = z * options.SubnetsPerZone + s;
                var short_ = $"{(char)('a' + z)}{s + 1}";
                var subnetLength = podLength + zoneBits + subnetBits;
                var subnetBase = podBase + ((uint)((z << subnetBits) + s) << (32 - subnetLength));
                var subnet = new LabSubnet($"subnet-{short_}", zone, $"10.0.{k + 1}.0/24", $"10.0.{k + 1}.1", $"rl-br-{short_}",
                    $"rtb-{zone}", Cidr(subnetBase, subnetLength));
                subnets.Add(subnet);
                zoneSubnets.Add(subnet.Id);
                bastions.Add(new LabBastion($"bastion-{short_}", $"{Prefix}-bastion-{short_}", subnet.Id, $"10.0.{k + 1}.250",
                    $"rl-{short_}-b", subnet.Gateway, subnet.Bridge));
                for (var n = 0; n < options.NodesPerSubnet; n++)
                {
                    var name = $"node-{short_}-{n + 1}";
                    var node = new LabNode(name, $"{Prefix}-{name}", zone, subnet.Id, $"10.0.{k + 1}.{11 + n}",
                        $"eni-lab{k + 1:x2}{n + 1:x2}", $"rl-{short_}-{n + 1}", subnet.Gateway, subnet.Bridge);
                    nodes.Add(node);
                    for (var p = 0; p < options.PodsPerNode; p++)
                    {
                        var pod = $"pod-{short_}-{n + 1}-{p + 1}";
                        pods.Add(new LabPod(pod, $"{Prefix}-{pod}", name, $"lab{k + 1:x2}{n + 1:x2}{p + 1:x2}"));
                    }
                }
            }
            tables.Add(new LabRouteTable($"rtb-{zone}", zone, FirstKernelTable + z, zoneSubnets));
        }
        Subnets = subnets;
        Nodes = nodes;
        Pods = pods;
        Bastions = bastions;
        RouteTables = tables;
    }

    public LabOptions Options { get; }
    public IReadOnlyList<LabSubnet> Subnets { get; }
    public IReadOnlyList<LabNode> Nodes { get; }
    public IReadOnlyList<LabPod> Pods { get; }
    public IReadOnlyList<LabBastion> Bastions { get; }
    public IReadOnlyList<LabRouteTable> RouteTables { get; }

    public string Ec2Endpoint => $"http://{ServicesAddress}:{Ec2Port}/";
    public static string StatePath => Path.Combine(RunFolder, "state.json");
    public static string PostgresFolder => Path.Combine(RunFolder, "postgres");
    public static string RouterConfigPath => Path.Combine(RunFolder, "router.conf");

    public LabSubnet SubnetOf(LabNode node) => Subnets.First(s => s.Id == node.Subnet);
    public LabNode NodeOf(LabPod pod) => Nodes.First(n => n.Name == pod.Node);

    private static int BitsFor(int count) => count <= 1 ? 0 : BitOperations.Log2((uint)count - 1) + 1;

    public static (uint Base, int Length) ParseCidr(string cidr)
    {
        var slash = cidr.IndexOf('/');
        var bytes = IPAddress.Parse(cidr[..slash]).GetAddressBytes();
        return (((uint)bytes[0] << 24) | ((uint)bytes[1] << 16) | ((uint)bytes[2] << 8) | bytes[3],
            int.Parse(cidr[(slash + 1)..], CultureInfo.InvariantCulture));
    }

    public static string Cidr(uint address, int length) =>
        $"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}/{length}";
}
