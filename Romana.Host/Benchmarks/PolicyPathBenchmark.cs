using System.Collections.Immutable;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;
using Romana.Host.Policy;
using Romana.Netlink;

namespace Romana.Host.Benchmarks;

/// <summary>
/// The packet path with NetworkPolicy: two pod namespaces on a node namespace, routed as Romana's CNI does it (each pod's
/// eth0 holds its /32 with a default route to the node over a veth; the node has a /32 route per pod, proxy ARP and
/// forwarding). TCP throughput (iperf3) and the connection rate (a client of its own: concurrent connect + close against
/// a server that accepts and closes) between the two pods, with --policies policies applied through the nftables adapter
/// (--selecting of them select each pod, their allowing rule last) against no policies (the adapter's table with
/// none) and against no table at all; runs interleaved, the median of each reported. Needs root, ip and iperf3. Every
/// namespace it makes is removed at the end, also when it fails or is interrupted.
/// </summary>
public static class PolicyPathBenchmark
{
    public const double Bound = 0.05;
    private const int IperfPort = 5201;
    private const int ConnectPort = 5202;
    private const int ClosedPort = 5203;
    private static readonly Ipv4 NodeAddress = Ipv4.Parse("10.78.0.1");
    private static readonly Ipv4 ClientAddress = Ipv4.Parse("10.78.1.2");
    private static readonly Ipv4 ServerAddress = Ipv4.Parse("10.78.1.3");

    public sealed record Options(int Policies, int Selecting, int Runs, int Seconds, int Connections);

    public sealed record Sample(string Setup, int Run, double ThroughputGbps, double ConnectionsPerSecond);

    public sealed record Figure(string Setup, double MedianGbps, double MedianConnectionsPerSecond, int Runs);

    /// <summary>
    /// The figures; the differences are those of the policies against none (the table with no policies), as a share of
    /// none's median (negative: slower with policies).
    /// </summary>
    public sealed record Result(string Machine, string LoadBefore, string LoadAfter, int Policies, int Selecting, int ClientChainRules,
        int ServerChainRules, bool Enforced, IReadOnlyList<Figure> Figures, IReadOnlyList<Sample> Samples, double ThroughputDifference,
        double RateDifference)
    {
        public bool WithinBound => Math.Abs(ThroughputDifference) <= Bound && Math.Abs(RateDifference) <= Bound;
    }

    public const string NoTable = "no table";
    public const string NoPolicies = "no policies";

    /// <summary>Why the benchmark cannot run here, or null.</summary>
    public static string? WhyNot()
    {
        if (!OperatingSystem.IsLinux()) return "the packet-path benchmark needs Linux network namespaces";
        if (!Environment.IsPrivilegedProcess) return "the packet-path benchmark creates network namespaces: run it as root";
        foreach (var tool in new[] { "ip", "iperf3" })
            if (!new[] { "/usr/sbin", "/usr/bin", "/sbin", "/bin" }.Any(d => File.Exists(Path.Combine(d, tool))))
                return $"{tool} is not installed";
        return null;
    }

    public static async Task<Result> RunAsync(Options options, Action<string>? progress, CancellationToken cancellation)
    {
        var prefix = $"romana-bench-{Random.Shared.Next(0, 1 << 24):x6}";
        var (node, client, server) = ($"{prefix}-node", $"{prefix}-client", $"{prefix}-server");
        var made = new List<string>();
        Process? iperf = null;
        try
        {
            Build(node, client, server, made);
            var loadBefore = Load();
            using var dataplane = new NftablesPolicyDataplane(node);
            using var serverNs = NetworkNamespace.Open($"/var/run/netns/{server}");
            using var clientNs = NetworkNamespace.Open($"/var/run/netns/{client}");
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            var listener = await serverNs.RunAsync(() => Listen(ServerAddress, ConnectPort));
            var accepting = AcceptAndCloseAsync(listener, stop.Token);
            iperf = Process.Start(Start("ip", "netns", "exec", server, "iperf3", "-s", "-p", $"{IperfPort}"))!;
            await Task.Delay(500, cancellation);

            var (world, local) = World(options);
            var empty = world with { Policies = [] };
            await dataplane.ApplyAsync(world, local, cancellation);
            var applied = dataplane.Applied!;
            var chainRules = applied.Chains.Values.ToDictionary(c => c.Pod, c => c.Rules.Length);
            var enforced = !await ConnectsAsync(clientNs, ClosedPort, TimeSpan.FromSeconds(1))
                && await ConnectsAsync(clientNs, ConnectPort, TimeSpan.FromSeconds(1));
            progress?.Invoke($"{options.Policies:N0} policies applied: client egress chain " +
                $"{chainRules.GetValueOrDefault("bench/client")} " +
                $"rules, server ingress chain {chainRules.GetValueOrDefault("bench/server")} rules; a port no policy allows " +
                (enforced ? "is dropped" : "is NOT dropped"));

            string[] setups = [NoTable, NoPolicies, $"{options.Policies:N0} policies"];
            var samples = new List<Sample>();
            for (var run = 1; run <= options.Runs; run++)
            {
                for (var i = 0; i < setups.Length; i++)
                {
                    // Rotated each run, so no setup always follows the same one
                    var setup = setups[(i + run - 1) % setups.Length];
                    if (setup == NoTable) await dataplane.RemoveAsync(cancellation);
                    else await dataplane.ApplyAsync(setup == NoPolicies ? empty : world, local, cancellation);
                    var gbps = await ThroughputAsync(client, options.Seconds, cancellation);
                    var rate = await ConnectionRateAsync(clientNs, options, cancellation);
                    samples.Add(new Sample(setup, run, gbps, rate));
                    progress?.Invoke($"run {run}, {setup}: {gbps:0.00} Gbit/s, {rate:N0} connections/s");
                }
            }

            await stop.CancelAsync();
            listener.Dispose();
            await accepting;
            var figures = setups.Select(s => new Figure(s,
                BenchStatistics.Median(samples.Where(x => x.Setup == s).Select(x => x.ThroughputGbps)),
                BenchStatistics.Median(samples.Where(x => x.Setup == s).Select(x => x.ConnectionsPerSecond)), options.Runs)).ToList();
            var (none, many) = (figures[1], figures[2]);
            return new Result(Machine(), loadBefore, Load(), options.Policies, options.Selecting,
                chainRules.GetValueOrDefault("bench/client"), chainRules.GetValueOrDefault("bench/server"), enforced, figures, samples,
                (many.MedianGbps - none.MedianGbps) / none.MedianGbps,
                (many.MedianConnectionsPerSecond - none.MedianConnectionsPerSecond) / none.MedianConnectionsPerSecond);
        }
        finally
        {
            if (iperf is not null)
            {
                if (!iperf.HasExited) iperf.Kill(true);
                iperf.WaitForExit(5000);
                iperf.Dispose();
            }
            foreach (var ns in Enumerable.Reverse(made)) Run(false, "ip", "netns", "del", ns);
        }
    }

    /// <summary>
    /// The benchmark's world: the two pods (namespace bench) on this node, 2,000 pods on other nodes, and the policies:
    /// the first --selecting select the server (ingress: 2 peers x 2 ports that are not the client's traffic), the next
    /// --selecting select the client (egress, alike), the rest select remote pods; the last of each group allows the
    /// benchmark's ports between the two, so a new connection passes every other rule first.
    /// </summary>
    public static (PolicyWorld World, IReadOnlySet<string> Local) World(Options options)
    {
        static ImmutableSortedDictionary<string, string> Labels(params (string Key, string Value)[] pairs) =>
            pairs.ToImmutableSortedDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        static LabelSelector Select(params (string Key, string Value)[] pairs) => new(Labels(pairs), []);
        static PolicyRule Rule(PolicyPeer peer, params PolicyPort[] ports) => new([peer], [.. ports]);

        var pods = new List<PolicyPod>
        {
            new("bench", "client", Labels(("app", "client")), ClientAddress, NodeAddress, []),
            new("bench", "server", Labels(("app", "server")), ServerAddress, NodeAddress, []),
        };
        for (var i = 0; i < 2_000; i++)
            pods.Add(new PolicyPod("bench", $"remote-{i}", Labels(("app", $"svc{i % 50}"), ("team", $"t{i % 20}")),
                new Ipv4(Ipv4.Parse("10.79.0.10").Value + (uint)i), new Ipv4(Ipv4.Parse("10.77.0.1").Value + (uint)(i / 100)), []));
        var benchPorts = new[] { Tcp(IperfPort), Tcp(ConnectPort) };
        var policies = new List<NetworkPolicy>();
        for (var i = 0; i < options.Policies; i++)
        {
            var group = i < options.Selecting ? 0 : i < 2 * options.Selecting ? 1 : 2;
            var last = i == options.Selecting - 1 || i == 2 * options.Selecting - 1;
            var team = new PolicyPeer(Select(("team", $"t{i % 20}")), null, null);
            var block = new PolicyPeer(null, null, new IpBlock(new Ipv4Cidr(Ipv4.Parse($"10.200.{i % 256}.0"), 24), []));
            var others = new[] { Rule(team, Tcp(1000 + i), Udp(53)), Rule(block, Tcp(1000 + i), Udp(53)) };
            var (selector, directions, ingress, egress) = group switch
            {
                0 => (Select(("app", "server")), PolicyDirections.Ingress,
                    last ? [.. others, Rule(new PolicyPeer(Select(("app", "client")), null, null), benchPorts)] : others,
                    Array.Empty<PolicyRule>()),
                1 => (Select(("app", "client")), PolicyDirections.Egress, Array.Empty<PolicyRule>(),
                    last ? [.. others, Rule(new PolicyPeer(Select(("app", "server")), null, null), benchPorts)] : others),
                _ => (Select(("app", $"svc{i % 50}")), PolicyDirections.Ingress | PolicyDirections.Egress, others, others),
            };
            policies.Add(new NetworkPolicy("bench", $"policy-{i}", selector, directions, [.. ingress], [.. egress]));
        }

        var world = new PolicyWorld(
            ImmutableSortedDictionary<string, PolicyNamespace>.Empty.Add("bench",
                new PolicyNamespace("bench", Labels((PolicyNamespace.NameLabel, "bench")))),
            [.. pods], [.. policies]);
        return (world, new HashSet<string> { "bench/client", "bench/server" });

        static PolicyPort Tcp(int port) => new(PolicyProtocol.Tcp, port, null, null);
        static PolicyPort Udp(int port) => new(PolicyProtocol.Udp, port, null, null);
    }

    /// <summary>The node and the two pods, wired as Romana's CNI does; conntrack forgets closed connections after 1 s.</summary>
    private static void Build(string node, string client, string server, List<string> made)
    {
        foreach (var ns in new[] { node, client, server })
        {
            Run(true, "ip", "netns", "add", ns);
            made.Add(ns);
            Run(true, "ip", "-n", ns, "link", "set", "lo", "up");
        }

        Run(true, "ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1");
        Run(true, "ip", "-n", node, "addr", "add", $"{NodeAddress}/32", "dev", "lo");
        foreach (var (pod, address, link) in new[] { (client, ClientAddress, "vclient"), (server, ServerAddress, "vserver") })
        {
            Run(true, "ip", "-n", node, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", pod);
            Run(true, "ip", "-n", node, "link", "set", link, "up");
            Run(true, "ip", "netns", "exec", node, "sysctl", "-qw", $"net.ipv4.conf.{link}.proxy_arp=1");
            Run(true, "ip", "-n", node, "route", "add", $"{address}/32", "dev", link);
            Run(true, "ip", "-n", pod, "addr", "add", $"{address}/32", "dev", "eth0");
            Run(true, "ip", "-n", pod, "link", "set", "eth0", "up");
            Run(true, "ip", "-n", pod, "route", "add", $"{NodeAddress}/32", "dev", "eth0");
            Run(true, "ip", "-n", pod, "route", "add", "default", "via", $"{NodeAddress}", "dev", "eth0", "onlink");
            // Connect + close at thousands a second: reuse TIME_WAIT ports, and a wide ephemeral range
            Run(true, "ip", "netns", "exec", pod, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1");
            Run(true, "ip", "netns", "exec", pod, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000");
        }

        // The node's conntrack would hold every closed connection for 2 minutes (and fill up); the table is per namespace
        Run(false, "ip", "netns", "exec", node, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1");
    }

    private static async Task<double> ThroughputAsync(string client, int seconds, CancellationToken cancellation)
    {
        var start = Start("ip", "netns", "exec", client, "iperf3", "-c", $"{ServerAddress}", "-p", $"{IperfPort}",
            "-t", $"{seconds}", "-J");
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync(cancellation);
        await process.WaitForExitAsync(cancellation);
        using var json = JsonDocument.Parse(output);
        if (json.RootElement.TryGetProperty("error", out var error))
            throw new InvalidOperationException($"iperf3: {error.GetString()}");
        return json.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bits_per_second").GetDouble() / 1e9;
    }

    /// <summary>Connections a second: --connections clients, each connecting and closing again and again for --seconds.</summary>
    private static async Task<double> ConnectionRateAsync(NetworkNamespace client, Options options, CancellationToken cancellation)
    {
        var clock = Stopwatch.StartNew();
        var until = TimeSpan.FromSeconds(options.Seconds);
        var counts = await Task.WhenAll(Enumerable.Range(0, options.Connections).Select(async _ =>
        {
            var count = 0;
            while (clock.Elapsed < until)
            {
                cancellation.ThrowIfCancellationRequested();
                if (!await ConnectsAsync(client, ConnectPort, TimeSpan.FromSeconds(2)))
                    throw new InvalidOperationException($"a connection to the server's port {ConnectPort} failed during the measurement");
                count++;
            }

            return count;
        }));
        return counts.Sum() / clock.Elapsed.TotalSeconds;
    }

    /// <summary>One connect + close from the client pod: true when the server accepted within <paramref name="wait"/>.</summary>
    private static async Task<bool> ConnectsAsync(NetworkNamespace client, int port, TimeSpan wait)
    {
        using var socket = await SocketIn(client);
        using var timeout = new CancellationTokenSource(wait);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(ServerAddress.ToIPAddress(), port), timeout.Token);
            return true;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException)
        {
            return false;
        }
    }

    private static readonly Dictionary<NetworkNamespace, Queue<Socket>> Spare = [];

    /// <summary>A TCP socket of the client pod's namespace: made in batches on a thread that entered it.</summary>
    private static async Task<Socket> SocketIn(NetworkNamespace ns)
    {
        lock (Spare)
            if (Spare.TryGetValue(ns, out var queue) && queue.Count > 0) return queue.Dequeue();
        var made = await ns.RunAsync(() => Enumerable.Range(0, 256)
            .Select(_ => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            .ToList());
        lock (Spare)
        {
            if (!Spare.TryGetValue(ns, out var queue)) Spare[ns] = queue = new Queue<Socket>();
            foreach (var socket in made.Skip(1)) queue.Enqueue(socket);
        }

        return made[0];
    }

    private static Socket Listen(Ipv4 address, int port)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(address.ToIPAddress(), port));
        listener.Listen(4096);
        return listener;
    }

    private static async Task AcceptAndCloseAsync(Socket listener, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var accepted = await listener.AcceptAsync(stop);
                accepted.Dispose();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // stopped
        }
    }

    private static ProcessStartInfo Start(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        return start;
    }

    private static void Run(bool required, string program, params string[] arguments)
    {
        using var process = Process.Start(Start(program, arguments))!;
        var error = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (required && process.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)}: {error.Trim()}");
    }

    private static string Load() => File.Exists("/proc/loadavg")
        ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3))
        : "unknown";

    private static string Machine() =>
        $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, " +
        $".NET {Environment.Version}";
}
