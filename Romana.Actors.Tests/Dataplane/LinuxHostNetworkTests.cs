using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>The Linux adapter of the host port on a real kernel, inside a node namespace of a lab.</summary>
public class LinuxHostNetworkTests
{
    private static readonly Ipv4Cidr PodCidr = Ipv4Cidr.Parse("100.64.0.0/16");

    private static HostRoute Route(string block, string via) => new(Ipv4Cidr.Parse(block), Ipv4.Parse(via));

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
        Assert.Equal("1\n2", NetnsLab.Exec(node, "sysctl", ["-n", "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter"]).Output.Trim());

        NetnsLab.Ip("-n", node, "route", "add", "100.64.5.0/26", "via", "10.99.0.99", "table", "100");
        Assert.Empty(await network.ReadRoutesAsync());

        await network.ApplyAsync(new([Route("100.64.0.64/26", "10.99.0.12"), Route("100.64.0.128/26", "10.99.0.13")], []));
        Assert.Equal(new Dictionary<Ipv4Cidr, Ipv4> { [Ipv4Cidr.Parse("100.64.0.64/26")] = Ipv4.Parse("10.99.0.12"), [Ipv4Cidr.Parse("100.64.0.128/26")] = Ipv4.Parse("10.99.0.13") },
            await network.ReadRoutesAsync());
        Assert.Contains("100.64.0.64/26 via 10.99.0.12 dev eth0 proto 82", NetnsLab.Ip("-n", node, "route", "show", "table", "100"));

        await network.ApplyAsync(new([Route("100.64.0.64/26", "10.99.0.13")], [Ipv4Cidr.Parse("100.64.0.128/26")]));
        Assert.Equal(new Dictionary<Ipv4Cidr, Ipv4> { [Ipv4Cidr.Parse("100.64.0.64/26")] = Ipv4.Parse("10.99.0.13") }, await network.ReadRoutesAsync());
        Assert.Contains("100.64.5.0/26 via 10.99.0.99", NetnsLab.Ip("-n", node, "route", "show", "table", "100"));
    }

    [SkippableFact]
    public async Task A_route_the_kernel_refuses_is_an_error_naming_the_command()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var network = new LinuxHostNetwork(HostAgentSettings.Default, node);
        // 10.98.0.1 is on no link of the node: the kernel answers "Nexthop has invalid gateway".
        var failure = await Assert.ThrowsAsync<HostNetworkException>(() => network.ApplyAsync(new([Route("100.64.0.64/26", "10.98.0.1")], [])));
        Assert.Contains("ip -batch -", failure.Message);
        Assert.Contains("gateway", failure.Message);
    }
}
