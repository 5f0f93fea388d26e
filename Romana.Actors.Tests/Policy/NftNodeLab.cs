using System.Net;
using System.Net.Sockets;
using Romana.Actors.Tests.Support;

namespace Romana.Actors.Tests.Policy;

/// <summary>
/// A node as a network namespace (romana-nft-RANDOM-node) that routes between pod namespaces as Romana does: each pod has
/// eth0 with its /32 and a default route to the node over a veth; the node has a /32 route per pod, proxy ARP and
/// forwarding on, and its own address on its loopback. Pod namespaces serve TCP on the ports asked for. Disposing deletes
/// every namespace (pods first) and closes every socket, also when the test failed.
/// </summary>
public sealed class NftNodeLab : IDisposable
{
    public const string NodeAddress = "10.77.0.1";
    private readonly List<string> _namespaces = [];
    private readonly List<Socket> _sockets = [];
    private readonly CancellationTokenSource _stop = new();
    private int _links;

    public NftNodeLab()
    {
        Prefix = $"romana-nft-{Random.Shared.Next(0, 1 << 24):x6}";
        Node = Add("node");
        try
        {
            Exec(Node, "sysctl", "-qw", "net.ipv4.ip_forward=1");
            NetnsLab.Ip("-n", Node, "addr", "add", $"{NodeAddress}/32", "dev", "lo");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Prefix { get; }
    public string Node { get; }

    /// <summary>The namespace of a pod at <paramref name="address"/>, wired to the node.</summary>
    public string AddPod(string role, string address)
    {
        var pod = Add(role);
        var link = $"v{_links++}";
        NetnsLab.Ip("-n", Node, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", pod);
        NetnsLab.Ip("-n", Node, "link", "set", link, "up");
        Exec(Node, "sysctl", "-qw", $"net.ipv4.conf.{link}.proxy_arp=1");
        NetnsLab.Ip("-n", Node, "route", "add", $"{address}/32", "dev", link);
        NetnsLab.Ip("-n", pod, "addr", "add", $"{address}/32", "dev", "eth0");
        NetnsLab.Ip("-n", pod, "link", "set", "eth0", "up");
        NetnsLab.Ip("-n", pod, "route", "add", $"{NodeAddress}/32", "dev", "eth0");
        NetnsLab.Ip("-n", pod, "route", "add", "default", "via", NodeAddress, "dev", "eth0", "onlink");
        return pod;
    }

    private string Add(string role)
    {
        var name = $"{Prefix}-{role}";
        NetnsLab.Ip("netns", "add", name);
        _namespaces.Add(name);
        NetnsLab.Ip("-n", name, "link", "set", "lo", "up");
        return name;
    }

    public static (int Exit, string Output, string Error) Exec(string netns, string program, params string[] arguments)
    {
        var result = NetnsLab.Exec(netns, program, arguments);
        return result.Exit == 0
            ? result
            : throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} in {netns}: {result.Error.Trim()}");
    }

    /// <summary>`nft ARGS` in the node namespace; a failure throws with nft's message.</summary>
    public string Nft(params string[] arguments) => Exec(Node, "nft", arguments).Output;

    /// <summary>Serves TCP on <paramref name="port"/> in <paramref name="netns"/>: accepts and echoes every byte.</summary>
    public void ServeTcp(string netns, int port)
    {
        var listener = NetnsLab.InNamespace(netns, () =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            socket.Listen(64);
            return socket;
        });
        _sockets.Add(listener);
        _ = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket accepted;
                try
                {
                    accepted = await listener.AcceptAsync(_stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }
                lock (_sockets) _sockets.Add(accepted);
                _ = Echo(accepted);
            }
        });
    }

    private async Task Echo(Socket socket)
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0) return;
                await socket.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>A TCP connection from <paramref name="netns"/>, or null when none is made within <paramref name="timeout"/>.</summary>
    public async Task<Socket?> ConnectAsync(string netns, string address, int port, TimeSpan timeout)
    {
        var socket = NetnsLab.InNamespace(netns, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        using var limit = new CancellationTokenSource(timeout);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(address), port), limit.Token);
            lock (_sockets) _sockets.Add(socket);
            return socket;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException)
        {
            socket.Dispose();
            return null;
        }
    }

    /// <summary>Whether a TCP connection from <paramref name="netns"/> is made within 1 s (a dropped SYN is never answered).</summary>
    public async Task<bool> ConnectsAsync(string netns, string address, int port)
    {
        using var socket = await ConnectAsync(netns, address, port, TimeSpan.FromSeconds(1));
        return socket is not null;
    }

    /// <summary>Whether <paramref name="socket"/> still carries a round trip (a byte sent, its echo read) within the timeout.</summary>
    public static async Task<bool> EchoesAsync(Socket socket, TimeSpan timeout)
    {
        using var limit = new CancellationTokenSource(timeout);
        try
        {
            await socket.SendAsync(new byte[] { 42 }, SocketFlags.None, limit.Token);
            var buffer = new byte[1];
            return await socket.ReceiveAsync(buffer, SocketFlags.None, limit.Token) == 1;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        lock (_sockets)
            foreach (var socket in _sockets) socket.Dispose();
        foreach (var name in Enumerable.Reverse(_namespaces)) NetnsLab.Exec(null, "ip", ["netns", "del", name]);
        _stop.Dispose();
    }
}
