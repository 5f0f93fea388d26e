using System.Net;
using System.Net.Sockets;
using Romana.Actors.Addressing;
using Romana.Actors.Tests.Support;

namespace Romana.Actors.Tests.Policy;

/// <summary>
/// The nft interpreter the property tests read the compiled rules with, proven against the kernel: hand-written rulesets
/// (sets, prefixes, ranges, concatenations, verdict maps, jump/goto/return/continue, several base chains, ct state) are
/// loaded into a node namespace that routes between a client and a server namespace; for every source, destination,
/// protocol and port, a real packet (TCP SYN to a closed port: a reset means it arrived; UDP to a closed port: an ICMP
/// port-unreachable means it arrived; silence means dropped) must agree with what the interpreter reads from `nft -j`.
/// </summary>
public sealed class NftInterpreterTests
{
    private static readonly string[] Clients = ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"];
    private static readonly string[] Servers = ["10.2.0.2", "10.2.0.3", "10.2.0.4", "10.2.0.5"];
    private static readonly int[] Ports = [22, 53, 80, 85, 150, 443, 450, 1500];

    /// <summary>Named sets and maps, prefixes, ranges, concatenations, anonymous sets, jump/goto/return, policy drop.</summary>
    public const string Dispatching = """
        table inet romana_policy {
          set sources { type ipv4_addr; flags interval; elements = { 10.1.0.2, 10.1.0.4-10.1.0.5 } }
          set services { type ipv4_addr . inet_proto . inet_service; flags interval;
            elements = { 10.1.0.3 . tcp . 80-90, 10.1.0.0/30 . udp . 53 } }
          map dispatch { type ipv4_addr : verdict;
            elements = { 10.2.0.2 : jump to_a, 10.2.0.3 : goto to_b, 10.2.0.4 : jump to_b, 10.2.0.5 : drop } }
          chain to_a {
            ip saddr @sources tcp dport { 80, 443, 1000-2000 } counter accept
            meta l4proto udp th dport 53 ip saddr != 10.1.0.5 accept
            return
          }
          chain to_b {
            ip saddr . meta l4proto . th dport @services accept
            ip saddr 10.1.0.4 udp dport != 53 drop
            udp dport vmap { 53 : accept, 85 : drop, 22 : jump to_a }
            tcp dport 22 return
            ip saddr 10.1.0.5 tcp dport 150 accept
          }
          chain forward {
            type filter hook forward priority 0; policy drop;
            ct state established,related accept
            ct state invalid drop
            ip daddr vmap @dispatch
            ip saddr 10.1.0.2/31 tcp dport != 22 tcp dport >= 100 tcp dport < 200 accept
            ip saddr 10.1.0.4 ip protocol udp accept
          }
        }
        """;

    /// <summary>Two base chains of the hook in priority order (an accept in the first does not skip the second), policy
    /// accept, anonymous concatenations with prefixes, continue, jump into a chain that goes to another.</summary>
    public const string Layered = """
        table inet romana_policy {
          chain early {
            type filter hook forward priority -10; policy accept;
            ip saddr . ip daddr { 10.1.0.2 . 10.2.0.2, 10.1.0.3 . 10.2.0.0/30 } drop
            ct state new tcp dport 443 accept
          }
          chain late {
            type filter hook forward priority 10; policy accept;
            ct state established,related accept
            meta l4proto tcp tcp dport 400-500 drop
            udp dport { 22, 53 } ip daddr 10.2.0.5 drop
            ip daddr 10.2.0.4 jump deep
            meta l4proto . th dport { udp . 1500, tcp . 150 } ip daddr 10.2.0.3 drop
          }
          chain deep {
            ip saddr 10.1.0.5 continue
            ip saddr 10.1.0.5 th dport < 100 drop
            tcp dport 80 goto deeper
            udp dport > 1000 drop
          }
          chain deeper {
            ip saddr 10.1.0.4 drop
          }
        }
        """;

    /// <summary>The connection mark: matched under a mask and as a prefix, set by one rule and read by the rules after it;
    /// ct direction.</summary>
    public const string Marked = """
        table inet romana_policy {
          chain forward {
            type filter hook forward priority filter; policy accept;
            ct state related accept
            ct state established ct direction reply accept
            ct state established ct mark and 0xffff0000 == 0x00030000 accept
            ct direction original ip daddr { 10.2.0.3, 10.2.0.5 } ct mark set ct mark and 0x0000ffff or 0x00030000
            ip saddr 10.1.0.2 ct mark and 0xffff0000 == 0x00030000 drop
            ip saddr 10.1.0.3 ct mark and 0xffff0000 != 0x00030000 drop
            tcp dport 80 ct mark set 0x00050000
            ct mark 0x00050000 ip daddr 10.2.0.4 drop
            ct direction reply drop
          }
        }
        """;

    /// <summary>The compiler's pod chain: an interval map of `protocol . port` segments going to segment chains, a merged
    /// interval set, the protocol guard, and named counters in chains reached by goto.</summary>
    public const string Segmented = """
        table inet romana_policy {
          counter in.s { }
          set m.peers { type ipv4_addr; flags interval; elements = { 10.1.0.2, 10.1.0.4-10.1.0.5 } }
          set p.one { type ipv4_addr; elements = { 10.1.0.3 } }
          chain s.a {
            ip saddr @m.peers return
            ip saddr @p.one udp dport 53 return
            counter name in.s drop
          }
          chain s.any {
            return
          }
          map v.in.s { type inet_proto . inet_service : verdict; flags interval;
            elements = { tcp . 80-90 : goto s.a, tcp . 443 : goto s.any, udp . 0-100 : goto s.a, tcp . 1000-2000 : goto s.any } }
          chain in.s {
            meta l4proto { tcp, udp, sctp } meta l4proto . th dport vmap @v.in.s
            ip saddr 10.1.0.5 return
            counter name in.s drop
          }
          chain forward {
            type filter hook forward priority filter; policy accept;
            ct state established,related accept
            ip daddr { 10.2.0.2, 10.2.0.4 } jump in.s
            ip daddr 10.2.0.3 ip saddr 10.1.0.2 drop
          }
        }
        """;

    [SkippableTheory]
    [InlineData(nameof(Segmented))]
    [InlineData(nameof(Dispatching))]
    [InlineData(nameof(Layered))]
    [InlineData(nameof(Marked))]
    public async Task The_interpreter_agrees_with_the_kernel_on_real_packets(string name)
    {
        SkipUnlessNftInNamespaces();
        using var lab = new NetnsLab();
        var (node, client, _) = Route(lab);
        Load(node, name switch
        {
            nameof(Dispatching) => Dispatching,
            nameof(Layered) => Layered,
            nameof(Segmented) => Segmented,
            _ => Marked,
        });
        var ruleset = NftRuleset.Parse(ListTable(node));

        var probes = (from source in Clients
                      from destination in Servers
                      from protocol in new[] { NftPacket.Tcp, NftPacket.Udp }
                      from port in Ports
                      select new NftPacket(Ipv4.Parse(source), Ipv4.Parse(destination), protocol, port)).ToList();
        using var throttle = new SemaphoreSlim(24);
        var delivered = await Task.WhenAll(probes.Select(async probe =>
        {
            await throttle.WaitAsync();
            try
            {
                return await DeliveredAsync(client, probe);
            }
            finally
            {
                throttle.Release();
            }
        }));

        var disagreements = probes.Select((probe, i) => (probe, kernel: delivered[i], interpreted: ruleset.Evaluate(probe)))
            .Where(x => x.kernel != x.interpreted.Accepted)
            .Select(x => $"{x.probe}: kernel {(x.kernel ? "delivered" : "dropped")}, interpreter {x.interpreted}")
            .ToList();
        Assert.True(disagreements.Count == 0, string.Join('\n', disagreements));
        // Both outcomes occur, so the agreement says something about each
        Assert.Contains(true, delivered);
        Assert.Contains(false, delivered);
    }

    [SkippableFact]
    public void What_the_interpreter_does_not_know_is_an_error_naming_it_never_a_verdict()
    {
        SkipUnlessNftInNamespaces();
        using var lab = new NetnsLab();
        var node = lab.AddNamespace("node");
        string Rejected(string rules)
        {
            NetnsLab.Exec(node, "nft", ["delete", "table", "inet", "romana_policy"]);
            Load(node, "table inet romana_policy { chain forward { type filter hook forward priority 0; policy accept;\n"
                + rules + "\n}\n}");
            return Assert.Throws<NftUnsupportedException>(() => NftRuleset.Parse(ListTable(node))).Message;
        }

        Assert.Contains("meta mark", Rejected("meta mark 0x1 accept"));
        Assert.Contains("\"log\"", Rejected("ip saddr 10.1.0.2 log accept"));
        Assert.Contains("\"limit\"", Rejected("limit rate 5/second accept"));
        Assert.Contains("ip6", Rejected("ip6 saddr ::1 drop"));
        Assert.Contains("ct zone", Rejected("ct zone 3 drop"));
        Assert.Contains("meta mark", Rejected("meta mark set 0x1 accept"));
        Assert.Contains("forward#", Rejected("tcp flags syn drop"));

        // A rule on interfaces is understood, but only for a packet that says which interfaces it crosses
        NetnsLab.Exec(node, "nft", ["delete", "table", "inet", "romana_policy"]);
        Load(node, "table inet romana_policy { chain forward { type filter hook forward priority 0; policy accept;\n"
            + "iifname \"veth-a\" oifname { \"veth-b\", \"veth-c\" } drop\n}\n}");
        var ruleset = NftRuleset.Parse(ListTable(node));
        var packet = new NftPacket(Ipv4.Parse("10.1.0.2"), Ipv4.Parse("10.2.0.2"), NftPacket.Tcp, 80);
        Assert.Contains("iifname", Assert.Throws<NftUnsupportedException>(() => ruleset.Evaluate(packet)).Message);
        Assert.False(ruleset.Evaluate(packet with { InInterface = "veth-a", OutInterface = "veth-c" }).Accepted);
        Assert.True(ruleset.Evaluate(packet with { InInterface = "veth-a", OutInterface = "veth-d" }).Accepted);
        Assert.True(ruleset.Evaluate(packet with { InInterface = "veth-ab", OutInterface = "veth-b" }).Accepted);
    }

    /// <summary>
    /// A node namespace routing between a client (10.1.0.2-5) and a server (10.2.0.2-5), which answers closed ports
    /// without rate limit.
    /// </summary>
    private static (string Node, string Client, string Server) Route(NetnsLab lab)
    {
        var node = lab.AddNamespace("node");
        var client = lab.AddNamespace("client");
        var server = lab.AddNamespace("server");
        foreach (var (ns, side, subnet, addresses) in new[] { (client, "c", "10.1.0", Clients), (server, "s", "10.2.0", Servers) })
        {
            NetnsLab.Ip("-n", node, "link", "add", $"to-{side}", "type", "veth", "peer", "name", "eth0", "netns", ns);
            NetnsLab.Ip("-n", node, "addr", "add", $"{subnet}.1/24", "dev", $"to-{side}");
            NetnsLab.Ip("-n", node, "link", "set", $"to-{side}", "up");
            foreach (var address in addresses) NetnsLab.Ip("-n", ns, "addr", "add", $"{address}/24", "dev", "eth0");
            NetnsLab.Ip("-n", ns, "link", "set", "eth0", "up");
            NetnsLab.Ip("-n", ns, "route", "add", "default", "via", $"{subnet}.1");
        }

        Sysctl(node, "net.ipv4.ip_forward=1");
        Sysctl(server, "net.ipv4.icmp_ratelimit=0");
        return (node, client, server);
    }

    /// <summary>Skips the test where network namespaces cannot be made or nft is missing.</summary>
    public static void SkipUnlessNftInNamespaces()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        Skip.If(!File.Exists("/usr/sbin/nft"), "no nft (.ci/run installs nftables)");
    }

    public static void Sysctl(string netns, string setting)
    {
        var (exit, _, error) = NetnsLab.Exec(netns, "sysctl", ["-q", "-w", setting]);
        if (exit != 0) throw new InvalidOperationException($"sysctl {setting} in {netns}: {error.Trim()}");
    }

    public static void Load(string netns, string ruleset)
    {
        var (exit, _, error) = NetnsLab.Exec(netns, "nft", ["-f", "-"], ruleset);
        if (exit != 0) throw new InvalidOperationException($"nft -f in {netns}: {error.Trim()}");
    }

    public static string ListTable(string netns)
    {
        var (exit, output, error) = NetnsLab.Exec(netns, "nft", ["-j", "list", "table", "inet", "romana_policy"]);
        return exit == 0 ? output : throw new InvalidOperationException($"nft -j list table in {netns}: {error.Trim()}");
    }

    /// <summary>
    /// Whether the packet reaches the server: a TCP SYN to a closed port is answered by a reset, a UDP datagram by an ICMP
    /// port unreachable (both refused); a dropped one is answered by nothing within the wait.
    /// </summary>
    public static async Task<bool> DeliveredAsync(string netns, NftPacket packet)
    {
        var tcp = packet.Protocol == NftPacket.Tcp;
        using var socket = NetnsLab.InNamespace(netns, () => tcp
            ? new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        socket.Bind(new IPEndPoint(packet.Source.ToIPAddress(), 0));
        var to = new IPEndPoint(packet.Destination.ToIPAddress(), packet.DestinationPort);
        using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(800));
        try
        {
            if (tcp)
            {
                await socket.ConnectAsync(to, wait.Token);
                return true;
            }

            socket.Connect(to);
            await socket.SendAsync(new byte[] { 1 }, SocketFlags.None, wait.Token);
            await socket.ReceiveAsync(new byte[16], SocketFlags.None, wait.Token);
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
