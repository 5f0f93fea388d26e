using System.Net.Sockets;
using Akka.Event;
using Romana.Contracts.Cni;

namespace Romana.Host.Dataplane;

/// <summary>
/// The daemon's end of the CNI plugin's Unix socket: one request line per connection, answered by the handler, one reply
/// line back. The socket file is the only way in, so it is made owner-only (0600): whoever may talk to it may take addresses.
/// </summary>
public sealed class CniServer : IAsyncDisposable
{
    private const int MaxRequestBytes = 64 * 1024;
    private readonly Socket _listener;
    private readonly string _path;
    private readonly CancellationTokenSource _stop = new();
    private Task _accepting = Task.CompletedTask;

    private CniServer(Socket listener, string path)
    {
        _listener = listener;
        _path = path;
    }

    /// <summary>
    /// Binds the socket, before the daemon starts its journal: a live daemon already on that path is an error (two daemons
    /// must never share a node), a stale socket file is replaced. Plugins that connect before <see cref="Serve"/> wait in the backlog.
    /// </summary>
    public static CniServer Bind(string path)
    {
        if (!OperatingSystem.IsLinux()) throw new DaemonStartException("the Romana daemon runs on Linux only");
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new DaemonStartException($"romana.cni.socket: cannot create {directory}: {e.Message} " +
                $"(the daemon runs as root; or choose another path with --socket)");
        }
        if (File.Exists(path))
        {
            if (IsServed(path)) throw new DaemonStartException($"romana.cni.socket: another daemon is serving {path}");
            File.Delete(path);
        }
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        // Bound under a temporary name, made owner-only, then renamed into place: the path never exists with looser rights.
        var unguarded = $"{path}.{Environment.ProcessId}";
        try
        {
            File.Delete(unguarded);
            listener.Bind(new UnixDomainSocketEndPoint(unguarded));
            File.SetUnixFileMode(unguarded, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(512);
            File.Move(unguarded, path, overwrite: true);
        }
        catch (Exception e) when (e is SocketException or UnauthorizedAccessException or IOException)
        {
            listener.Dispose();
            File.Delete(unguarded);
            throw new DaemonStartException($"romana.cni.socket: cannot serve {path}: {e.Message}");
        }
        return new CniServer(listener, path);
    }

    public void Serve(Func<DaemonRequest, Task<DaemonReply>> handle, ILoggingAdapter log) => _accepting = AcceptAsync(handle, log);

    private static bool IsServed(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private async Task AcceptAsync(Func<DaemonRequest, Task<DaemonReply>> handle, ILoggingAdapter log)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                log.Warning("CNI socket {0}: accept failed: {1}", _path, e.Message);
                continue;
            }
            _ = AnswerAsync(connection, handle, log);
        }
    }

    private async Task AnswerAsync(Socket connection, Func<DaemonRequest, Task<DaemonReply>> handle, ILoggingAdapter log)
    {
        using var _ = connection;
        try
        {
            var line = await ReadLineAsync(connection);
            var request = line is null ? null : DaemonProtocol.DecodeRequest(line);
            var reply = request is null
                ? DaemonReply.Failure("invalid",
                    "request: not one JSON object on one line (fields command, containerId, ifName, netns, pod)")
                : await handle(request);
            await connection.SendAsync(DaemonProtocol.Encode(reply), SocketFlags.None, _stop.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException)
        {
            log.Warning("CNI socket {0}: a connection ended early: {1}", _path, e.Message);
        }
    }

    private async Task<byte[]?> ReadLineAsync(Socket connection)
    {
        var buffer = new byte[MaxRequestBytes];
        var length = 0;
        while (length < buffer.Length)
        {
            var read = await connection.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, _stop.Token);
            if (read == 0) break;
            length += read;
            if (Array.IndexOf(buffer, (byte)'\n', length - read, read) >= 0) break;
        }
        var end = Array.IndexOf(buffer, (byte)'\n', 0, length);
        return length == 0 ? null : buffer[..(end < 0 ? length : end)];
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _accepting;
        File.Delete(_path);
    }
}

public sealed class DaemonStartException(string message) : Exception(message);
