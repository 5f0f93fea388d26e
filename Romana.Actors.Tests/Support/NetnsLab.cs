using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// Hosts of a test as network namespaces on this machine: nodes on a subnet bridge, pods. Every name carries a prefix
/// unique to the lab, and disposing deletes every namespace it made (with them go their links, addresses and routes)
/// and kills every process it started, also when the test failed.
/// </summary>
public sealed class NetnsLab : IDisposable
{
    private static readonly Lazy<string?> WhyNotValue = new(FindWhyNot);
    private readonly List<string> _namespaces = [];
    private readonly List<Process> _processes = [];

    public NetnsLab() => Prefix = $"rmn{Random.Shared.Next(0, 1 << 20):x5}";

    /// <summary>Why network-namespace tests cannot run here, or null when they can (root, iproute2, netns support).</summary>
    public static string? WhyNot => WhyNotValue.Value;

    public string Prefix { get; }

    /// <summary>A namespace whose loopback is up; its path is /var/run/netns/NAME.</summary>
    public string AddNamespace(string role)
    {
        var name = $"{Prefix}-{role}";
        Ip("netns", "add", name);
        _namespaces.Add(name);
        Ip("-n", name, "link", "set", "lo", "up");
        return name;
    }

    public static string PathOf(string netns) => $"/var/run/netns/{netns}";

    /// <summary>A subnet: a namespace holding a bridge that node namespaces plug into.</summary>
    public string AddSubnet(string role)
    {
        var subnet = AddNamespace(role);
        Ip("-n", subnet, "link", "add", "br0", "type", "bridge");
        Ip("-n", subnet, "link", "set", "br0", "up");
        return subnet;
    }

    /// <summary>A node on the subnet's bridge: interface eth0 with <paramref name="cidr"/> (e.g. 10.99.0.11/24).</summary>
    public string AddNode(string role, string subnet, string cidr)
    {
        var node = AddNamespace(role);
        var port = $"p-{role}";
        Ip("-n", subnet, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node);
        Ip("-n", subnet, "link", "set", port, "master", "br0", "up");
        Ip("-n", node, "addr", "add", cidr, "dev", "eth0");
        Ip("-n", node, "link", "set", "eth0", "up");
        return node;
    }

    /// <summary>Runs a program inside a namespace (as `ip netns exec`), collecting its output.</summary>
    public static (int Exit, string Output, string Error) Exec(string? netns, string program, IEnumerable<string> arguments,
        string? input = null, IDictionary<string, string>? environment = null) =>
        netns is null
            ? Processes.Run(program, arguments, input, environment)
            : Processes.Run("ip", ["netns", "exec", netns, program, .. arguments], input, environment);

    /// <summary>Starts a long-running program in a namespace; it is killed when the lab is disposed.</summary>
    public Process Spawn(string netns, string program, IEnumerable<string> arguments)
    {
        var process = Process.Start(Processes.Describe("ip", ["netns", "exec", netns, program, .. arguments]))!;
        _processes.Add(process);
        return process;
    }

    /// <summary>Runs `ip ARGS`; a failure throws with what ip said.</summary>
    public static string Ip(params string[] arguments)
    {
        var (exit, output, error) = Exec(null, "ip", arguments);
        return exit == 0 ? output : throw new InvalidOperationException($"ip {string.Join(' ', arguments)}: {error.Trim()}");
    }

    /// <summary>True when one ping from <paramref name="netns"/> to <paramref name="address"/> is answered within 2 s.</summary>
    public static bool Pings(string netns, string address) =>
        Exec(netns, "ping", ["-c", "1", "-W", "2", address]).Exit == 0;

    /// <summary>
    /// Runs <paramref name="body"/> on a thread that has entered <paramref name="netns"/>:
    /// sockets it creates live there.
    /// </summary>
    public static T InNamespace<T>(string netns, Func<T> body)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle(PathOf(netns));
                if (SetNs((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                    throw new InvalidOperationException($"setns {netns}: errno {Marshal.GetLastPInvokeError()}");
                result = body();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        return failure is null ? result : throw new InvalidOperationException($"in {netns}: {failure.Message}", failure);
    }

    private const int CloneNewNet = 0x40000000;

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nstype);

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEuid();

    private static string? FindWhyNot()
    {
        if (!OperatingSystem.IsLinux()) return "network namespaces exist on Linux only";
        if (GetEuid() != 0) return "creating network namespaces needs root (CI runs .ci/run as root)";
        try
        {
            var probe = $"rmnprobe{Environment.ProcessId}";
            var (exit, _, error) = Exec(null, "ip", ["netns", "add", probe]);
            if (exit != 0) return $"ip netns add failed: {error.Trim()}";
            Exec(null, "ip", ["netns", "del", probe]);
            return null;
        }
        catch (Exception e)
        {
            return $"iproute2's ip cannot be run: {e.Message}";
        }
    }

    public void Dispose()
    {
        foreach (var process in _processes)
        {
            try
            {
                if (!process.HasExited) process.Kill(true);
                process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
            process.Dispose();
        }
        // Pods first, then nodes, then subnets: a veth dies with either end's namespace.
        foreach (var name in Enumerable.Reverse(_namespaces)) Exec(null, "ip", ["netns", "del", name]);
    }
}
