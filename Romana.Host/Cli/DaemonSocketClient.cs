using System.Net.Sockets;
using Romana.Contracts.Cni;

namespace Romana.Host.Cli;

/// <summary>
/// The admin commands' end of the daemon's Unix socket (<see cref="DaemonProtocol"/>): one connection per request, one line
/// each way. Every way of not getting a reply is a <see cref="DaemonUnreachableException"/> with one line saying which.
/// </summary>
public static class DaemonSocketClient
{
    /// <summary>A cluster view of thousands of members is a few hundred kilobytes.</summary>
    private const int MaxReplyBytes = 16 * 1024 * 1024;

    public static async Task<DaemonReply> SendAsync(string socketPath, DaemonRequest request, TimeSpan timeout,
        CancellationToken cancel = default)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), deadline.Token);
        }
        catch (SocketException e)
        {
            throw new DaemonUnreachableException($"no romana daemon at {socketPath}: {WhyNotConnected(socketPath, e)}");
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new DaemonUnreachableException($"the romana daemon at {socketPath} did not accept within {timeout.TotalSeconds:0} s");
        }
        byte[] line;
        try
        {
            await socket.SendAsync(DaemonProtocol.Encode(request), SocketFlags.None, deadline.Token);
            line = await ReadLineAsync(socket, deadline.Token);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new DaemonUnreachableException(
                $"the romana daemon at {socketPath} did not answer {request.Command} within {timeout.TotalSeconds:0} s");
        }
        catch (SocketException e)
        {
            throw new DaemonUnreachableException(
                $"the romana daemon at {socketPath} dropped the connection during {request.Command}: {Printable.Text(e.Message)}");
        }
        if (line.Length == 0)
            throw new DaemonUnreachableException(
                $"the romana daemon at {socketPath} closed the connection without answering {request.Command} (is it stopping?)");
        return DaemonProtocol.DecodeReply(line)
            ?? throw new DaemonUnreachableException($"what answers at {socketPath} sent something that is not a daemon's reply: " +
                Printable.Text(System.Text.Encoding.UTF8.GetString(line, 0, Math.Min(line.Length, 200)), 200));
    }

    /// <summary>Up to the first newline, or the end of the stream when the daemon closes without one.</summary>
    private static async Task<byte[]> ReadLineAsync(Socket socket, CancellationToken cancel)
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
            var read = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, cancel);
            if (read == 0) break;
            var newline = Array.IndexOf(buffer, (byte)'\n', length, read);
            length += read;
            if (newline >= 0) return buffer[..newline];
        }
        return buffer[..length];
    }

    /// <summary>
    /// .NET reports a missing socket file as "Cannot assign requested address", and a folder or a file in its place as a
    /// refused connection: say what is there instead.
    /// </summary>
    private static string WhyNotConnected(string path, SocketException e) => Romana.Netlink.FileTypes.Describe(path) switch
    {
        null => "no such socket (is romana daemon running? --socket or --config names another path)",
        "a socket" => e.SocketErrorCode switch
        {
            SocketError.ConnectionRefused => "connection refused (no daemon is listening on the socket; a stopped daemon's file?)",
            SocketError.AccessDenied => "permission denied (the socket is root's only: run as root)",
            _ => Printable.Text(e.Message),
        },
        var other => $"the path is {other}, not a Unix socket",
    };
}

public sealed class DaemonUnreachableException(string message) : Exception(message);
