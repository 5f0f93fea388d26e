using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Akka.Event;
using Romana.Contracts.Cni;

namespace Romana.Host.Dataplane;

/// <summary>What the socket hands its requests to (<see cref="CniRequestHandler"/>).</summary>
public interface ICniRequests
{
    Task<DaemonReply> HandleAsync(DaemonRequest request);

    /// <summary>
    /// The reply to <paramref name="request"/> could not be sent (the plugin went away, stopped reading, or the daemon is
    /// stopping): the plugin reports the request failed and wires nothing, so what the reply handed out is taken back.
    /// </summary>
    Task UndeliveredAsync(DaemonRequest request, DaemonReply reply, string why);
}

/// <summary>
/// The daemon's end of the CNI plugin's Unix socket: one request line per connection, answered by the handler, one reply
/// line back. The socket file is the only way in, so it is made owner-only (0600): whoever may talk to it may take addresses.
/// <para>
/// Abuse is bounded. At most <see cref="CniSettings.MaxConnections"/> connections are open at once, fewer when the
/// descriptor limit leaves less room (less <see cref="CniSettings.ReservedDescriptors"/> for everything else); at the limit,
/// the oldest connection that has not sent a byte is closed to make room, and one that is answering is never cut. A request
/// line must arrive within <see cref="CniSettings.RequestTimeout"/> of the connect. An idle connection holds no buffer; a
/// request's buffer grows with it, up to <see cref="CniSettings.MaxRequestBytes"/>. When accept fails (out of descriptors,
/// say) the loop backs off, 10 ms doubling to 1 s, closes idle connections to give descriptors back, and logs at most one
/// line every 10 s.
/// </para>
/// <para>
/// A stop closes the listener and removes the socket file (a plugin that comes now is told no daemon is there, and the
/// runtime tries again), closes the idle connections, and waits up to <see cref="CniSettings.StopTimeout"/> for the requests
/// in flight to be answered. A reply that cannot be sent is reported to <see cref="ICniRequests.UndeliveredAsync"/>.
/// </para>
/// </summary>
public sealed class CniServer : IAsyncDisposable
{
    private const int FirstBufferBytes = 1024;
    private const int UnixPathMaxBytes = 107;
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    private readonly Socket _listener;
    private readonly CniSettings _settings;
    private readonly CancellationTokenSource _stopAccepting = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly Lock _gate = new();
    private readonly HashSet<Connection> _open = [];
    private readonly LinkedList<Connection> _idle = new();
    private TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _limit;
    private int? _others;
    private Task _accepting = Task.CompletedTask;
    private ILoggingAdapter _log = NoLogger.Instance;
    private RateLimitedLog _warnings = new(NoLogger.Instance, LogInterval);
    private int _stopped;
    private int _serving;

    private CniServer(Socket listener, CniSettings settings)
    {
        _listener = listener;
        _settings = settings;
        _limit = settings.MaxConnections;
    }

    private string Path => _settings.Socket;

    /// <summary>Connections open now (for tests and the stop's log line).</summary>
    public int OpenConnections
    {
        get { lock (_gate) return _open.Count; }
    }

    /// <summary>
    /// Binds the socket, before the daemon touches its journal: a live daemon already on that path is an error (two daemons
    /// must never share a node), a stale socket file is replaced, anything else at the path is refused and left alone.
    /// Plugins that connect before <see cref="Serve"/> wait in the backlog.
    /// </summary>
    public static CniServer Bind(CniSettings settings)
    {
        if (!OperatingSystem.IsLinux()) throw new DaemonStartException("the Romana daemon runs on Linux only");
        var (path, setting) = (settings.Socket, settings.SocketSetting);
        var full = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(full)!;
        if (Directory.Exists(full))
            throw new DaemonStartException($"{setting}: {path} is a directory; name the socket file in it, " +
                $"e.g. {System.IO.Path.Combine(path, "cni.sock")}");
        for (var folder = directory; folder is not null; folder = System.IO.Path.GetDirectoryName(folder))
        {
            if (Directory.Exists(folder)) break;
            if (File.Exists(folder))
                throw new DaemonStartException($"{setting}: {folder} is not a directory, so {path} cannot be made in it");
        }
        if (Encoding.UTF8.GetByteCount(full) > UnixPathMaxBytes)
            throw new DaemonStartException($"{setting}: {full} is {Encoding.UTF8.GetByteCount(full)} bytes long; " +
                $"a Unix socket path holds at most {UnixPathMaxBytes}");
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new DaemonStartException($"{setting}: cannot create {directory}: {e.Message} " +
                $"(the daemon runs as root; or choose another path with --socket)");
        }
        switch (UnixFiles.KindOf(full))
        {
            case UnixFiles.Kind.Missing:
                break;
            case UnixFiles.Kind.Socket or UnixFiles.Kind.Unknown:
                if (IsServed(full)) throw new DaemonStartException($"{setting}: another daemon is serving {path}");
                File.Delete(full);
                break;
            case var kind:
                throw new DaemonStartException($"{setting}: {path} exists and is not a socket ({Describe(kind)}); the daemon " +
                    "replaces only a socket that a stopped daemon left behind: remove it, or choose another path");
        }
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        // Bound under a temporary name, made owner-only, then renamed into place: the path never exists with looser rights.
        var unguarded = TemporaryName(full, directory);
        try
        {
            File.Delete(unguarded);
            listener.Bind(new UnixDomainSocketEndPoint(unguarded));
            File.SetUnixFileMode(unguarded, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(512);
            File.Move(unguarded, full, overwrite: true);
        }
        catch (Exception e) when (e is SocketException or UnauthorizedAccessException or IOException)
        {
            listener.Dispose();
            File.Delete(unguarded);
            throw new DaemonStartException($"{setting}: cannot serve {path}: {e.Message}");
        }
        return new CniServer(listener, settings);
    }

    private static string TemporaryName(string full, string directory)
    {
        var beside = $"{full}.{Environment.ProcessId}";
        return Encoding.UTF8.GetByteCount(beside) <= UnixPathMaxBytes
            ? beside
            : System.IO.Path.Combine(directory, $".{Environment.ProcessId}");
    }

    private static string Describe(UnixFiles.Kind kind) => kind switch
    {
        UnixFiles.Kind.Regular => "a regular file",
        UnixFiles.Kind.SymbolicLink => "a symbolic link",
        _ => "neither a file nor a directory",
    };

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

    /// <summary>Why plugins cannot be served now (null: they can): not served yet, stopped, or the socket file gone.</summary>
    public string? NotServedBecause =>
        Volatile.Read(ref _stopped) == 1 ? $"socket {Path} closed (the daemon is stopping)"
        : Volatile.Read(ref _serving) == 0 ? $"socket {Path} not served yet (the daemon is starting)"
        : _accepting.IsCompleted ? $"socket {Path} no longer accepts connections"
        : !File.Exists(Path) ? $"socket file {Path} is gone"
        : null;

    public void Serve(ICniRequests requests, ILoggingAdapter log)
    {
        _log = log;
        _warnings = new RateLimitedLog(log, LogInterval);
        string why;
        lock (_gate) _limit = Budget(0, out why);
        log.Info("CNI socket {0}: at most {1} connections at once ({2}); a request line within {3} s of connecting, " +
            "of at most {4} bytes", Path, _limit, why, _settings.RequestTimeout.TotalSeconds, _settings.MaxRequestBytes);
        _accepting = AcceptAsync(requests);
        Volatile.Write(ref _serving, 1);
    }

    /// <summary>
    /// How many connections may be open: romana.cni.max-connections, or fewer when the descriptor limit leaves less room
    /// beside the descriptors open for anything else (<paramref name="connections"/> of those open are connections);
    /// <paramref name="unknown"/> where the descriptors cannot be counted (none left to open /proc/self/fd with).
    /// </summary>
    private int Budget(int connections, out string why, int? unknown = null)
    {
        var max = _settings.MaxConnections;
        why = $"{CniSettings.Section}.max-connections";
        if (UnixFiles.DescriptorLimit() is not { } limit) return max;
        // With no descriptor left to list /proc/self/fd, the last count of the others stands in.
        if (UnixFiles.OpenDescriptors() is { } open) _others = Math.Max(0, open - connections);
        else if (_others is null) return Math.Min(max, unknown ?? max);
        var others = _others.Value;
        var room = limit - others - _settings.ReservedDescriptors;
        if (room >= max) return max;
        why = $"descriptor limit {limit}: {others} open besides connections, {_settings.ReservedDescriptors} kept free " +
            $"({CniSettings.Section}.reserved-descriptors); {CniSettings.Section}.max-connections is {max}";
        return (int)Math.Max(1, room);
    }

    private async Task AcceptAsync(ICniRequests requests)
    {
        var backoff = TimeSpan.Zero;
        while (await RoomAsync())
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stopAccepting.Token);
                backoff = TimeSpan.Zero;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                backoff = backoff == TimeSpan.Zero ? MinBackoff : TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                var shed = OutOfDescriptors(e) ? ShedForDescriptors() : "";
                _warnings.Warning("accept", $"CNI socket {Path}: accept failed: {e.Message}{shed}; " +
                    $"accepting again in {backoff.TotalMilliseconds:0} ms");
                try
                {
                    await Task.Delay(backoff, _stopAccepting.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            Begin(socket, requests);
        }
    }

    private static bool OutOfDescriptors(SocketException e) =>
        e.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable
        || e.NativeErrorCode is 23 or 24 or 12 or 105; // ENFILE, EMFILE, ENOMEM, ENOBUFS

    /// <summary>
    /// Out of descriptors: the oldest idle connection is closed at once (a descriptor back, for the connection waiting to be
    /// accepted and for measuring), the budget is measured again (the limit may have been lowered, or something else holds
    /// more), and idle connections beyond it are closed too. Where it cannot be measured, the budget shrinks below what is open.
    /// </summary>
    private string ShedForDescriptors()
    {
        List<Connection> shed = [];
        int before, open;
        lock (_gate)
        {
            (before, open) = (_limit, _open.Count);
            if (TakeOldestIdle("out of descriptors") is { } oldest) shed.Add(oldest);
        }
        foreach (var connection in shed) End(connection);
        var measured = Budget(open - shed.Count, out _, unknown: Math.Max(1, open - 1));
        lock (_gate)
        {
            _limit = measured;
            while (open - shed.Count > _limit && TakeOldestIdle("out of descriptors") is { } oldest) shed.Add(oldest);
        }
        foreach (var connection in shed.Skip(1)) End(connection);
        return $" (out of descriptors: {open} connections were open, {shed.Count} idle ones closed; at most {measured} from now on" +
            $"{(measured != before ? $", was {before}" : "")})";
    }

    /// <summary>
    /// Waits until a connection may be accepted; at the limit, the oldest idle connection makes room. False once stopping.
    /// </summary>
    private async Task<bool> RoomAsync()
    {
        while (!_stopAccepting.IsCancellationRequested)
        {
            Connection? oldest;
            int open, limit;
            Task closed;
            lock (_gate)
            {
                (open, limit) = (_open.Count, _limit);
                if (open < limit) return true;
                closed = _closed.Task;
                oldest = TakeOldestIdle("evicted");
            }
            if (oldest is not null)
            {
                End(oldest);
                _warnings.Warning("full", $"CNI socket {Path}: {open} connections open, the most allowed now ({limit}; " +
                    $"{CniSettings.Section}.max-connections is {_settings.MaxConnections}, the descriptor limit may allow fewer): " +
                    "the oldest one that had sent nothing was closed to make room");
            }
            try
            {
                await closed.WaitAsync(_stopAccepting.Token);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
        return false;
    }

    private void Begin(Socket socket, ICniRequests requests)
    {
        var connection = new Connection(socket, _settings.RequestTimeout, _abort.Token);
        lock (_gate)
        {
            _open.Add(connection);
            connection.IdleNode = _idle.AddLast(connection);
        }
        connection.Served = ServeAsync(connection, requests);
    }

    /// <summary>
    /// The connection that has waited longest without sending a byte, taken off the idle list (under the lock). One whose
    /// request has arrived but not yet been read is not idle: it leaves the list, to be served, and the search goes on.
    /// </summary>
    private Connection? TakeOldestIdle(string why)
    {
        while (_idle.First is { } oldest)
        {
            var connection = oldest.Value;
            _idle.RemoveFirst();
            connection.IdleNode = null;
            if (HasBytesWaiting(connection)) continue;
            connection.EndedBy = why;
            return connection;
        }
        return null;
    }

    private static bool HasBytesWaiting(Connection connection)
    {
        try
        {
            return connection.Socket.Available > 0;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Takes a connection off the idle list (if it is still on it).</summary>
    private void LeaveIdle(Connection connection)
    {
        lock (_gate)
        {
            if (connection.IdleNode is null) return;
            _idle.Remove(connection.IdleNode);
            connection.IdleNode = null;
        }
    }

    /// <summary>Closes a connection on purpose (its EndedBy says why); its descriptor is given back at once.</summary>
    private static void End(Connection connection)
    {
        try
        {
            connection.Deadline.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // already closed
        }
        connection.Socket.Dispose();
    }

    private async Task ServeAsync(Connection connection, ICniRequests requests)
    {
        try
        {
            Received received;
            try
            {
                // Until its first byte, a connection costs its descriptor and nothing else: no buffer.
                await connection.Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, connection.Deadline.Token);
                LeaveIdle(connection);
                if (connection.EndedBy is not null) return;
                received = await ReceiveAsync(connection);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
            {
                EndedUnasked(connection, e);
                return;
            }
            if (received is { Request: null, Refusal: null }) return;
            var reply = received.Refusal ?? await HandleAsync(requests, received.Request!);
            var failure = await SendAsync(connection, reply);
            if (failure is not null && received.Request is { } request) await UndeliveredAsync(requests, request, reply, failure);
            else if (failure is null && received.Refusal is not null) await DrainAsync(connection);
        }
        catch (Exception e)
        {
            _log.Error(e, "CNI socket {0}: a connection failed unexpectedly: {1}", Path, Printable.Text(e.Message));
        }
        finally
        {
            Close(connection);
        }
    }

    /// <summary>
    /// After a refusal the client may still be sending (a line past max-request-size): closing with its bytes unread would
    /// reset the connection and lose the reply it has not read yet. So the reply is followed by the end of the daemon's
    /// side, and what still comes is read and dropped until the client closes or the request timeout passes.
    /// </summary>
    private static async Task DrainAsync(Connection connection)
    {
        try
        {
            connection.Socket.Shutdown(SocketShutdown.Send);
            var discard = new byte[FirstBufferBytes];
            while (await connection.Socket.ReceiveAsync(discard, SocketFlags.None, connection.Deadline.Token) > 0)
            {
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            // the client went away or took too long: the reply was sent, nothing else is owed
        }
    }

    private sealed record Received(DaemonRequest? Request, DaemonReply? Refusal);

    /// <summary>One line, in a buffer that starts small and doubles as the request needs, up to the most a request may be.</summary>
    private async Task<Received> ReceiveAsync(Connection connection)
    {
        var max = _settings.MaxRequestBytes;
        var buffer = new byte[Math.Min(FirstBufferBytes, max + 1)];
        var length = 0;
        int end;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (length > max) return new(null, TooLarge());
                Array.Resize(ref buffer, (int)Math.Min(2L * length, max + 1L));
            }
            var read = await connection.Socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, connection.Deadline.Token);
            if (read == 0)
            {
                end = length;
                break;
            }
            var newline = Array.IndexOf(buffer, (byte)'\n', length, read);
            length += read;
            if (newline < 0) continue;
            end = newline;
            break;
        }
        if (end == 0 && length == 0) return new(null, null);
        if (end > max) return new(null, TooLarge());
        return DaemonProtocol.DecodeRequest(buffer.AsSpan(0, end)) is { } request
            ? new(request, null)
            : new(null, DaemonReply.Failure("invalid",
                "request: not one JSON object on one line (fields command, containerId, ifName, netns, pod)"));
    }

    private DaemonReply TooLarge() => DaemonReply.Failure("invalid",
        $"request: more than {_settings.MaxRequestBytes} bytes without a newline ({CniSettings.Section}.max-request-size)");

    private async Task<DaemonReply> HandleAsync(ICniRequests requests, DaemonRequest request)
    {
        try
        {
            return await requests.HandleAsync(request);
        }
        catch (Exception e)
        {
            var command = Printable.Quote(request.Command, 16);
            _log.Warning("CNI {0}: failed: {1}", command, Printable.Text(e.Message));
            return DaemonReply.Failure("unavailable", $"the daemon could not answer {command}: {Printable.Text(e.Message)}");
        }
    }

    /// <summary>Null once the reply is sent; otherwise why it was not.</summary>
    private async Task<string?> SendAsync(Connection connection, DaemonReply reply)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_abort.Token);
        timeout.CancelAfter(_settings.RequestTimeout);
        try
        {
            await connection.Socket.SendAsync(DaemonProtocol.Encode(reply), SocketFlags.None, timeout.Token);
            return null;
        }
        catch (OperationCanceledException)
        {
            return _abort.IsCancellationRequested
                ? $"the daemon stopped ({CniSettings.Section}.stop-timeout {_settings.StopTimeout.TotalSeconds:0.###} s passed)"
                : $"the plugin did not take it within {_settings.RequestTimeout.TotalSeconds:0.###} s";
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            return $"the connection was gone: {e.Message}";
        }
    }

    private async Task UndeliveredAsync(ICniRequests requests, DaemonRequest request, DaemonReply reply, string why)
    {
        try
        {
            await requests.UndeliveredAsync(request, reply, why);
        }
        catch (Exception e)
        {
            _log.Error("CNI {0} {1}: the reply was not delivered ({2}), and undoing it failed: {3}", Printable.Quote(request.Command, 16),
                Printable.Quote(request.ContainerId), why, Printable.Text(e.Message));
        }
    }

    /// <summary>A connection that ended before it asked anything: counted in a rate-limited line unless it was closed on purpose.</summary>
    private void EndedUnasked(Connection connection, Exception e)
    {
        if (connection.EndedBy is not null) return;
        if (e is OperationCanceledException && !_abort.IsCancellationRequested)
            _warnings.Warning("timeout", $"CNI socket {Path}: closed a connection that sent no whole request line within " +
                $"{_settings.RequestTimeout.TotalSeconds:0.###} s ({CniSettings.Section}.request-timeout)");
        else if (e is not OperationCanceledException)
            _warnings.Warning("ended", $"CNI socket {Path}: a connection ended before its request was read: {e.Message}");
    }

    private void Close(Connection connection)
    {
        TaskCompletionSource closed;
        lock (_gate)
        {
            _open.Remove(connection);
            if (connection.IdleNode is not null) _idle.Remove(connection.IdleNode);
            connection.IdleNode = null;
            closed = _closed;
            _closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        connection.Socket.Dispose();
        connection.Deadline.Dispose();
        closed.TrySetResult();
    }

    /// <summary>
    /// Stops: no more connections (the socket file goes first), idle ones closed, the requests in flight answered within
    /// romana.cni.stop-timeout; after it, what is still open is cut (and its replies count as not delivered).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        await _stopAccepting.CancelAsync();
        _listener.Dispose();
        await _accepting;
        File.Delete(Path);
        List<Connection> idle = [], open;
        lock (_gate)
        {
            while (TakeOldestIdle("stopping") is { } connection) idle.Add(connection);
            open = [.. _open];
        }
        foreach (var connection in idle) End(connection);
        var inFlight = open.Count - idle.Count;
        var served = Task.WhenAll(open.Select(c => c.Served));
        var clock = Stopwatch.StartNew();
        if (await Task.WhenAny(served, Task.Delay(_settings.StopTimeout)) != served)
        {
            _log.Warning("CNI socket {0}: {1} requests still in flight after {2} s ({3}.stop-timeout): their connections are cut",
                Path, OpenConnections, _settings.StopTimeout.TotalSeconds, CniSettings.Section);
            await _abort.CancelAsync();
            await Task.WhenAny(served, Task.Delay(TimeSpan.FromSeconds(1)));
        }
        else
        {
            _log.Info("CNI socket {0} closed: {1} requests in flight at the stop answered in {2:0} ms; {3} idle connections closed",
                Path, inFlight, clock.Elapsed.TotalMilliseconds, idle.Count);
        }
        _warnings.Flush();
    }

    private sealed class Connection
    {
        public Connection(Socket socket, TimeSpan requestTimeout, CancellationToken abort)
        {
            Socket = socket;
            Deadline = CancellationTokenSource.CreateLinkedTokenSource(abort);
            Deadline.CancelAfter(requestTimeout);
        }

        public Socket Socket { get; }

        /// <summary>Cancelled when the request line is late, when the connection is closed to make room, at a stop or an abort.</summary>
        public CancellationTokenSource Deadline { get; }

        public LinkedListNode<Connection>? IdleNode { get; set; }

        /// <summary>Why the daemon closed it on purpose (null while it has not).</summary>
        public string? EndedBy { get; set; }

        public Task Served { get; set; } = Task.CompletedTask;
    }
}

public sealed class DaemonStartException(string message) : Exception(message);
