using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Contracts.Cni;
using Romana.Host.Composition;
using Romana.Host.Dataplane;
using Romana.Host.Persistence;
using Xunit.Abstractions;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>
/// The node daemon under abuse, as a real process in a network namespace where it matters: idle connections beyond its
/// descriptor limit, SIGTERM in the middle of a burst of ADDs, a second daemon on its journal, unusable paths, requests of
/// megabytes. Each test makes its namespaces and files and removes them, also when it fails.
/// </summary>
[Collection(nameof(CniPluginTests))]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class DaemonHardeningTests(ITestOutputHelper output)
{
    private static readonly TimeSpan AddBound = TimeSpan.FromSeconds(2);

    private static string SocketOf(TempFolder folder) => Path.Combine(folder.Path, "cni.sock");

    private static string JournalOf(TempFolder folder) => Path.Combine(folder.Path, "romana.db");

    /// <summary>hocon/single-node.conf as documented, node n1 at 10.99.0.11, journal and socket in the test's folder.</summary>
    private static string Config(TempFolder folder, string overrides = "", string name = "romana.conf") => folder.Write(name,
        File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "single-node.conf"))
            .Replace("/var/lib/romana/romana.db", JournalOf(folder))
            .Replace("/run/romana/cni.sock", SocketOf(folder))
        + "\nromana.node.name = n1\nromana.node.ip = 10.99.0.11\nromana.health.probe-port = 0\nromana.http.port = 0\n" + overrides + "\n");

    /// <summary>Idle connections to the daemon's socket, opened one after the other, each given half a second to be queued.</summary>
    private sealed class Flood(string socketPath) : IDisposable
    {
        private readonly List<Socket> _sockets = [];

        public int Open(int count, TimeSpan budget)
        {
            var started = Stopwatch.StartNew();
            var opened = 0;
            while (opened < count && started.Elapsed < budget)
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { SendTimeout = 500 };
                try
                {
                    socket.Connect(new UnixDomainSocketEndPoint(socketPath));
                    _sockets.Add(socket);
                    opened++;
                }
                catch (SocketException)
                {
                    socket.Dispose();
                }
            }
            return opened;
        }

        public void Dispose()
        {
            foreach (var socket in _sockets) socket.Dispose();
        }
    }

    private DaemonWire.Answer TimedAdd(string socket, string containerId, string when, DaemonProcess daemon)
    {
        var answer = DaemonWire.Send(socket, DaemonWire.Add(containerId), TimeSpan.FromSeconds(5));
        output.WriteLine($"ADD {when}: {answer}");
        var state = daemon.Process.HasExited ? $"exited {daemon.Process.ExitCode}" : "runs";
        Assert.True(answer.Ok, $"ADD {when}: {answer}; the daemon {state}" +
            $", its last lines:\n{string.Join('\n', daemon.Everything.Split('\n').TakeLast(20))}");
        Assert.True(answer.Took < AddBound, $"ADD {when} took {answer.Took.TotalMilliseconds:0} ms");
        return answer;
    }

    [SkippableFact]
    public void A_flood_of_idle_connections_beyond_the_descriptor_limit_never_stops_the_daemon_and_an_ADD_is_answered_within_2_s()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var socket = SocketOf(folder);
        var daemon = DaemonProcess.Start(lab, node, Config(folder), wrapper: ["prlimit", "--nofile=600"]);
        daemon.AwaitReady(socket);
        Assert.True(DaemonWire.Send(socket, DaemonWire.Add("warm-up"), TimeSpan.FromSeconds(20)).Ok);
        // What the daemon holds before the flood (journal, sockets, the HTTP endpoint, the runtime's own): the lowered limit
        // leaves it 100 more, far below the 600 the flood brings it to.
        var footprint = Directory.GetFileSystemEntries($"/proc/{daemon.Id}/fd").Length;
        var lowered = footprint + 100;
        Assert.True(lowered < 500, $"the daemon holds {footprint} descriptors before any connection");

        using (var flood = new Flood(socket))
        {
            var opened = flood.Open(3000, TimeSpan.FromSeconds(10));
            output.WriteLine($"{opened} idle connections opened (the daemon may hold 600 descriptors)");
            TimedAdd(socket, "flood-1", "during a flood of 3000 idle connections, limit 600", daemon);

            // Lower the running daemon's limit below what it has open: it must shed idle connections, not die.
            NetnsLab.Exec(null, "prlimit", ["--pid", daemon.Id.ToString(), $"--nofile={lowered}"]);
            opened = flood.Open(3000, TimeSpan.FromSeconds(10));
            output.WriteLine($"{opened} more idle connections opened (limit now {lowered}; {footprint} held before the flood)");
            TimedAdd(socket, "flood-2", $"during a flood of 6000 idle connections, limit lowered to {lowered}", daemon);

            Thread.Sleep(TimeSpan.FromSeconds(6));
            Assert.False(daemon.Process.HasExited, $"the daemon exited: {daemon.Everything}");
            TimedAdd(socket, "flood-3", "after the idle connections' request timeout", daemon);
        }
        TimedAdd(socket, "after", "once the flood is gone", daemon);

        var warnings = daemon.OutputLines.Where(l => l.StartsWith("[WARNING]", StringComparison.Ordinal)).ToList();
        output.WriteLine($"{warnings.Count} warning lines:\n{string.Join('\n', warnings)}");
        Assert.InRange(warnings.Count, 1, 40);
        Assert.Contains(warnings, w => w.Contains("romana.cni.max-connections") || w.Contains("descriptor"));

        daemon.Terminate();
        Assert.Equal(0, daemon.AwaitExit(TimeSpan.FromSeconds(30)));
        Assert.False(File.Exists(socket), "the socket is removed on stop");
    }

    [SkippableFact]
    public async Task SIGTERM_during_a_burst_of_ADDs_leaves_held_exactly_the_addresses_whose_replies_were_delivered()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var socket = SocketOf(folder);
        var config = Config(folder);
        var daemon = DaemonProcess.Start(lab, node, config);
        daemon.AwaitReady(socket);
        Assert.True(DaemonWire.Send(socket, DaemonWire.Add("warm-up"), TimeSpan.FromSeconds(20)).Ok);

        // Every fourth client hangs up its receiving side before it asks: the daemon can never deliver its reply.
        const int burst = 400;
        var answered = new ConcurrentBag<string>();
        // Set by the client that reads the fifth reply: the signal goes at once, not after a poll that may oversleep.
        var fifth = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hangUp = new TaskCompletionSource();
        var clients = Enumerable.Range(0, burst).Select(i => Task.Run(async () =>
        {
            var id = $"burst-{i}";
            using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(40));
            try
            {
                await client.ConnectAsync(new UnixDomainSocketEndPoint(socket), timeout.Token);
                var deaf = i % 4 == 3;
                if (deaf) client.Shutdown(SocketShutdown.Receive);
                await client.SendAsync(DaemonProtocol.Encode(DaemonWire.Add(id)), SocketFlags.None, timeout.Token);
                if (deaf)
                {
                    await hangUp.Task.WaitAsync(timeout.Token);
                    return;
                }
                var reply = new MemoryStream();
                var buffer = new byte[1024];
                int read;
                while ((read = await client.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) reply.Write(buffer, 0, read);
                var line = Encoding.UTF8.GetString(reply.ToArray()).Trim();
                if (line.Length > 0 && DaemonProtocol.DecodeReply(Encoding.UTF8.GetBytes(line)) is { Ok: true })
                {
                    answered.Add(id);
                    if (answered.Count >= 5) fifth.TrySetResult();
                }
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                // refused, closed or never answered: the runtime sees a failed ADD
            }
        })).ToList();

        await fifth.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var answeredAtSignal = answered.Count;
        daemon.Terminate();
        var exit = daemon.AwaitExit(TimeSpan.FromSeconds(40));
        hangUp.TrySetResult();
        await Task.WhenAll(clients);
        output.WriteLine($"SIGTERM after {answeredAtSignal} replies; {answered.Count} of {burst * 3 / 4} clients that listen got one");
        output.WriteLine(string.Join('\n', daemon.OutputLines.Where(l => !l.StartsWith("[INFO]") || !l.Contains("CNI ADD burst"))));
        Assert.True(answeredAtSignal < burst * 3 / 4, "SIGTERM came after the burst");
        Assert.True(exit == 0, $"exit {exit}: {daemon.Everything}");
        Assert.False(File.Exists(socket), "the socket is removed on stop");
        Assert.Contains(daemon.OutputLines, l => l.Contains("requests in flight at the stop answered"));

        var topology = RomanaConfig.ReadTopology(RomanaConfig.Load(config));
        await using var journal = await RomanaHost.StartIpamAsync(topology, JournalSettings.Sqlite(JournalOf(folder)), TempJournal.Quiet);
        var held = Assert.IsType<AllocationsOf>(await journal.Ipam.AskAsync(new GetAllocations(new NodeName("n1"))))
            .Allocations.Select(a => a.Key.Value.Split('/')[0]).Order().ToList();
        output.WriteLine($"held: {held.Count} addresses");
        Assert.Equal(answered.Append("warm-up").Order(), held);
    }

    [SkippableFact]
    public void A_second_daemon_on_the_same_journal_is_refused_with_one_line_naming_the_file_and_the_holder()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var subnet = lab.AddSubnet("sub");
        var (node1, node2) = (lab.AddNode("n1", subnet, "10.99.0.11/24"), lab.AddNode("n2", subnet, "10.99.0.12/24"));
        var (socket, otherSocket, journal) = (SocketOf(folder), Path.Combine(folder.Path, "other.sock"), JournalOf(folder));
        var config = Config(folder);
        var first = DaemonProcess.Start(lab, node1, config);
        first.AwaitReady(socket);

        var second = DaemonProcess.Start(lab, node2, config, ["--socket", otherSocket]);
        var exit = second.AwaitExit(TimeSpan.FromSeconds(30));
        Assert.True(exit is not null, $"a second daemon runs on {journal}: {second.Everything}");
        Assert.Equal(1, exit);
        Assert.Equal([$"romana: cannot start: romana.persistence.sqlite.path: {journal} is in use by another Romana process " +
            $"(pid {first.Id}); one process per journal file (lock {journal}.lock)"], second.ErrorLines);
        Assert.False(File.Exists(otherSocket), "the refused daemon leaves no socket");

        var added = DaemonWire.Send(socket, DaemonWire.Add("c1"), TimeSpan.FromSeconds(10));
        Assert.True(added.Ok, added.ToString());
        var deleted = DaemonWire.Send(socket, new DaemonRequest(DaemonProtocol.Del, "c1", "eth0"), TimeSpan.FromSeconds(10));
        Assert.True(deleted.Ok, deleted.ToString());

        // Another journal but the first daemon's socket: refused by the socket, naming it.
        var third = NetnsLab.Exec(node2, "dotnet", [DaemonProcess.RomanaDll, "daemon", "--config",
            Config(folder, $"romana.persistence.sqlite.path = \"{Path.Combine(folder.Path, "other.db")}\"", "other.conf")]);
        Assert.Equal(1, third.Exit);
        Assert.Equal($"romana: cannot start: romana.cni.socket: another daemon is serving {socket}", third.Error.Trim());

        // The lock goes with the process that held it.
        first.Terminate();
        Assert.Equal(0, first.AwaitExit(TimeSpan.FromSeconds(30)));
        var fourth = DaemonProcess.Start(lab, node2, config, ["--socket", otherSocket]);
        fourth.AwaitReady(otherSocket);
        fourth.Terminate();
        Assert.Equal(0, fourth.AwaitExit(TimeSpan.FromSeconds(30)));
    }

    [SkippableFact]
    public void An_unusable_journal_path_is_one_line_naming_the_setting_and_the_path()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");

        var directory = Directory.CreateDirectory(Path.Combine(folder.Path, "a-folder.db")).FullName;
        var isFolder = NetnsLab.Exec(node, "dotnet", [DaemonProcess.RomanaDll, "daemon", "--config",
            Config(folder, $"romana.persistence.sqlite.path = \"{directory}\"", "folder.conf")]);
        AssertOneLine($"romana: cannot start: romana.persistence.sqlite.path: ", directory, isFolder);

        // A read-only file system, mounted in a mount namespace of the daemon's own (the host's mounts are untouched).
        var readOnly = Directory.CreateDirectory(Path.Combine(folder.Path, "read-only")).FullName;
        var journal = Path.Combine(readOnly, "romana.db");
        var config = Config(folder, $"romana.persistence.sqlite.path = \"{journal}\"", "read-only.conf");
        var onReadOnly = NetnsLab.Exec(node, "unshare", ["--mount", "--propagation", "private", "sh", "-c",
            $"mount -t tmpfs -o ro romana-test '{readOnly}' && exec dotnet '{DaemonProcess.RomanaDll}' daemon --config '{config}'"]);
        AssertOneLine($"romana: cannot start: romana.persistence.sqlite.path: ", journal, onReadOnly);
    }

    private void AssertOneLine(string start, string path, (int Exit, string Output, string Error) outcome)
    {
        output.WriteLine(outcome.Error);
        Assert.Equal(1, outcome.Exit);
        var line = Assert.Single(outcome.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith(start, line);
        Assert.Contains(path, line);
        Assert.DoesNotContain("   at ", outcome.Output + outcome.Error);
    }

    [SkippableFact]
    public async Task A_socket_path_that_is_a_folder_or_lies_under_a_file_or_is_not_a_socket_is_refused_naming_the_setting()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var directory = Directory.CreateDirectory(Path.Combine(folder.Path, "run")).FullName;
        var file = folder.Write("a-file", "not a folder");
        var precious = folder.Write("precious", "kept");

        Assert.StartsWith($"romana.cni.socket: {directory} is a directory",
            await StartFailure(Config(folder, $"romana.cni.socket = \"{directory}\"", "dir.conf"), null));
        Assert.StartsWith($"--socket: {file} is not a directory",
            await StartFailure(Config(folder, "", "file.conf"), Path.Combine(file, "cni.sock")));
        Assert.StartsWith($"romana.cni.socket: {precious} exists and is not a socket",
            await StartFailure(Config(folder, $"romana.cni.socket = \"{precious}\"", "precious.conf"), null));
        Assert.Equal("kept", File.ReadAllText(precious));

        async Task<string> StartFailure(string config, string? socket)
        {
            try
            {
                var settings = RomanaConfig.Load(config);
                await using var daemon = await RomanaDaemon.StartAsync(settings, socket,
                    new LinuxHostNetwork(HostAgentSettings.From(settings), node));
                return "started";
            }
            catch (DaemonStartException e)
            {
                output.WriteLine(e.Message);
                return e.Message;
            }
        }
    }

    [SkippableFact]
    public async Task Values_a_reply_quotes_are_bounded_and_a_request_line_must_arrive_within_the_request_timeout()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NetnsLab();
        using var folder = new TempFolder();
        var node = lab.AddNode("n1", lab.AddSubnet("sub"), "10.99.0.11/24");
        var config = RomanaConfig.Load(Config(folder, "romana.cni.max-request-size = 8MiB\nromana.cni.request-timeout = 1s"));
        await using var daemon = await RomanaDaemon.StartAsync(config,
            hostNetwork: new LinuxHostNetwork(HostAgentSettings.From(config), node));
        var socket = SocketOf(folder);

        var command = DaemonWire.Send(socket, new DaemonRequest(new string('X', 60_000), "c1", "eth0"), TimeSpan.FromSeconds(10));
        AssertBounded(command, "invalid", "(60000 characters)");
        var pod = DaemonWire.Send(socket, DaemonWire.Add("c1", new string('p', 6_000_000)), TimeSpan.FromSeconds(30));
        AssertBounded(pod, "invalid", "(6000000 characters)");
        var key = DaemonWire.Send(socket, new DaemonRequest(DaemonProtocol.Check, new string('k', 256), "eth0"), TimeSpan.FromSeconds(10));
        AssertBounded(key, "not-found", "holds no address");
        var tooLong = DaemonWire.SendLine(socket, [.. Encoding.ASCII.GetBytes(new string('z', 9 << 20)), (byte)'\n'],
            TimeSpan.FromSeconds(30));
        AssertBounded(tooLong, "invalid", "romana.cni.max-request-size");

        // Silent, and half a request: each is closed once the request timeout (1 s here) has passed.
        foreach (var start in new[] { "", "{\"command\":" })
        {
            using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 5000 };
            client.Connect(new UnixDomainSocketEndPoint(socket));
            client.Send(Encoding.ASCII.GetBytes(start));
            var waited = Stopwatch.StartNew();
            Assert.Equal(0, client.Receive(new byte[1024]));
            Assert.InRange(waited.Elapsed, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(3));
        }
        Assert.True(DaemonWire.Send(socket, DaemonWire.Add("c2"), TimeSpan.FromSeconds(10)).Ok);
    }

    private void AssertBounded(DaemonWire.Answer answer, string code, string mentions)
    {
        output.WriteLine(answer.ToString().Length > 500 ? answer.ToString()[..500] + "..." : answer.ToString());
        var reply = answer.Reply ?? throw new Xunit.Sdk.XunitException($"no reply: {answer.Failure}");
        Assert.False(reply.Ok);
        Assert.Equal(code, reply.Code);
        Assert.Contains(mentions, reply.Error);
        Assert.InRange(reply.Error!.Length, 1, 400);
    }
}
