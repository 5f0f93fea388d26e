using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Romana.Actors.Tests.Support;
using Romana.Host.Lab;

namespace Romana.Actors.Tests.Lab;

/// <summary>Test classes that build a lab share this collection: there is one lab per machine (its names are fixed).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LabCollection
{
    public const string Name = "romana lab";
}

/// <summary>
/// `romana lab up` and `down` as a user runs them (the romana of this build, the CNI plugin built by scripts/install-cni.sh),
/// and what the tests check the host's own namespace against: its routes, rules, nft tables and forwarding sysctl, as
/// they were before the lab.
/// </summary>
public static class LabCli
{
    public static string? WhyNot => NetnsLab.WhyNot ?? WhyNoTools();

    private static string? WhyNoTools() =>
        !Directory.Exists("/usr/lib/postgresql") ? "no PostgreSQL server binaries (.ci/run installs postgresql)"
        : !File.Exists("/usr/sbin/nft") && !File.Exists("/sbin/nft") ? "no nft (.ci/run installs nftables)"
        : null;

    public static LabShell.Outcome Romana(params string[] arguments) =>
        LabShell.Run("dotnet", [DaemonProcess.RomanaDll, .. arguments], timeout: TimeSpan.FromMinutes(10));

    public static string PluginPath => Path.Combine(CniRuntime.PluginFolder, "romana");

    /// <summary>The host's own network state, as text: it must be the same before, during and after a lab.</summary>
    public static string HostNetwork() =>
        string.Join("\n---\n", LabShell.Run("ip", ["route", "show", "table", "all"]).Output, LabShell.Run("ip", ["rule"]).Output,
            LabShell.Run("nft", ["list", "tables"]).Output, File.ReadAllText("/proc/sys/net/ipv4/ip_forward"));

    public static IReadOnlyList<string> LabNamespaces() =>
        [.. LabShell.Run("ip", ["netns", "list"]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')[0]).Where(n => n.StartsWith("rlab-", StringComparison.Ordinal))];

    /// <summary>Processes whose network namespace is one of the lab's (by the namespace file's inode).</summary>
    public static IReadOnlyList<int> ProcessesIn(IEnumerable<string> namespaces) =>
        [.. namespaces.SelectMany(n => LabShell.Run("ip", ["netns", "pids", n]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            .Select(int.Parse)];

    public static bool Alive(int pid) => LabShell.IsAlive(pid);
}

/// <summary>One lab with the defaults for a test class: up before its tests, down after them (also when one failed).</summary>
public sealed class LabFixture : IDisposable
{
    public LabFixture()
    {
        WhyNot = LabCli.WhyNot;
        if (WhyNot is not null) return;
        LabCli.Romana("lab", "down"); // a lab left behind by an aborted run
        HostBefore = LabCli.HostNetwork();
        var watch = Stopwatch.StartNew();
        Up = LabCli.Romana("lab", "up", "--cni-plugin", LabCli.PluginPath);
        UpTime = watch.Elapsed;
        if (!Up.Ok) return;
        var status = LabCli.Romana("lab", "status", "--json");
        StatusText = status.Output;
        Status = JsonNode.Parse(status.Output)!.AsObject();
    }

    public string? WhyNot { get; }
    public LabShell.Outcome Up { get; } = new(-1, "", "");
    public TimeSpan UpTime { get; }
    public string HostBefore { get; } = "";
    public string StatusText { get; } = "";
    public JsonObject Status { get; } = [];

    public IReadOnlyList<(string Name, string Netns, string Node, string Ip)> Pods =>
        [.. Status["pods"]!.AsArray().Select(p => (p!["name"]!.GetValue<string>(), p["netns"]!.GetValue<string>(),
            p["node"]!.GetValue<string>(), p["ip"]!.GetValue<string>()))];

    public IReadOnlyList<(string Name, string Netns, string Subnet, string Ip)> Bastions =>
        [.. Status["bastions"]!.AsArray().Select(b => (b!["name"]!.GetValue<string>(), b["netns"]!.GetValue<string>(),
            b["subnet"]!.GetValue<string>(), b["ip"]!.GetValue<string>()))];

    public string NodeIp(string node) =>
        Status["nodes"]!.AsArray().First(n => n!["name"]!.GetValue<string>() == node)!["ip"]!.GetValue<string>();

    public void Dispose()
    {
        if (WhyNot is null) LabCli.Romana("lab", "down");
    }
}

/// <summary>TCP inside namespaces: sockets made on a thread that entered the namespace stay there.</summary>
public static class NamespaceTcp
{
    /// <summary>A listener in <paramref name="netns"/> that answers every connection with "NAME SOURCE-ADDRESS\n".</summary>
    public static Socket Listen(string netns, string address, int port, string name)
    {
        var listener = NetnsLab.InNamespace(netns, () =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Parse(address), port));
            socket.Listen(64);
            return socket;
        });
        _ = Task.Run(async () =>
        {
            while (true)
            {
                Socket accepted;
                try
                {
                    accepted = await listener.AcceptAsync();
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return;
                }
                using (accepted)
                {
                    var remote = ((IPEndPoint)accepted.RemoteEndPoint!).Address;
                    await accepted.SendAsync(Encoding.ASCII.GetBytes($"{name} {remote}\n"));
                    accepted.Shutdown(SocketShutdown.Both);
                }
            }
        });
        return listener;
    }

    /// <summary>Connects from <paramref name="netns"/> and returns the line the listener sent (null: no connection).</summary>
    public static string? Ask(string netns, string address, int port)
    {
        using var socket = NetnsLab.InNamespace(netns, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(address), port), timeout.Token).AsTask().Wait();
            var buffer = new byte[256];
            var total = 0;
            while (total < buffer.Length)
            {
                var read = socket.ReceiveAsync(buffer.AsMemory(total), timeout.Token).AsTask().Result;
                if (read == 0) break;
                total += read;
            }
            return Encoding.ASCII.GetString(buffer, 0, total).Trim();
        }
        catch (AggregateException)
        {
            return null;
        }
    }
}
