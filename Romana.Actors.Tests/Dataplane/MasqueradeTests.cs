using System.Net;
using System.Net.Sockets;
using Akka.Configuration;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>
/// The node's nft tables: the masquerade (romana.host-agent.masquerade) and the metadata-service block
/// (romana.host-agent.imds-allow): their settings, their rules, and nft in network namespaces.
/// </summary>
public sealed class MasqueradeTests
{
    private static Config Config(string settings) =>
        ConfigurationFactory.ParseString(settings).WithFallback(ConfigurationFactory.ParseString("""
            romana.topology {
              pod-cidr = "100.64.0.0/16"
              block-prefix-length = 26
              zones = [{ name = "z", subnets = [{ id = "s1", vpc-cidr = "10.0.1.0/24" }, { id = "s2", vpc-cidr = "10.0.2.0/24" }] }]
            }
            """)).WithFallback(RomanaConfig.Reference);

    [Fact]
    public void Pod_traffic_is_masqueraded_except_to_the_pod_cidr_the_subnets_vpc_cidrs_and_the_excluded()
    {
        var config = Config("romana.host-agent.masquerade.exclude = [\"203.0.113.0/24\"]");
        var rules = MasqueradeSettings.From(config).RulesFor(RomanaConfig.ReadTopology(config))!;
        Assert.Equal("100.64.0.0/16", rules.PodCidr.ToString());
        Assert.Equal(["100.64.0.0/16", "10.0.1.0/24", "10.0.2.0/24", "203.0.113.0/24"], rules.Kept.Select(c => c.ToString()));
        var ruleset = MasqueradeRules.Ruleset(rules);
        Assert.StartsWith("table ip romana_masquerade\ndelete table ip romana_masquerade\n", ruleset);
        Assert.Contains("ip saddr 100.64.0.0/16 ip daddr != @kept counter masquerade", ruleset);

        var off = Config("romana.host-agent.masquerade.enabled = off");
        Assert.Null(MasqueradeSettings.From(off).RulesFor(RomanaConfig.ReadTopology(off)));
        Assert.Equal("table ip romana_masquerade\ndelete table ip romana_masquerade\n", MasqueradeRules.Ruleset(null));
    }

    [Theory]
    [InlineData("romana.host-agent.imds-allow = [\"100.64.0.0/16\", \"fe80::/64\"]",
        "romana.host-agent.imds-allow[1]: 'fe80::/64' is not an IPv4 CIDR such as 10.0.0.0/16")]
    [InlineData("romana.host-agent.imds-allow = \"100.64.0.0/16\"",
        "romana.host-agent.imds-allow: expected a list of CIDRs [\"203.0.113.0/24\", ...]")]
    public void A_bad_metadata_allow_list_is_one_line_naming_it_and_its_value(string setting, string message)
    {
        var error = Assert.Throws<ConfigurationError>(() => ImdsSettings.From(Config(setting)));
        Assert.Equal(message, error.Message);
    }

    [Theory]
    [InlineData("romana.host-agent.masquerade.exclude = [\"10.0.0.0/33\"]",
        "romana.host-agent.masquerade.exclude[0]: '10.0.0.0/33' is not an IPv4 CIDR such as 10.0.0.0/16")]
    [InlineData("romana.host-agent.masquerade.enabled = maybe", "romana.host-agent.masquerade.enabled: 'maybe' is neither on nor off")]
    [InlineData("romana.host-agent.masquerade.exclude = \"10.0.0.0/8\"",
        "romana.host-agent.masquerade.exclude: expected a list of CIDRs [\"203.0.113.0/24\", ...]")]
    public void A_bad_setting_is_one_line_naming_it_and_its_value(string setting, string message)
    {
        var error = Assert.Throws<ConfigurationError>(() => MasqueradeSettings.From(Config(setting)));
        Assert.Equal(message, error.Message);
    }

    [SkippableFact]
    public void Nft_replaces_Romanas_table_whole_removes_it_when_off_and_never_touches_another_table()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        Skip.If(!File.Exists("/usr/sbin/nft"), "no nft (.ci/run installs nftables)");
        using var lab = new NetnsLab();
        var node = lab.AddNamespace("node");
        NetnsLab.Exec(node, "nft", ["add", "table", "ip", "someone_else"]);
        NetnsLab.Exec(node, "nft", ["add", "chain", "ip", "someone_else", "post", "{ type nat hook postrouting priority srcnat; }"]);
        var nft = new NftMasqueradeRules(["ip", "netns", "exec", node, "nft"]);
        string Ruleset() => NetnsLab.Exec(node, "nft", ["list", "ruleset"]).Output;

        var config = Config("");
        var rules = MasqueradeSettings.From(config).RulesFor(RomanaConfig.ReadTopology(config))!;
        nft.Apply(rules);
        Assert.Contains("table ip romana_masquerade", Ruleset());
        // A restart with other settings, or a rule added by hand: the table is replaced whole, never doubled.
        NetnsLab.Exec(node, "nft", ["add", "rule", "ip", "romana_masquerade", "postrouting", "ip", "saddr", "1.2.3.4", "accept"]);
        nft.Apply(rules with { Kept = [.. rules.Kept, Romana.Actors.Addressing.Ipv4Cidr.Parse("203.0.113.0/24")] });
        var replaced = Ruleset();
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(replaced, "table ip romana_masquerade"));
        Assert.DoesNotContain("1.2.3.4", replaced);
        Assert.Contains("203.0.113.0/24", replaced);
        Assert.Contains("table ip someone_else", replaced);

        nft.Apply(null);
        Assert.DoesNotContain("romana_masquerade", Ruleset());
        Assert.Contains("table ip someone_else", Ruleset());
        nft.Apply(null); // nothing to remove: no error
    }

    /// <summary>
    /// The metadata service at 169.254.169.254 as a TCP listener: an address of the node (delivered to the host),
    /// or in a namespace behind the node (forwarded, as on EC2, where the service is off the instance). Two pods hang off the
    /// node on veths, 100.64.0.5 and 100.64.1.5, in the pod CIDR 100.64.0.0/16.
    /// </summary>
    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Pods_cannot_reach_the_metadata_service_the_node_can_and_an_allowed_pod_cidr_can(bool forwarded)
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        Skip.If(!File.Exists("/usr/sbin/nft"), "no nft (.ci/run installs nftables)");
        using var lab = new NetnsLab();
        var node = lab.AddNamespace("node");
        var service = node;
        if (forwarded)
        {
            service = lab.AddNamespace("ec2");
            NetnsLab.Ip("-n", node, "link", "add", "toec2", "type", "veth", "peer", "name", "eth0", "netns", service);
            NetnsLab.Ip("-n", node, "addr", "add", "10.255.0.1/30", "dev", "toec2");
            NetnsLab.Ip("-n", node, "link", "set", "toec2", "up");
            NetnsLab.Ip("-n", service, "addr", "add", "10.255.0.2/30", "dev", "eth0");
            NetnsLab.Ip("-n", service, "link", "set", "eth0", "up");
            NetnsLab.Ip("-n", node, "route", "add", $"{ImdsBlockRules.Address}/32", "via", "10.255.0.2");
            NetnsLab.Ip("-n", service, "route", "add", "100.64.0.0/16", "via", "10.255.0.1");
            Assert.Equal(0, NetnsLab.Exec(node, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]).Exit);
        }
        // On loopback (this kernel has no dummy links): an address of the namespace all the same.
        NetnsLab.Ip("-n", service, "addr", "add", $"{ImdsBlockRules.Address}/32", "dev", "lo");
        var pod = Pod(lab, node, "pod1", 0);
        var allowedPod = Pod(lab, node, "pod2", 1);
        using var listener = NetnsLab.InNamespace(service, () =>
        {
            var l = new TcpListener(IPAddress.Parse(ImdsBlockRules.Address), 80);
            l.Start();
            return l;
        });
        _ = AcceptForeverAsync(listener);
        var nft = new NftMasqueradeRules(["ip", "netns", "exec", node, "nft"]);
        var config = Config("");
        var topology = RomanaConfig.ReadTopology(config);

        // Without Romana's table every one of them gets through: what follows is the table's doing.
        Assert.True(await ConnectsAsync(pod), "pod1 before the block");
        Assert.True(await ConnectsAsync(allowedPod), "pod2 before the block");

        var blocked = ImdsSettings.From(config).RulesFor(topology);
        Assert.Empty(blocked.Allowed);
        nft.ApplyImdsBlock(blocked);
        Assert.False(await ConnectsAsync(pod), "pod1 with the block");
        Assert.False(await ConnectsAsync(allowedPod), "pod2 with the block and no allow-list");
        Assert.True(await ConnectsAsync(node), "the node itself with the block");

        var allowing = Config("romana.host-agent.imds-allow = [\"100.64.1.0/24\"]");
        nft.ApplyImdsBlock(ImdsSettings.From(allowing).RulesFor(topology));
        Assert.True(await ConnectsAsync(allowedPod), "pod2, in the allowed 100.64.1.0/24");
        Assert.False(await ConnectsAsync(pod), "pod1, outside the allow-list");
        Assert.True(await ConnectsAsync(node), "the node itself with an allow-list");
        // Applied again (a restart): one table, replaced whole; the masquerade's table beside it is another.
        nft.Apply(MasqueradeSettings.From(config).RulesFor(topology));
        nft.ApplyImdsBlock(blocked);
        var ruleset = NetnsLab.Exec(node, "nft", ["list", "ruleset"]).Output;
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(ruleset, $"table ip {ImdsBlockRules.Table} "));
        Assert.DoesNotContain("@allowed", ruleset);
        Assert.Contains($"table ip {MasqueradeRules.Table}", ruleset);
        Assert.False(await ConnectsAsync(allowedPod), "pod2 once the allow-list is gone again");
    }

    [SkippableFact]
    public async Task The_daemon_puts_the_metadata_block_in_place_beside_the_masquerade_as_it_starts_and_leaves_it_when_it_stops()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        Skip.If(!File.Exists("/usr/sbin/nft"), "no nft (.ci/run installs nftables)");
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        // hocon/single-node.conf (pod CIDR 100.64.0.0/16) with its journal and socket in the test's folder.
        var file = folder.Write("romana.conf", File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "single-node.conf"))
            .Replace("/var/lib/romana/romana.db", Path.Combine(folder.Path, "romana.db"))
            .Replace("/run/romana/cni.sock", Path.Combine(folder.Path, "cni.sock"))
            + "\nromana.node { name = n1, ip = 10.99.0.11 }\nromana.health.probe-port = 0\n"
            + "romana.host-agent.imds-allow = [\"100.64.3.0/24\"]\n");
        var config = RomanaConfig.Load(file);
        string Table() => NetnsLab.Exec(node, "nft", ["list", "table", "ip", ImdsBlockRules.Table]).Output;
        var hostNetwork = new LinuxHostNetwork(HostAgentSettings.From(config), node);
        await using (var daemon = await RomanaDaemon.StartAsync(config, hostNetwork: hostNetwork))
        {
            Assert.Contains($"ip saddr 100.64.0.0/16 ip daddr {ImdsBlockRules.Address} meta l4proto tcp counter", Table());
            Assert.Contains("elements = { 100.64.3.0/24 }", Table());
            Assert.Contains($"table ip {MasqueradeRules.Table}", NetnsLab.Exec(node, "nft", ["list", "ruleset"]).Output);
        }
        // Stopped: the pods keep their traffic, and stay away from the metadata service.
        Assert.Contains($"ip daddr {ImdsBlockRules.Address}", Table());
    }

    /// <summary>A pod namespace whose eth0 (100.64.N.5/24) hangs off the node's veth (100.64.N.1/24), its default route.</summary>
    private static string Pod(NetnsLab lab, string node, string name, int n)
    {
        var pod = lab.AddNamespace(name);
        var hostSide = $"v{name}";
        NetnsLab.Ip("-n", node, "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", pod);
        NetnsLab.Ip("-n", node, "addr", "add", $"100.64.{n}.1/24", "dev", hostSide);
        NetnsLab.Ip("-n", node, "link", "set", hostSide, "up");
        NetnsLab.Ip("-n", pod, "addr", "add", $"100.64.{n}.5/24", "dev", "eth0");
        NetnsLab.Ip("-n", pod, "link", "set", "eth0", "up");
        NetnsLab.Ip("-n", pod, "route", "add", "default", "via", $"100.64.{n}.1");
        Assert.True(Ipv4Cidr.Parse("100.64.0.0/16").Contains(Ipv4.Parse($"100.64.{n}.5")));
        return pod;
    }

    private static async Task AcceptForeverAsync(TcpListener listener)
    {
        try
        {
            while (true) (await listener.AcceptTcpClientAsync()).Dispose();
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException or InvalidOperationException)
        {
            // the listener stopped with the test
        }
    }

    /// <summary>A TCP connect from inside <paramref name="netns"/> to 169.254.169.254:80, within 3 s.</summary>
    private static async Task<bool> ConnectsAsync(string netns)
    {
        using var socket = NetnsLab.InNamespace(netns, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        try
        {
            await socket.ConnectAsync(IPAddress.Parse(ImdsBlockRules.Address), 80, timeout.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
