using Romana.Actors.Configuration;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;
using Romana.Host.Lab;

namespace Romana.Actors.Tests.Lab;

/// <summary>The lab's names, addresses and generated configurations, and its command line: no root needed.</summary>
public sealed class LabLayoutTests
{
    [Fact]
    public void The_default_lab_has_fewer_routes_allowed_than_blocks_and_one_route_table_per_zone()
    {
        var layout = new LabLayout(LabOptions.Default);
        Assert.Equal(4, layout.Subnets.Count);
        Assert.Equal(8, layout.Nodes.Count);
        Assert.Equal(16, layout.Pods.Count);
        Assert.Equal(["rtb-lab-a", "rtb-lab-b"], layout.RouteTables.Select(t => t.Id));
        // One block per node (2 pods each): 8 blocks, while a table may hold 6 routes, one of them the internet gateway's.
        Assert.True(LabOptions.Default.RouteLimit - 1 < layout.Nodes.Count);
        Assert.All(layout.Nodes, n => Assert.StartsWith(LabLayout.Prefix + "-", n.Netns));
        Assert.All(layout.Pods, p => Assert.StartsWith(LabLayout.Prefix + "-", p.Netns));
        Assert.All(layout.Nodes, n => Assert.True(n.Port.Length <= 15, n.Port));
        Assert.Equal(["100.64.0.0/18", "100.64.64.0/18", "100.64.128.0/18", "100.64.192.0/18"], layout.Subnets.Select(s => s.PodPrefix));
        // A bastion per subnet, on its bridge, at an address no node of the largest lab takes.
        Assert.Equal(layout.Subnets.Select(s => (s.Id, s.Bridge, s.Gateway)), layout.Bastions.Select(b => (b.Subnet, b.Bridge, b.Gateway)));
        Assert.Equal(["10.0.1.250", "10.0.2.250", "10.0.3.250", "10.0.4.250"], layout.Bastions.Select(b => b.Ip));
        Assert.All(layout.Bastions, b => Assert.StartsWith(LabLayout.Prefix + "-", b.Netns));
        var largest = new LabLayout(new LabOptions(Zones: 8, SubnetsPerZone: 8, NodesPerSubnet: 16));
        var ports = largest.Nodes.Select(n => n.Port).Concat(largest.Bastions.Select(b => b.Port)).ToList();
        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, p => Assert.True(p.Length <= 15, p));
        Assert.Empty(largest.Bastions.Select(b => b.Ip).Intersect(largest.Nodes.Select(n => n.Ip)));
    }

    [Fact]
    public void Each_daemons_generated_configuration_reads_as_the_daemon_reads_it()
    {
        var layout = new LabLayout(LabOptions.Default);
        foreach (var node in layout.Nodes)
        {
            var config = Akka.Configuration.ConfigurationFactory.ParseString(LabDaemonConfig.For(layout, node))
                .WithFallback(RomanaConfig.Reference);
            var topology = RomanaConfig.ReadTopology(config);
            var identity = NodeIdentity.Resolve(config, topology);
            Assert.Equal(node.Ip, identity.Ip.ToString());
            var subnet = topology.FindSubnet(identity.Subnet)!;
            Assert.Equal(layout.SubnetOf(node).PodPrefix, subnet.PodPrefix.ToString());
            var rules = MasqueradeSettings.From(config).RulesFor(topology)!;
            Assert.Contains(rules.Kept, c => c.ToString() == LabLayout.VpcCidr);
            Assert.Contains("Database=romana",
                config.GetString("romana.persistence.postgresql.connection-string"));
            Assert.Equal("on", config.GetString("romana.cluster.enabled"));
            Assert.Equal(node.Eni, config.GetString("romana.node.eni"));
        }
    }

    [Theory]
    [InlineData("--zones", "0", "--zones = 0: must be a whole number from 1 to 8")]
    [InlineData("--pods-per-node", "many", "--pods-per-node = many: must be a whole number from 0 to 32")]
    [InlineData("--route-limit", "-3", "--route-limit = -3: must be a whole number from 1 to 1000")]
    public async Task A_bad_option_exits_2_naming_the_option_and_the_value(string option, string value, string message)
    {
        var (exit, _, error) = await Processes.RunAsync("dotnet", [DaemonProcess.RomanaDll, "lab", "up", option, value]);
        Assert.Equal(2, exit);
        Assert.Equal($"romana lab up: {message}", error.Trim());
    }

    [Fact]
    public async Task Lab_up_help_explains_every_option()
    {
        var (exit, help, _) = await Processes.RunAsync("dotnet", [DaemonProcess.RomanaDll, "lab", "up", "--help"]);
        Assert.Equal(0, exit);
        string[] options = ["--zones", "--subnets-per-zone", "--nodes-per-subnet", "--pods-per-node", "--route-limit", "--cni-plugin"];
        foreach (var option in options)
            Assert.Contains(option, help);
    }
}
