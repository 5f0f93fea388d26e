using Romana.Actors.Tests.Support;
using Romana.Netlink;

namespace Romana.Actors.Tests.Netlink;

/// <summary>Work inside another network namespace, on a real kernel, while the test's own threads stay where they are.</summary>
public class NetworkNamespaceTests
{
    private const string IpForward = "/proc/sys/net/ipv4/ip_forward";
    private const string ThreadNamespace = "/proc/thread-self/ns/net";

    [SkippableFact]
    public async Task A_thread_inside_a_namespace_sees_that_namespaces_proc_sys_net_and_the_caller_stays_home()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        var node = lab.AddNamespace("n1");
        var home = File.ReadAllText(IpForward).Trim();
        var homeNamespace = new FileInfo(ThreadNamespace).LinkTarget;
        // The opposite of the host's value, so that reading the host's file by mistake cannot pass.
        var inside = home == "1" ? "0" : "1";
        NetnsLab.Exec(node, "sysctl", ["-qw", $"net.ipv4.ip_forward={inside}"]);

        using var space = NetworkNamespace.Open(NetnsLab.PathOf(node));
        var (seen, seenNamespace) = await space.RunAsync(() =>
            (File.ReadAllText(IpForward).Trim(), new FileInfo(ThreadNamespace).LinkTarget));

        Assert.Equal(inside, seen);
        Assert.NotEqual(homeNamespace, seenNamespace);
        Assert.Equal(home, File.ReadAllText(IpForward).Trim());
        Assert.Equal(homeNamespace, new FileInfo(ThreadNamespace).LinkTarget);
    }

    [SkippableFact]
    public async Task A_netlink_socket_opened_inside_a_namespace_sees_that_namespaces_links()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        var node = lab.AddNamespace("n1");
        NetnsLab.Ip("-n", node, "link", "add", "rmntest0", "type", "veth", "peer", "name", "rmntest1");

        using var space = NetworkNamespace.Open(NetnsLab.PathOf(node));
        var links = await space.RunAsync(() =>
        {
            using var socket = NetlinkSocket.Open();
            return new RouteNetlink(socket).ListLinks("listing links").Select(link => link.Name).ToList();
        });

        Assert.Equal(new[] { "lo", "rmntest0", "rmntest1" }, links.Order());
    }

    [SkippableFact]
    public async Task A_namespace_that_cannot_be_entered_fails_the_task_with_the_reason()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        // A regular file opens fine but is no namespace: setns refuses it.
        var notANamespace = Path.GetTempFileName();
        try
        {
            using var space = NetworkNamespace.Open(notANamespace);
            var failure = await Assert.ThrowsAsync<NetworkNamespaceException>(() => space.RunAsync(() => true));
            Assert.Contains($"cannot enter network namespace {notANamespace}", failure.Message);
        }
        finally
        {
            File.Delete(notANamespace);
        }
    }
}
