using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Romana.Actors.Configuration;
using Romana.Actors.Policy;
using Romana.Host.Cli;
using Romana.Host.Dataplane;
using Romana.Host.Lab;
using Romana.Netlink;

namespace Romana.Host.Policy;

/// <summary>
/// <c>romana policy check --dataplane</c>: each case on a node of its own. The node is a network namespace, prepared as the
/// daemon prepares its host (<see cref="LinuxHostNetwork.PrepareAsync"/>: forwarding, loose reverse-path filtering, the pod
/// CIDR's rule); every pod is a namespace wired to it as Romana's CNI plugin wires one (a veth whose host end wears
/// ee:ee:ee:ee:ee:ee, the pod's /32 on eth0, a default route via 169.254.1.1 reached through a permanent neighbour entry,
/// and the node's /32 route to the pod), so pod-to-pod packets cross the node's forward hook as in production. Every pod
/// serves TCP, UDP and SCTP on 80 and 81 from this process (sockets made on a thread inside the pod's namespace stay
/// there); the case's policies are applied on the node through <see cref="IPolicyDataplane"/>; every probe is a real
/// packet from a socket made inside the source pod, all of a case's probes at once, a drop being a timeout.
/// </summary>
public sealed class DataplaneCheck(Func<string, IPolicyDataplane> dataplaneIn, TimeSpan timeout)
{
    /// <summary>The address every pod's default route goes through, and the MAC of every host-side veth (PodAttachment's).</summary>
    private static readonly IPAddress Gateway = IPAddress.Parse("169.254.1.1");
    private static readonly byte[] HostMac = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
    private const int IpProtoSctp = 132;

    /// <summary>The namespace names of a run start with this and a random id: <c>romana-check-1a2b3c</c>.</summary>
    public const string NamePrefix = "romana-check-";

    public string Prefix { get; } = $"{NamePrefix}{Random.Shared.Next(1 << 24):x6}";

    /// <summary>Runs one case (its namespaces named by <paramref name="index"/>) and removes all it made, whatever happens.</summary>
    public async Task<CaseOutcome> RunAsync(PolicyCase @case, int index, CancellationToken cancel)
    {
        var started = Stopwatch.GetTimestamp();
        await using var node = new CheckNode($"{Prefix}-{index}", @case.Pods.Length);
        await node.BuildAsync(cancel);
        var world = @case.World(CaseAddresses.Pod, CaseAddresses.Node);
        var dataplane = dataplaneIn(node.Node);
        node.OnRemove(async () =>
        {
            try
            {
                await dataplane.RemoveAsync(CancellationToken.None);
            }
            finally
            {
                (dataplane as IDisposable)?.Dispose();
            }
        });
        await dataplane.ApplyAsync(world, @case.Pods.ToHashSet(StringComparer.Ordinal), cancel);

        var questions = PolicyCaseRunner.Questions(@case).ToList();
        var sctp = node.SctpMissing;
        var skipped = sctp is null ? [] : @case.Probes.Select((p, i) => (p, i)).Where(x => x.p.Protocol == PolicyProtocol.Sctp)
            .Select(x => new SkippedProbe(x.i, x.p.Port, x.p.Protocol, sctp)).ToImmutableArray();
        var asked = questions.Where(q => sctp is null || q.Probe.Protocol != PolicyProtocol.Sctp).ToList();
        var pods = @case.Pods.Select((key, i) => (key, i)).ToDictionary(p => p.key, p => p.i);
        var clients = await node.ClientSocketsAsync(asked.Select(q => (pods[q.From], q.Probe.Protocol)).ToList());
        var answers = await Task.WhenAll(asked.Select((q, i) =>
            ProbeAsync(clients[i], new IPEndPoint(CaseAddresses.Pod(pods[q.To]).ToIPAddress(), q.Probe.Port), q.Probe.Protocol, cancel)));
        var mismatches = asked.Zip(answers, (q, got) => (q, got)).Where(a => a.got != a.q.Expected)
            .Select(a => new CaseMismatch(a.q.Index, a.q.Probe, a.q.From, a.q.To, a.q.Expected, a.got))
            .ToImmutableArray();
        var drops = await dataplane.DropsAsync(cancel);
        return new CaseOutcome(@case.Name, @case.File, mismatches, skipped, Stopwatch.GetElapsedTime(started)) { Drops = [.. drops] };
    }

    /// <summary>True when the packet got through: a TCP or SCTP connection made, or a UDP request echoed, within the timeout.</summary>
    private async Task<bool> ProbeAsync(Socket socket, IPEndPoint to, PolicyProtocol protocol, CancellationToken cancel)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        limit.CancelAfter(timeout);
        try
        {
            if (protocol != PolicyProtocol.Udp)
            {
                await socket.ConnectAsync(to, limit.Token);
                return true;
            }
            socket.Connect(to);
            var request = Guid.NewGuid().ToByteArray();
            var reply = new byte[64];
            // A datagram may be lost like any other: ask again every 200 ms until the timeout.
            while (true)
            {
                await socket.SendAsync(request, limit.Token);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(limit.Token);
                wait.CancelAfter(TimeSpan.FromMilliseconds(200));
                try
                {
                    var read = await socket.ReceiveAsync(reply, wait.Token);
                    if (reply.AsSpan(0, read).SequenceEqual(request)) return true;
                }
                catch (OperationCanceledException) when (!limit.IsCancellationRequested)
                {
                }
            }
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            return false; // dropped: nothing came back in time
        }
        catch (SocketException)
        {
            return false; // refused or unreachable: the packet did not reach a server
        }
    }

    /// <summary>
    /// The namespaces of one case: a node and its pods, each pod serving TCP, UDP and SCTP (where the kernel has it) on
    /// every served port. Disposing closes every socket, runs the removals registered (the dataplane's table) and
    /// deletes every namespace made, also after a failure or a cancellation.
    /// </summary>
    private sealed class CheckNode(string name, int podCount) : IAsyncDisposable
    {
        private readonly List<Socket> _sockets = [];
        private readonly List<Func<Task>> _removals = [];
        private readonly List<NetworkNamespace> _open = [];
        private readonly List<NetworkNamespace> _pods = [];
        private readonly CancellationTokenSource _serving = new();

        public string Node { get; } = $"{name}-node";

        public string PodNamespace(int index) => $"{name}-pod{index}";

        /// <summary>Why SCTP cannot be probed here (the socket call's error), or null when it can.</summary>
        public string? SctpMissing { get; private set; }

        public void OnRemove(Func<Task> removal) => _removals.Add(removal);

        public async Task BuildAsync(CancellationToken cancel)
        {
            CheckNamespaces.Add(Node);
            await new LinuxHostNetwork(HostAgentSettings.Default, Node).PrepareAsync(CaseAddresses.PodCidr, cancel);
            var node = Open(Node);
            for (var i = 0; i < podCount; i++)
            {
                cancel.ThrowIfCancellationRequested();
                CheckNamespaces.Add(PodNamespace(i));
                _pods.Add(Open(PodNamespace(i)));
            }
            await node.RunAsync(() => Wire(_pods));
            foreach (var pod in _pods)
            {
                cancel.ThrowIfCancellationRequested();
                var (sockets, sctp) = await pod.RunAsync(Serve);
                SctpMissing ??= sctp;
                lock (_sockets) _sockets.AddRange(sockets);
                foreach (var socket in sockets) _ = AnswerAsync(socket, _serving.Token);
            }
        }

        private NetworkNamespace Open(string netns)
        {
            var space = NetworkNamespace.Open($"/var/run/netns/{netns}");
            _open.Add(space);
            return space;
        }

        /// <summary>
        /// On a thread inside the node: every pod's veth, addresses, neighbour and routes, as the CNI plugin's ADD makes them.
        /// </summary>
        private bool Wire(List<NetworkNamespace> pods)
        {
            using var hostSocket = NetlinkSocket.Open();
            var host = new RouteNetlink(hostSocket);
            host.SetLinkUp("lo", $"setting lo up in {Node}");
            var lo = host.FindLink("lo", $"looking up lo in {Node}")!;
            // The node's own address: the source of its ARP requests to its pods, as a host's eth0 address is.
            host.AddAddress(lo.Index, CaseAddresses.Node.ToIPAddress(), 32, $"adding {CaseAddresses.Node}/32 to lo in {Node}");
            for (var i = 0; i < pods.Count; i++)
            {
                var address = CaseAddresses.Pod(i).ToIPAddress();
                var hostVeth = $"rmncheck{i}";
                var netns = pods[i].Path;
                host.CreateVethPair(hostVeth, HostMac, "eth0", pods[i].Fd, null, $"creating veth {hostVeth} for {netns}");
                using (var podSocket = pods[i].OpenNetlinkSocket())
                {
                    var pod = new RouteNetlink(podSocket);
                    var eth0 = pod.FindLink("eth0", $"looking up eth0 in {netns}")!;
                    pod.SetLinkUp("lo", $"setting lo up in {netns}");
                    pod.AddAddress(eth0.Index, address, 32, $"adding address {address}/32 to eth0 in {netns}");
                    pod.SetLinkUp(eth0.Index, $"setting eth0 up in {netns}");
                    pod.AddRoute(new RouteSpec(Gateway, 32, null, eth0.Index, RouteValues.ProtocolBoot),
                        $"adding route {Gateway}/32 dev eth0 in {netns}");
                    pod.AddPermanentNeighbour(eth0.Index, Gateway, HostMac, $"adding neighbour {Gateway} on eth0 in {netns}");
                    pod.AddRoute(new RouteSpec(IPAddress.Any, 0, Gateway, eth0.Index, RouteValues.ProtocolBoot),
                        $"adding default route via {Gateway} in {netns}");
                }
                var link = host.FindLink(hostVeth, $"looking up {hostVeth} in {Node}")!;
                host.SetLinkUp(link.Index, $"setting {hostVeth} up in {Node}");
                host.AddRoute(new RouteSpec(address, 32, null, link.Index, RomanaRoutes.Protocol),
                    $"adding route {address}/32 dev {hostVeth} in {Node}");
            }
            return true;
        }

        /// <summary>On a thread inside a pod: a TCP listener, a UDP socket and an SCTP listener on every served port.</summary>
        private static (List<Socket> Sockets, string? SctpMissing) Serve()
        {
            var sockets = new List<Socket>();
            string? sctpMissing = null;
            foreach (var port in PolicyCase.ServedPorts)
            {
                var at = new IPEndPoint(IPAddress.Any, port);
                var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                tcp.Bind(at);
                tcp.Listen(256);
                sockets.Add(tcp);
                var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                udp.Bind(at);
                sockets.Add(udp);
                if (sctpMissing is not null) continue;
                try
                {
                    var sctp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, (ProtocolType)IpProtoSctp);
                    sctp.Bind(at);
                    sctp.Listen(256);
                    sockets.Add(sctp);
                }
                catch (SocketException e)
                {
                    var error = e.SocketErrorCode == SocketError.ProtocolNotSupported ? "EPROTONOSUPPORT" : e.SocketErrorCode.ToString();
                    sctpMissing = $"this kernel has no SCTP (socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) failed: {error}, {e.Message})";
                }
            }
            return (sockets, sctpMissing);
        }

        /// <summary>Accepts and closes connections (TCP, SCTP); echoes datagrams (UDP); until the node is disposed.</summary>
        private static async Task AnswerAsync(Socket socket, CancellationToken stop)
        {
            var buffer = new byte[1500];
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    if (socket.SocketType == SocketType.Stream)
                    {
                        using var accepted = await socket.AcceptAsync(stop);
                        continue;
                    }
                    var received = await socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), stop);
                    await socket.SendToAsync(buffer.AsMemory(0, received.ReceivedBytes), received.RemoteEndPoint, stop);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // the node is being removed
            }
        }

        /// <summary>One socket per probe, each made inside its source pod (one thread per pod), in the order asked.</summary>
        public async Task<Socket[]> ClientSocketsAsync(IReadOnlyList<(int Pod, PolicyProtocol Protocol)> wanted)
        {
            var sockets = new Socket[wanted.Count];
            foreach (var group in wanted.Select((w, i) => (w, i)).GroupBy(x => x.w.Pod))
            {
                var made = await _pods[group.Key].RunAsync(() => group.Select(x => x.w.Protocol switch
                {
                    PolicyProtocol.Udp => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp),
                    PolicyProtocol.Sctp => new Socket(AddressFamily.InterNetwork, SocketType.Stream, (ProtocolType)IpProtoSctp),
                    _ => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp),
                }).ToList());
                lock (_sockets) _sockets.AddRange(made);
                foreach (var (x, socket) in group.Zip(made)) sockets[x.i] = socket;
            }
            return sockets;
        }

        public async ValueTask DisposeAsync()
        {
            await _serving.CancelAsync();
            lock (_sockets)
                foreach (var socket in _sockets) socket.Dispose();
            foreach (var removal in _removals)
            {
                try
                {
                    await removal();
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    Console.Error.WriteLine($"romana: removing the policy table of {Node}: {e.Message}");
                }
            }
            foreach (var space in _open) space.Dispose();
            for (var i = podCount - 1; i >= 0; i--) CheckNamespaces.Remove(PodNamespace(i));
            CheckNamespaces.Remove(Node);
            _serving.Dispose();
        }
    }
}

/// <summary>
/// The network namespaces the check made and has not yet removed. Each is added with <c>ip netns add</c> and removed with
/// <c>ip netns del</c> (its links, routes and nft tables go with it); any still here when the process exits (an
/// interruption whose grace ran out) are removed then.
/// </summary>
public static class CheckNamespaces
{
    private static readonly ConcurrentDictionary<string, byte> Live = new();

    static CheckNamespaces()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveAll();
        Interruption.OnForcedExit(RemoveAll);
    }

    public static IReadOnlyCollection<string> Remaining => [.. Live.Keys];

    public static void Add(string name)
    {
        Live[name] = 0;
        var added = LabShell.Run("ip", ["netns", "add", name]);
        if (!added.Ok)
        {
            Live.TryRemove(name, out _);
            throw new LabException($"ip netns add {name}: {added.Error.Trim()}");
        }
    }

    public static void Remove(string name)
    {
        if (!Live.TryRemove(name, out _)) return;
        var deleted = LabShell.Run("ip", ["netns", "del", name]);
        if (!deleted.Ok) Console.Error.WriteLine($"romana: ip netns del {name}: {deleted.Error.Trim()}");
    }

    public static void RemoveAll()
    {
        foreach (var name in Live.Keys) Remove(name);
    }
}
