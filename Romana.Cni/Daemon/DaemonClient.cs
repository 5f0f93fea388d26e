using System.Net.Sockets;
using Romana.Contracts.Cni;

namespace Romana.Cni.Daemon;

/// <summary>
/// Talks to the Romana daemon over its Unix socket: one connection per request, one line each way
/// (<see cref="DaemonProtocol"/>). The daemon owns the addresses; the plugin only asks.
/// </summary>
internal sealed class DaemonClient(string socketPath)
{
    /// <summary>Long enough for the daemon's durable journal write, short of the runtime's own CNI timeout.</summary>
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(10);
    private const int MaxReplyBytes = 64 * 1024;

    public string SocketPath { get; } = socketPath;

    /// <exception cref="DaemonUnreachableException">No daemon at the socket, or it did not answer in time.</exception>
    /// <exception cref="DaemonProtocolException">It answered something that is not a reply.</exception>
    public DaemonReply Send(DaemonRequest request)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.SendTimeout = socket.ReceiveTimeout = (int)ReplyTimeout.TotalMilliseconds;
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(SocketPath));
        }
        catch (SocketException e)
        {
            throw new DaemonUnreachableException($"romana daemon not reachable at {SocketPath}: {WhyNotConnected(e)}");
        }
        byte[] line;
        try
        {
            socket.Send(DaemonProtocol.Encode(request));
            line = ReadLine(socket);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
        {
            throw new DaemonUnreachableException(
                $"romana daemon at {SocketPath} did not answer {request.Command} within {ReplyTimeout.TotalSeconds:0} s");
        }
        catch (SocketException e)
        {
            throw new DaemonUnreachableException(
                $"romana daemon at {SocketPath} dropped the connection during {request.Command}: {e.Message}");
        }
        if (line.Length == 0)
            throw new DaemonUnreachableException(
                $"romana daemon at {SocketPath} closed the connection without answering {request.Command}");
        return DaemonProtocol.DecodeReply(line)
            ?? throw new DaemonProtocolException(
                $"romana daemon at {SocketPath} answered {request.Command} with something that is not a reply: {Preview(line)}");
    }

    /// <summary>Reads up to the first newline (or the end of the stream when the daemon closes without one).</summary>
    private static byte[] ReadLine(Socket socket)
    {
        var buffer = new byte[4096];
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (length >= MaxReplyBytes) break;
                Array.Resize(ref buffer, length * 2);
            }
            var read = socket.Receive(buffer, length, buffer.Length - length, SocketFlags.None);
            if (read == 0) break;
            var newline = Array.IndexOf(buffer, (byte)'\n', length, read);
            length += read;
            if (newline >= 0) return buffer[..newline];
        }
        return buffer[..length];
    }

    /// <summary>
    /// .NET reports a missing socket file as "Cannot assign requested address", and a directory or regular file in its
    /// place as a refused connection: say what is there instead.
    /// </summary>
    private string WhyNotConnected(SocketException e) => Romana.Netlink.FileTypes.Describe(SocketPath) switch
    {
        null => "no such socket (is the daemon running?)",
        "a socket" => e.SocketErrorCode switch
        {
            SocketError.ConnectionRefused => "connection refused (no daemon is listening on the socket)",
            SocketError.AccessDenied => "permission denied",
            _ => Printable.Text(e.Message),
        },
        var other => $"the path is {other}, not a Unix socket (is daemonSocket right?)",
    };

    private static string Preview(byte[] line)
    {
        var text = System.Text.Encoding.UTF8.GetString(line, 0, Math.Min(line.Length, 200));
        return Printable.Text(text, 200) + (line.Length > 200 ? $"... ({line.Length} bytes)" : "");
    }
}

internal sealed class DaemonUnreachableException(string message) : Exception(message);

internal sealed class DaemonProtocolException(string message) : Exception(message);
