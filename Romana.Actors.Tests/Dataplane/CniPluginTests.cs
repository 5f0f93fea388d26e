using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Akka.Configuration;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;
using Romana.Netlink;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>
/// The CNI plugin (NativeAOT, installed by scripts/install-cni.sh) and the daemon (`romana daemon`) on real network
/// namespaces: nodes on a subnet bridge, pods made by invoking the plugin exactly as a runtime does, real packets.
/// </summary>
[Collection(nameof(CniPluginTests))]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class CniPluginTests
{
    private const string Conflist = """{"cniVersion":"1.0.0","name":"romana","plugins":[{"type":"romana","daemonSocket":"SOCKET"}]}""";

    /// <summary>hocon/single-node.conf as documented, with the journal and the socket moved into the test's folder.</summary>
    private static string DaemonConfig(TempFolder folder, string overrides = "") => folder.Write("romana.conf",
        File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "single-node.conf"))
            .Replace("/var/lib/romana/romana.db", Path.Combine(folder.Path, "romana.db"))
            .Replace("/run/romana/cni.sock", Path.Combine(folder.Path, "cni.sock"))
        + "\n" + overrides + "\n");

    private static string SocketOf(TempFolder folder) => Path.Combine(folder.Path, "cni.sock");

    /// <summary>
    /// A daemon in this process for node n1 (the namespace <paramref name="node"/>), its host agent working inside that
    /// namespace, so a test can speak to its IPAM; the plugin is run by a runtime with Romana's conflist (or <paramref name="conflist"/>).
    /// </summary>
    private static async Task<(RomanaDaemon Daemon, CniRuntime Runtime)> StartDaemonAsync(TempFolder folder, string node,
        string overrides = "", string? conflist = null)
    {
        var config = RomanaConfig.Load(DaemonConfig(folder,
            "romana.node.name = n1\nromana.health.probe-port = 0\nromana.http.port = 0\n" + overrides));
        var daemon = await RomanaDaemon.StartAsync(config, hostNetwork: new LinuxHostNetwork(HostAgentSettings.From(config), node));
        return (daemon, new CniRuntime(node, conflist ?? Conflist.Replace("SOCKET", SocketOf(folder))));
    }

    private static void AwaitSocket(string socket, Process daemon)
    {
        var deadline = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            if (daemon.HasExited)
                throw new InvalidOperationException($"romana daemon exited {daemon.ExitCode}: " +
                    $"{daemon.StandardError.ReadToEnd()}{daemon.StandardOutput.ReadToEnd()}");
            if (deadline.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"romana daemon did not open {socket} within 60 s");
            Thread.Sleep(50);
        }
    }

    private static string AddressOf(CniRuntime.Outcome added) =>
        added.Json["ips"]![0]!["address"]!.GetValue<string>().Split('/')[0];

    private static string HostVethOf(CniRuntime.Outcome added) =>
        added.Json["interfaces"]!.AsArray().Single(i => i!["sandbox"] is null)!["name"]!.GetValue<string>();

    private static void AwaitTrue(Func<bool> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(15)) throw new TimeoutException($"{what}: not within 15 s");
            Thread.Sleep(100);
        }
    }

    /// <summary>A TCP connection from one pod to another: the listener and the client socket are made inside their namespaces.</summary>
    private static async Task<string> TcpRoundTripAsync(string serverNetns, string serverIp, string clientNetns)
    {
        using var listener = NetnsLab.InNamespace(serverNetns, () =>
        {
            var l = new TcpListener(IPAddress.Parse(serverIp), 7000);
            l.Start();
            return l;
        }).Server;
        using var client = NetnsLab.InNamespace(clientNetns,
            () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        var accepting = listener.AcceptAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await client.ConnectAsync(IPAddress.Parse(serverIp), 7000, timeout.Token);
        await client.SendAsync(Encoding.ASCII.GetBytes("hello from a pod"));
        using var accepted = await accepting.WaitAsync(timeout.Token);
        var buffer = new byte[64];
        var read = await accepted.ReceiveAsync(buffer, timeout.Token);
        return Encoding.ASCII.GetString(buffer, 0, read);
    }

    /// <summary>Routes of the host agent's table (the kernel makes the table with its first route; until then there are none).</summary>
    private static string TableRoutes(string node) => NetnsLab.Exec(null, "ip", ["-n", node, "route", "show", "table", "100"]).Output;

    [SkippableFact]
    public async Task Pods_wired_by_the_plugin_reach_each_other_and_their_node_and_DEL_removes_everything_it_made()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var config = DaemonConfig(folder);
        var daemon = lab.Spawn(node, "dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), "daemon", "--config", config]);
        AwaitSocket(SocketOf(folder), daemon);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(SocketOf(folder)));
        var second = NetnsLab.Exec(node, "dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), "daemon", "--config", config]);
        Assert.Equal(1, second.Exit);
        Assert.Equal($"romana: cannot start: romana.cni.socket: another daemon is serving {SocketOf(folder)}", second.Error.Trim());

        var runtime = new CniRuntime(node, Conflist.Replace("SOCKET", SocketOf(folder)));
        var (pod1, pod2) = (lab.AddNamespace("pod1"), lab.AddNamespace("pod2"));
        var added1 = runtime.Add("container-1", pod1);
        Assert.True(added1.Ok, added1.ToString());
        var added2 = runtime.Add("container-2", pod2);
        Assert.True(added2.Ok, added2.ToString());
        var (ip1, ip2) = (AddressOf(added1), AddressOf(added2));
        Assert.True(Ipv4Cidr.Parse("100.64.0.0/16").Contains(Ipv4.Parse(ip1)), ip1);
        Assert.Equal("169.254.1.1", added1.Json["ips"]![0]!["gateway"]!.GetValue<string>());

        Assert.Contains($"inet {ip1}/32", NetnsLab.Ip("-n", pod1, "addr", "show", "eth0"));
        Assert.Contains("default via 169.254.1.1 dev eth0", NetnsLab.Ip("-n", pod1, "route", "show"));
        var hostVeth1 = HostVethOf(added1);
        Assert.Contains($"{ip1} dev {hostVeth1} proto {RomanaRoutes.Protocol} scope link", NetnsLab.Ip("-n", node, "route", "show"));

        Assert.True(NetnsLab.Pings(pod1, ip2), "pod1 -> pod2");
        Assert.True(NetnsLab.Pings(pod2, ip1), "pod2 -> pod1");
        Assert.True(NetnsLab.Pings(pod1, "10.99.0.11"), "pod1 -> its node");
        Assert.True(NetnsLab.Pings(node, ip2), "node -> pod2");
        Assert.Equal("hello from a pod", await TcpRoundTripAsync(pod2, ip2, pod1));
        Assert.Equal("hello from a pod", await TcpRoundTripAsync(node, "10.99.0.11", pod2));

        var checkedOk = runtime.Check("container-1", pod1, added1.Json);
        Assert.True(checkedOk.Ok, checkedOk.ToString());
        NetnsLab.Ip("-n", pod2, "link", "del", "eth0");
        var checkedBroken = runtime.Check("container-2", pod2, added2.Json);
        Assert.False(checkedBroken.Ok);
        Assert.True(checkedBroken.Json["code"]!.GetValue<int>() > 0);
        Assert.Contains("eth0", checkedBroken.Json["msg"]!.GetValue<string>());

        var deleted = runtime.Del("container-1", pod1, added1.Json);
        Assert.True(deleted.Ok, deleted.ToString());
        Assert.DoesNotContain(hostVeth1, NetnsLab.Ip("-n", node, "link", "show"));
        Assert.DoesNotContain(ip1 + " ", NetnsLab.Ip("-n", node, "route", "show"));
        Assert.DoesNotContain("eth0", NetnsLab.Ip("-n", pod1, "link", "show"));
        Assert.True(runtime.Del("container-1", pod1, added1.Json).Ok, "a second DEL succeeds");
        Assert.True(runtime.Del("container-2", pod2, added2.Json).Ok, "DEL of a pod whose interface is already gone succeeds");

        // The released address is the lowest free one again, so a new pod gets it: it was given back to the IPAM.
        var added3 = runtime.Add("container-3", pod1);
        Assert.True(added3.Ok, added3.ToString());
        Assert.Equal(ip1, AddressOf(added3));
        Assert.True(runtime.Del("container-3", pod1, added3.Json).Ok);

        NetnsLab.Exec(null, "kill", ["-TERM", daemon.Id.ToString()]);
        Assert.True(daemon.WaitForExit(TimeSpan.FromSeconds(20)), "the daemon stops on SIGTERM");
        Assert.Equal(0, daemon.ExitCode);
        Assert.False(File.Exists(SocketOf(folder)), "the socket is removed on stop");
    }

    [SkippableFact]
    public async Task A_node_forwards_to_the_blocks_of_another_node_of_its_subnet_until_they_are_withdrawn()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var subnet = lab.AddSubnet("sub");
        var node1 = lab.AddNode("n1", subnet, "10.99.0.11/24");
        var node2 = lab.AddNode("n2", subnet, "10.99.0.12/24");
        var (daemon, runtime) = await StartDaemonAsync(folder, node1,
            "romana.node.ip = 10.99.0.11\nromana.host-agent.refresh-interval = 200ms");
        await using var _ = daemon;
        var pod1 = lab.AddNamespace("pod1");
        var added = runtime.Add("container-1", pod1);
        Assert.True(added.Ok, added.ToString());
        var ip1 = AddressOf(added);

        // Node n2 joins the subnet and takes a block by allocating there; the test plays n2's pod (an address on its loopback)
        // and n2's own host route back to n1's block.
        Assert.IsType<Succeeded>(await daemon.Ipam.AskAsync(new AddNode(new NodeName("n2"), daemon.Node.Subnet, "10.99.0.12")));
        var remote = Assert.IsType<AddressAssigned>(await daemon.Ipam.AskAsync(new Allocate(new NodeName("n2"),
            new AllocationKey("remote-pod"), "default/remote")));
        var remoteBlock = Ipv4Cidr.Containing(remote.Address, 26);
        NetnsLab.Ip("-n", node2, "addr", "add", $"{remote.Address}/32", "dev", "lo");
        NetnsLab.Ip("-n", node2, "route", "add", Ipv4Cidr.Containing(Ipv4.Parse(ip1), 26).ToString(), "via", "10.99.0.11");

        AwaitTrue(() => TableRoutes(node1).Contains($"{remoteBlock} via 10.99.0.12 dev eth0 proto {RomanaRoutes.Protocol}"),
            $"node1's host route to {remoteBlock}");
        Assert.True(NetnsLab.Pings(pod1, remote.Address.ToString()), "pod on n1 -> pod address on n2, through n1's host route");

        Assert.IsType<NodeRemoved>(await daemon.Ipam.AskAsync(new RemoveNode(new NodeName("n2"), "test: n2 leaves")));
        AwaitTrue(() => !TableRoutes(node1).Contains(remoteBlock.ToString()), $"withdrawal of {remoteBlock}");
        Assert.False(NetnsLab.Pings(pod1, remote.Address.ToString()), "no route once the block is withdrawn");
        Assert.True(runtime.Del("container-1", pod1, added.Json).Ok);
    }

    [SkippableFact]
    public async Task An_ADD_that_fails_after_the_address_was_handed_out_gives_it_back_and_leaves_no_veth()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var (daemon, runtime) = await StartDaemonAsync(folder, node);
        await using var _ = daemon;
        var pod = lab.AddNamespace("pod");
        NetnsLab.Ip("-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer");

        var failed = runtime.Add("container-1", pod);
        Assert.False(failed.Ok);
        Assert.Equal(105, failed.Json["code"]!.GetValue<int>());
        Assert.Contains("eth0", failed.Json["msg"]!.GetValue<string>());
        Assert.IsType<Failed>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("container-1/eth0"))));
        Assert.Equal(["eth0", "lo"], NetnsLab.Ip("-n", node, "-br", "link", "show").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', '@')[0]).Order());
        Assert.DoesNotContain("100.64.", NetnsLab.Ip("-n", node, "route", "show"));
    }

    [SkippableFact]
    public async Task GC_removes_what_Romana_made_for_attachments_the_runtime_no_longer_lists_and_keeps_the_rest()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var (daemon, runtime) = await StartDaemonAsync(folder, node);
        await using var _ = daemon;
        var (pod1, pod2) = (lab.AddNamespace("pod1"), lab.AddNamespace("pod2"));
        var (kept, leaked) = (runtime.Add("container-1", pod1), runtime.Add("container-2", pod2));
        Assert.True(kept.Ok && leaked.Ok, $"{kept} {leaked}");

        var collected = runtime.Gc(("container-1", "eth0"));
        Assert.True(collected.Ok, collected.ToString());
        var links = NetnsLab.Ip("-n", node, "-br", "link", "show");
        Assert.Contains(HostVethOf(kept), links);
        Assert.DoesNotContain(HostVethOf(leaked), links);
        Assert.IsType<Failed>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("container-2/eth0"))));
        Assert.IsType<AddressAssigned>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("container-1/eth0"))));
        Assert.True(NetnsLab.Pings(pod1, "10.99.0.11"), "the pod the runtime still lists keeps its network");
        Assert.True(runtime.Check("container-1", pod1, kept.Json).Ok);
    }

    [SkippableFact]
    public async Task The_reference_plugins_tuning_and_portmap_take_Romanas_result_as_prevResult()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        Skip.If(CniRuntime.WhyNoReferencePlugins is not null, CniRuntime.WhyNoReferencePlugins);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var (daemon, runtime) = await StartDaemonAsync(folder, node, conflist: $$$"""
            {"cniVersion":"1.0.0","name":"romana","plugins":[
              {"type":"romana","daemonSocket":"{{{SocketOf(folder)}}}"},
              {"type":"tuning","sysctl":{"net.core.somaxconn":"512"}},
              {"type":"portmap","capabilities":{"portMappings":true}}]}
            """);
        await using var _ = daemon;
        var pod = lab.AddNamespace("pod");
        var mappings = JsonNode.Parse("""{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}""")!.AsObject();
        var added = runtime.Add("container-1", pod, runtimeConfig: mappings);
        Assert.True(added.Ok, added.ToString());
        var ip = AddressOf(added);
        Assert.Equal("512", NetnsLab.Exec(pod, "sysctl", ["-n", "net.core.somaxconn"]).Output.Trim());
        Assert.Contains($"--to-destination {ip}:80", NetnsLab.Exec(node, "iptables", ["-t", "nat", "-S"]).Output);

        var checkedOk = runtime.Check("container-1", pod, added.Json);
        Assert.True(checkedOk.Ok, checkedOk.ToString());
        var deleted = runtime.Del("container-1", pod, added.Json, runtimeConfig: mappings);
        Assert.True(deleted.Ok, deleted.ToString());
        Assert.DoesNotContain(ip, NetnsLab.Exec(node, "iptables", ["-t", "nat", "-S"]).Output);
        Assert.IsType<Failed>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("container-1/eth0"))));
    }

    /// <summary>One request line to the daemon's socket, as any local client could send it; the reply line as JSON.</summary>
    private static JsonObject AskSocket(string socket, string line)
    {
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(socket));
        client.Send(Encoding.UTF8.GetBytes(line + "\n"));
        using var reader = new StreamReader(new NetworkStream(client));
        return JsonNode.Parse(reader.ReadLine()!)!.AsObject();
    }

    private static string Links(string netns) => NetnsLab.Ip("-n", netns, "-br", "link", "show");

    /// <summary>
    /// The key is the spec's (container id, interface), but the daemon records the namespace it handed the address to: an ADD
    /// of the same key from another pod's namespace is a conflict and changes nothing, and neither does the DEL the runtime
    /// sends after that failed ADD, nor a CHECK from there. The first pod keeps its veth, route and address throughout.
    /// </summary>
    [SkippableFact]
    public async Task A_container_id_reused_in_another_pod_is_a_conflict_that_leaves_the_first_pod_wired()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var (daemon, runtime) = await StartDaemonAsync(folder, node);
        await using var _ = daemon;
        var (pod1, pod2) = (lab.AddNamespace("pod1"), lab.AddNamespace("pod2"));
        var first = runtime.Add("reused", pod1);
        Assert.True(first.Ok, first.ToString());
        var (ip1, veth1) = (AddressOf(first), HostVethOf(first));

        var second = runtime.Add("reused", pod2);
        Assert.False(second.Ok, $"the second ADD must fail: {second}");
        Assert.Equal(101, second.Json["code"]!.GetValue<int>());
        Assert.Contains("namespace", second.Json["msg"]!.GetValue<string>());
        var deleted = runtime.Del("reused", pod2, null);
        Assert.True(deleted.Ok, deleted.ToString());
        var checkedFromPod2 = runtime.Check("reused", pod2, first.Json);
        Assert.False(checkedFromPod2.Ok, checkedFromPod2.ToString());

        Assert.Contains(veth1, Links(node));
        Assert.DoesNotContain("eth0", Links(pod2));
        Assert.Contains($"{ip1} dev {veth1} proto {RomanaRoutes.Protocol}", NetnsLab.Ip("-n", node, "route", "show"));
        Assert.Equal(ip1, Assert.IsType<AddressAssigned>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("reused/eth0"))))
            .Address.ToString());
        Assert.True(NetnsLab.Pings(node, ip1), "node -> the first pod, still wired");
        Assert.True(runtime.Check("reused", pod1, first.Json).Ok);
        Assert.True(runtime.Del("reused", pod1, first.Json).Ok);
        Assert.IsType<Failed>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("reused/eth0"))));
    }

    /// <summary>
    /// CNI_NETNS naming the node's own namespace (the plugin's) would wire a "pod" into the host and, on a node without a
    /// default route in its main table, give the node a default route via 169.254.1.1. It is refused before any address is
    /// handed out.
    /// </summary>
    [SkippableFact]
    public async Task An_ADD_into_the_nodes_own_namespace_is_refused_and_leaves_the_node_as_it_was()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var (daemon, runtime) = await StartDaemonAsync(folder, node);
        await using var _ = daemon;
        var routesBefore = NetnsLab.Ip("-n", node, "route", "show");
        Assert.DoesNotContain("default", routesBefore);

        var added = runtime.Run("romana", "ADD", "hijack", node, "net9",
            $$"""{"cniVersion":"1.0.0","name":"romana","type":"romana","daemonSocket":"{{SocketOf(folder)}}"}""");
        Assert.False(added.Ok, added.ToString());
        Assert.Equal(4, added.Json["code"]!.GetValue<int>());
        Assert.Contains("CNI_NETNS", added.Json["msg"]!.GetValue<string>());
        Assert.Equal(routesBefore, NetnsLab.Ip("-n", node, "route", "show"));
        Assert.DoesNotContain("net9", Links(node));
        Assert.DoesNotContain("rmn", Links(node));
        var held = Assert.IsType<AllocationsOf>(await daemon.Ipam.AskAsync(new GetAllocations(new NodeName("n1"))));
        Assert.Empty(held.Allocations);
    }

    /// <summary>
    /// Multus and friends give a pod several attachments of one network, each with its own interface name: each is added,
    /// checked and deleted on its own, and deleting one leaves the other working.
    /// </summary>
    [SkippableFact]
    public async Task A_pod_with_two_romana_interfaces_gets_both_and_each_is_checked_and_deleted_on_its_own()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var (daemon, runtime) = await StartDaemonAsync(folder, node);
        await using var _ = daemon;
        var (pod, other) = (lab.AddNamespace("pod"), lab.AddNamespace("other"));
        var eth0 = runtime.Add("multi", pod);
        Assert.True(eth0.Ok, eth0.ToString());
        var net1 = runtime.Add("multi", pod, ifName: "net1");
        Assert.True(net1.Ok, net1.ToString());
        var peer = runtime.Add("peer", other);
        Assert.True(peer.Ok, peer.ToString());
        var (ip0, ip1, ipPeer) = (AddressOf(eth0), AddressOf(net1), AddressOf(peer));
        Assert.NotEqual(ip0, ip1);

        Assert.True(NetnsLab.Pings(node, ip0) && NetnsLab.Pings(node, ip1), "node -> both of the pod's addresses");
        Assert.True(NetnsLab.Pings(other, ip1), "another pod -> the second interface");
        Assert.True(runtime.Check("multi", pod, eth0.Json).Ok, "CHECK eth0");
        Assert.True(runtime.Check("multi", pod, net1.Json, ifName: "net1").Ok, "CHECK net1");

        var deleted = runtime.Del("multi", pod, eth0.Json);
        Assert.True(deleted.Ok, deleted.ToString());
        Assert.DoesNotContain("eth0", Links(pod));
        Assert.True(runtime.Check("multi", pod, net1.Json, ifName: "net1").Ok, "CHECK net1 once eth0 is gone");
        Assert.True(NetnsLab.Pings(pod, ipPeer), "the pod reaches another pod through net1 alone");
        Assert.True(NetnsLab.Pings(node, ip1), "node -> net1 once eth0 is gone");

        var again = runtime.Add("multi", pod);
        Assert.True(again.Ok, again.ToString());
        Assert.True(runtime.Check("multi", pod, again.Json).Ok, "CHECK eth0, added again after net1");
        Assert.Contains($"from {ip1} lookup", NetnsLab.Ip("-n", pod, "rule", "show"));
        var rule = NetnsLab.Ip("-n", pod, "rule", "show").Split('\n').Single(line => line.Contains($"from {ip1} "));
        NetnsLab.Ip("-n", pod, "rule", "del", "priority", rule.Split(':')[0]);
        var withoutRule = runtime.Check("multi", pod, net1.Json, ifName: "net1");
        Assert.Equal(107, withoutRule.Json["code"]!.GetValue<int>());
        Assert.Contains("rule", withoutRule.Json["msg"]!.GetValue<string>());
        var readded = runtime.Add("multi", pod, ifName: "net1");
        Assert.True(readded.Ok, $"a repeated ADD puts the rule back: {readded}");
        Assert.Equal(ip1, AddressOf(readded));
        Assert.True(runtime.Del("multi", pod, net1.Json, ifName: "net1").Ok);
        Assert.DoesNotContain($"from {ip1} ", NetnsLab.Ip("-n", pod, "rule", "show"));
        Assert.True(runtime.Check("multi", pod, again.Json).Ok, "CHECK eth0 once net1 is gone");
        Assert.True(NetnsLab.Pings(pod, ipPeer), "the pod reaches another pod through eth0 alone");
        Assert.IsType<Failed>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("multi/net1"))));
    }

    /// <summary>
    /// A GC that is not the runtime's (no list at all, or an empty one while pods are wired) releases nothing that is still
    /// wired: an address is released by GC only once its veth and /32 route are gone. And an address whose route still
    /// exists on the node is never handed out again: the next ADD gets another one.
    /// </summary>
    [SkippableFact]
    public async Task GC_releases_no_address_whose_veth_or_route_is_still_there_and_ADD_never_hands_one_out()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var (daemon, runtime) = await StartDaemonAsync(folder, node);
        await using var _ = daemon;
        var (pod1, pod2, pod3) = (lab.AddNamespace("pod1"), lab.AddNamespace("pod2"), lab.AddNamespace("pod3"));
        var (added1, added2) = (runtime.Add("container-1", pod1), runtime.Add("container-2", pod2));
        Assert.True(added1.Ok && added2.Ok, $"{added1} {added2}");
        var (ip1, ip2) = (AddressOf(added1), AddressOf(added2));

        var noList = AskSocket(SocketOf(folder), """{"command":"GC","containerId":"","ifName":""}""");
        Assert.False(noList["ok"]!.GetValue<bool>(), noList.ToJsonString());
        Assert.Equal("invalid", noList["code"]!.GetValue<string>());
        Assert.Contains("valid", noList["error"]!.GetValue<string>());

        var emptyList = AskSocket(SocketOf(folder), """{"command":"GC","containerId":"","ifName":"","valid":[]}""");
        Assert.True(emptyList["ok"]!.GetValue<bool>(), emptyList.ToJsonString());
        Assert.Equal(0, emptyList["released"]?.GetValue<int>() ?? 0);
        Assert.IsType<AddressAssigned>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("container-1/eth0"))));
        Assert.IsType<AddressAssigned>(await daemon.Ipam.AskAsync(new GetAddress(new AllocationKey("container-2/eth0"))));

        // The IPAM is told, by other means, that pod1's address is free while pod1 is still wired: the next ADD does not get it.
        Assert.IsType<Succeeded>(await daemon.Ipam.AskAsync(
            new Release(new AllocationKey("container-1/eth0"), null, "test: released by hand")));
        var added3 = runtime.Add("container-3", pod3);
        Assert.True(added3.Ok, added3.ToString());
        Assert.NotEqual(ip1, AddressOf(added3));
        Assert.NotEqual(ip2, AddressOf(added3));
        Assert.True(NetnsLab.Pings(node, ip1), "pod1 keeps its address");
        Assert.True(NetnsLab.Pings(node, AddressOf(added3)), "pod3 is reachable at its own");
        var held = Assert.IsType<AllocationsOf>(await daemon.Ipam.AskAsync(new GetAllocations(new NodeName("n1"))));
        Assert.Contains(held.Allocations, a => a.Key.Value == $"in-use:{ip1}" && a.Address.ToString() == ip1);

        // Once pod1 is really gone, the runtime's GC gives its address back, and it is handed out again.
        Assert.True(runtime.Del("container-1", pod1, added1.Json).Ok);
        var collected = runtime.Gc(("container-2", "eth0"), ("container-3", "eth0"));
        Assert.True(collected.Ok, collected.ToString());
        var added4 = runtime.Add("container-4", pod1);
        Assert.True(added4.Ok, added4.ToString());
        Assert.Equal(ip1, AddressOf(added4));
    }
}
