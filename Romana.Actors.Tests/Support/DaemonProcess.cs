using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Romana.Contracts.Cni;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// `romana daemon` as a process of its own in a node namespace (killed with the lab), its output collected as it comes:
/// a pipe that nobody reads would stall its logging. For what only a real process shows: signals, descriptor limits,
/// exit codes and what it prints.
/// </summary>
public sealed class DaemonProcess
{
    private readonly ConcurrentQueue<string> _output = new();
    private readonly ConcurrentQueue<string> _error = new();

    private DaemonProcess(Process process)
    {
        Process = process;
        process.OutputDataReceived += (_, line) => { if (line.Data is not null) _output.Enqueue(line.Data); };
        process.ErrorDataReceived += (_, line) => { if (line.Data is not null) _error.Enqueue(line.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Process Process { get; }
    public int Id => Process.Id;
    // Snapshots (ToArray): a spread of a queue that the process's reader threads add to meanwhile can overrun its count.
    public IReadOnlyList<string> OutputLines => _output.ToArray();
    public IReadOnlyList<string> ErrorLines => _error.ToArray();
    public string Everything => string.Join('\n', _output.ToArray().Concat(_error.ToArray()));

    public static string RomanaDll => Path.Combine(AppContext.BaseDirectory, "romana.dll");

    /// <summary>
    /// `romana daemon --config CONFIG [ARGS]` in <paramref name="netns"/>, behind <paramref name="wrapper"/> (e.g. prlimit).
    /// </summary>
    public static DaemonProcess Start(NetnsLab lab, string netns, string config, IEnumerable<string>? arguments = null,
        IReadOnlyList<string>? wrapper = null)
    {
        string[] command = [.. wrapper ?? [], "dotnet", RomanaDll, "daemon", "--config", config, .. arguments ?? []];
        return new DaemonProcess(lab.Spawn(netns, command[0], command[1..]));
    }

    public void AwaitSocket(string socket)
    {
        var waited = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            if (Process.HasExited) throw new InvalidOperationException($"romana daemon exited {Process.ExitCode}: {Everything}");
            if (waited.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"romana daemon did not open {socket} within 60 s");
            Thread.Sleep(50);
        }
    }

    /// <summary>The socket is there and the daemon answers STATUS (it binds its socket before its journal has recovered).</summary>
    public void AwaitReady(string socket)
    {
        AwaitSocket(socket);
        var status = DaemonWire.Send(socket, new DaemonRequest(DaemonProtocol.Status, "", ""), TimeSpan.FromSeconds(90));
        if (!status.Ok) throw new InvalidOperationException($"romana daemon did not answer STATUS on {socket}: {status}; {Everything}");
    }

    /// <summary>The exit code, once the process ended within <paramref name="timeout"/>; null if it still runs.</summary>
    public int? AwaitExit(TimeSpan timeout)
    {
        if (!Process.WaitForExit(timeout)) return null;
        Process.WaitForExit();
        return Process.ExitCode;
    }

    public void Terminate() => NetnsLab.Exec(null, "kill", ["-TERM", Id.ToString()]);
}

/// <summary>The plugin's side of the daemon protocol, spoken by a test: one request line, one reply line.</summary>
public static class DaemonWire
{
    public sealed record Answer(DaemonReply? Reply, TimeSpan Took, string? Failure)
    {
        public bool Ok => Reply?.Ok == true;
        public override string ToString() => Failure ?? $"{Reply} in {Took.TotalMilliseconds:0} ms";
    }

    /// <summary>Connects, sends, reads the reply; whatever goes wrong within <paramref name="timeout"/> is the answer's Failure.</summary>
    public static Answer Send(string socketPath, DaemonRequest request, TimeSpan timeout) =>
        SendLine(socketPath, DaemonProtocol.Encode(request), timeout);

    public static Answer SendLine(string socketPath, byte[] line, TimeSpan timeout)
    {
        var took = Stopwatch.StartNew();
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.SendTimeout = socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            // Sent while the reply is read: a daemon may answer (and close) before it has read all of a long line.
            var sending = Task.Run(() =>
            {
                try { socket.Send(line); }
                catch (SocketException) { }
            });
            var reply = ReadLine(socket);
            sending.Wait(timeout);
            return reply.Length == 0
                ? new Answer(null, took.Elapsed, $"closed without a reply after {took.ElapsedMilliseconds} ms")
                : new Answer(DaemonProtocol.DecodeReply(reply), took.Elapsed, null);
        }
        catch (SocketException e)
        {
            return new Answer(null, took.Elapsed, $"{e.SocketErrorCode} after {took.ElapsedMilliseconds} ms: {e.Message}");
        }
    }

    public static DaemonRequest Add(string containerId, string? pod = null) => new(DaemonProtocol.Add, containerId, "eth0", null, pod);

    private static byte[] ReadLine(Socket socket)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[4096];
        while (true)
        {
            var read = socket.Receive(chunk);
            if (read == 0) return buffer.ToArray();
            var newline = Array.IndexOf(chunk, (byte)'\n', 0, read);
            buffer.Write(chunk, 0, newline < 0 ? read : newline);
            if (newline >= 0) return buffer.ToArray();
        }
    }

    public static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}
