using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;
using Romana.Netlink;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>The Linux adapter of the host port on a real kernel, inside a node namespace of a lab.</summary>
public class LinuxHostNetworkTests
{
    private static readonly Ipv4Cidr PodCidr = Ipv4Cidr.Parse("100.64.0.0/16");
    private static readonly string[] ForwardingSysctls =
        ["net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"];

    private static HostRoute Route(string block, string via) => new(Ipv4Cidr.Parse(block), Ipv4.Parse(via));

    private static Dictionary<Ipv4Cidr, Ipv4> Routes(params (string Block, string Via)[] routes) =>
        routes.ToDictionary(route => Ipv4Cidr.Parse(route.Block), route => Ipv4.Parse(route.Via));

    private static string TableOf(string node, int table) => NetnsLab.Ip("-n", node, "route", "show", "table", table.ToString());

    /// <summary>The forwarding sysctls of a namespace as `sysctl -n` prints them, one per line.</summary>
    private static string SysctlsOf(string node) => NetnsLab.Exec(node, "sysctl", ["-n", .. ForwardingSysctls]).Output.Trim();

    /// <summary>The same values of the namespace this test process runs in (the host's), read from its own /proc/sys.</summary>
    private static string HostSysctls() =>
        string.Join('\n', ForwardingSysctls.Select(key => File.ReadAllText($"/proc/sys/{key.Replace('.', '/')}").Trim()));

    [SkippableFact]
    public async Task Prepare_is_idempotent_and_routes_change_one_by_one_without_touching_a_foreign_route()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        var subnet = lab.AddSubnet("sub");
        var node = lab.AddNode("n1", subnet, "10.99.0.11/24");
        var network = new LinuxHostNetwork(HostAgentSettings.Default, node);

        await network.PrepareAsync(PodCidr);
        await network.PrepareAsync(PodCidr);
        Assert.Single(NetnsLab.Ip("-n", node, "rule", "show").Split('\n'), line => line.Contains("to 100.64.0.0/16 lookup 100"));
        Assert.Equal("1\n2\n2", SysctlsOf(node));

        NetnsLab.Ip("-n", node, "route", "add", "100.64.5.0/26", "via", "10.99.0.99", "table", "100");
        Assert.Empty(await network.ReadRoutesAsync());

        await network.ApplyAsync(new([Route("100.64.0.64/26", "10.99.0.12"), Route("100.64.0.128/26", "10.99.0.13")], []));
        Assert.Equal(Routes(("100.64.0.64/26", "10.99.0.12"), ("100.64.0.128/26", "10.99.0.13")), await network.ReadRoutesAsync());
        Assert.Contains($"100.64.0.64/26 via 10.99.0.12 dev eth0 proto {RomanaRoutes.Protocol}", TableOf(node, 100));

        await network.ApplyAsync(new([Route("100.64.0.64/26", "10.99.0.13")], [Ipv4Cidr.Parse("100.64.0.128/26")]));
        Assert.Equal(Routes(("100.64.0.64/26", "10.99.0.13")), await network.ReadRoutesAsync());
        Assert.Contains("100.64.5.0/26 via 10.99.0.99", TableOf(node, 100));

        // Removing a route that is already gone leaves the table as wanted: no error.
        await network.ApplyAsync(new([], [Ipv4Cidr.Parse("100.64.0.128/26")]));
        Assert.Equal(Routes(("100.64.0.64/26", "10.99.0.13")), await network.ReadRoutesAsync());
    }

    [SkippableFact]
    public async Task A_route_the_kernel_refuses_is_an_error_naming_the_operation_and_the_kernels_reason()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var network = new LinuxHostNetwork(HostAgentSettings.Default, node);
        // 10.98.0.1 is on no link of the node: the kernel answers "Nexthop has invalid gateway".
        var failure = await Assert.ThrowsAsync<HostNetworkException>(
            () => network.ApplyAsync(new([Route("100.64.0.64/26", "10.98.0.1")], [])));
        Assert.Contains("adding route 100.64.0.64/26 via 10.98.0.1 in table 100", failure.Message);
        Assert.Contains("Nexthop has invalid gateway", failure.Message);
        Assert.Contains($"netns {node}", failure.Message);
    }

    [SkippableFact]
    public async Task The_sysctls_are_set_in_the_nodes_namespace_and_in_no_other()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        var subnet = lab.AddSubnet("sub");
        var node = lab.AddNode("n1", subnet, "10.99.0.11/24");
        var neighbour = lab.AddNode("n2", subnet, "10.99.0.12/24");
        foreach (var each in new[] { node, neighbour })
        {
            // A new namespace starts with the host's IPv4 values: set them apart from what Prepare writes.
            var (exit, _, error) = NetnsLab.Exec(each, "sysctl", ["-qw", .. ForwardingSysctls.Select(key => $"{key}=0")]);
            Assert.True(exit == 0, error);
            Assert.Equal("0\n0\n0", SysctlsOf(each));
        }
        var host = HostSysctls();

        await new LinuxHostNetwork(HostAgentSettings.Default, node).PrepareAsync(PodCidr);

        Assert.Equal("1\n2\n2", SysctlsOf(node));
        Assert.Equal("0\n0\n0", SysctlsOf(neighbour));
        Assert.Equal(host, HostSysctls());
    }

    [SkippableFact]
    public async Task A_table_above_255_is_used_by_its_full_number()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var network = new LinuxHostNetwork(HostAgentSettings.Default with { RouteTable = 1000 }, node);

        await network.PrepareAsync(PodCidr);
        await network.PrepareAsync(PodCidr);
        Assert.Single(NetnsLab.Ip("-n", node, "rule", "show").Split('\n'), line => line.Contains("to 100.64.0.0/16 lookup 1000"));

        await network.ApplyAsync(new([Route("100.64.0.64/26", "10.99.0.12")], []));
        Assert.Equal(Routes(("100.64.0.64/26", "10.99.0.12")), await network.ReadRoutesAsync());
        Assert.Contains($"100.64.0.64/26 via 10.99.0.12 dev eth0 proto {RomanaRoutes.Protocol}", TableOf(node, 1000));
        // Not cut down to the byte of rtm_table: table 232 (1000 mod 256) was never made.
        Assert.DoesNotContain("100.64.0.64/26", NetnsLab.Exec(null, "ip", ["-n", node, "route", "show", "table", "232"]).Output);

        await network.ApplyAsync(new([], [Ipv4Cidr.Parse("100.64.0.64/26")]));
        Assert.Empty(await network.ReadRoutesAsync());
    }

    [SkippableFact]
    public async Task A_destination_that_has_someone_elses_route_is_left_alone_and_reported()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var network = new LinuxHostNetwork(HostAgentSettings.Default, node);
        NetnsLab.Ip("-n", node, "route", "add", "100.64.0.64/26", "via", "10.99.0.99", "table", "100", "proto", "static");

        var failure = await Assert.ThrowsAsync<HostNetworkException>(() =>
            network.ApplyAsync(new([Route("100.64.0.64/26", "10.99.0.12"), Route("100.64.0.128/26", "10.99.0.13")], [])));

        Assert.Contains("not adding route 100.64.0.64/26 via 10.99.0.12 in table 100", failure.Message);
        Assert.Contains("not Romana's", failure.Message);
        Assert.DoesNotContain("100.64.0.128/26", failure.Message);
        Assert.Contains("100.64.0.64/26 via 10.99.0.99 dev eth0 proto static", TableOf(node, 100));
        Assert.Equal(Routes(("100.64.0.128/26", "10.99.0.13")), await network.ReadRoutesAsync());
    }

    [SkippableFact]
    public async Task A_namespace_that_does_not_exist_is_an_error_naming_it()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "network namespaces exist on Linux only");
        var network = new LinuxHostNetwork(HostAgentSettings.Default, "rmn-no-such-namespace");
        var failure = await Assert.ThrowsAsync<HostNetworkException>(() => network.ReadRoutesAsync());
        Assert.Contains("/var/run/netns/rmn-no-such-namespace", failure.Message);
    }
}
