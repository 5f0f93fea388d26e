using System.Net.NetworkInformation;
using System.Net.Sockets;
using Akka.Configuration;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Topology;
using Romana.Host.Aws;

namespace Romana.Host.Dataplane;

/// <summary>Which node of which subnet this host is (romana.node), with host name and interface addresses as defaults.</summary>
public sealed record NodeIdentity(NodeName Name, SubnetId Subnet, Ipv4 Ip)
{
    /// <summary>The EC2 instance id; empty outside EC2 (a single machine with no cloud).</summary>
    public string InstanceId { get; init; } = "";

    /// <summary>The network interface (ENI) that carries <see cref="Ip"/>: VPC routes point at it. Empty outside EC2.</summary>
    public string Eni { get; init; } = "";

    /// <summary>
    /// In a cluster, what romana.node does not say (subnet, ip, instance-id, eni) comes from the instance metadata service
    /// (IMDSv2), asked once and only when something is missing; romana.node's settings always win (labs set them all).
    /// </summary>
    public static async Task<NodeIdentity> ResolveInClusterAsync(Config config, ClusterTopology topology, InstanceMetadata imds,
        CancellationToken cancellation = default)
    {
        var node = config.GetConfig("romana.node");
        string Given(string key) => node.GetString(key) ?? "";
        var overrides = config;
        if (new[] { "subnet", "ip", "instance-id", "eni" }.Any(key => Given(key).Length == 0))
        {
            var ec2 = await imds.ReadAsync(cancellation);
            string Or(string key, string fromImds) => Given(key) is { Length: > 0 } given ? given : fromImds;
            overrides = ConfigurationFactory.ParseString($$"""
                romana.node {
                  subnet = {{Hocon(Or("subnet", ec2.SubnetId))}}
                  ip = {{Hocon(Or("ip", ec2.LocalIpv4))}}
                  instance-id = {{Hocon(Or("instance-id", ec2.InstanceId))}}
                  eni = {{Hocon(Or("eni", ec2.Eni))}}
                }
                """).WithFallback(config);
        }
        var identity = Resolve(overrides, topology);
        var resolved = overrides.GetConfig("romana.node");
        return identity with { InstanceId = resolved.GetString("instance-id") ?? "", Eni = resolved.GetString("eni") ?? "" };
    }

    private static string Hocon(string text) => System.Text.Json.JsonSerializer.Serialize(text);

    public static NodeIdentity Resolve(Config config, ClusterTopology topology, Func<IEnumerable<Ipv4>>? hostAddresses = null)
    {
        var node = config.GetConfig("romana.node");
        var name = node.GetString("name") is { Length: > 0 } given ? given : Environment.MachineName;
        var subnetText = node.GetString("subnet");
        SubnetLayout subnet;
        if (subnetText is { Length: > 0 })
            subnet = topology.FindSubnet(new SubnetId(subnetText))
                ?? throw ConfigValues.Error(config, "romana.node.subnet",
                    $"{Quoting.Quote(subnetText)} is not a subnet of romana.topology");
        else if (topology.Subnets.Count() == 1)
            subnet = topology.Subnets.First();
        else
            throw ConfigValues.Error(config, "romana.node.subnet",
                $"empty, and the topology has {topology.Subnets.Count()} subnets; name this host's");

        var ipText = node.GetString("ip");
        Ipv4 ip;
        if (ipText is { Length: > 0 })
        {
            if (!Ipv4.TryParse(ipText, out ip))
                throw ConfigValues.Error(config, "romana.node.ip", $"{Quoting.Quote(ipText)} is not an IPv4 address");
        }
        else
        {
            var candidates = (hostAddresses ?? HostAddresses)().Where(a => subnet.VpcCidr is not { } vpc || vpc.Contains(a)).ToList();
            if (candidates.Count == 0)
                throw ConfigValues.Error(config, "romana.node.ip", "empty, and no interface of this host has an IPv4 address" +
                    $"{(subnet.VpcCidr is { } v ? $" inside {v}" : "")}; set it");
            ip = candidates[0];
        }
        return new NodeIdentity(new NodeName(name), subnet.Id, ip);
    }

    /// <summary>This host's IPv4 addresses on interfaces that are up, loopback excluded, in interface order.</summary>
    private static IEnumerable<Ipv4> HostAddresses() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(i => i.OperationalStatus != OperationalStatus.Down && i.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Where(a => a.Address.AddressFamily == AddressFamily.InterNetwork)
            .Select(a => Ipv4.Parse(a.Address.ToString()));
}
