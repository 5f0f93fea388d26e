using System.Runtime.InteropServices;

namespace Romana.Netlink;

/// <summary>
/// A NETLINK_ROUTE socket bound to the network namespace that was current when it was opened. Requests are synchronous:
/// send one, read until its acknowledgement (or NLMSG_DONE for a dump), throw <see cref="NetlinkException"/> on an errno.
/// Blocking, and not for two threads at once: <see cref="RouteNetlink"/> speaks over it.
/// </summary>
public sealed unsafe class NetlinkSocket : IDisposable
{
    private const int ReceiveBufferSize = 64 * 1024;
    private readonly int _fd;
    private readonly byte[] _receiveBuffer = new byte[ReceiveBufferSize];
    private uint _sequence;

    private NetlinkSocket(int fd)
    {
        _fd = fd;
        // Seeded from the clock like iproute2, so a reply to an earlier process on a reused port id is never taken for ours.
        _sequence = (uint)Environment.TickCount;
    }

    /// <summary>Opens a socket in the calling thread's current network namespace.</summary>
    public static NetlinkSocket Open()
    {
        var fd = Libc.Socket(Libc.AF_NETLINK, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, Libc.NETLINK_ROUTE);
        if (fd < 0) throw new NetlinkException("opening a netlink socket", Libc.LastErrno());
        try
        {
            var address = new Libc.SockaddrNetlink { Family = Libc.AF_NETLINK };
            if (Libc.Bind(fd, &address, sizeof(Libc.SockaddrNetlink)) < 0)
                throw new NetlinkException("binding a netlink socket", Libc.LastErrno());
            // Best effort: the kernel's own sentence in errors ("Nexthop device is not up"), without echoing our request back.
            var on = 1;
            Libc.SetSockOpt(fd, Libc.SOL_NETLINK, Libc.NETLINK_CAP_ACK, &on, sizeof(int));
            Libc.SetSockOpt(fd, Libc.SOL_NETLINK, Libc.NETLINK_EXT_ACK, &on, sizeof(int));
            return new NetlinkSocket(fd);
        }
        catch
        {
            Libc.Close(fd);
            throw;
        }
    }

    /// <summary>Sends a change (NEWLINK, NEWADDR, ...) with NLM_F_ACK and waits for the kernel to accept it.</summary>
    internal void Execute(NetlinkMessageBuilder request, string operation) => Exchange(request, operation, dump: false, replies: null);

    /// <summary>A single GET with NLM_F_ACK: the reply message(s), then the acknowledgement.</summary>
    internal List<NetlinkMessage> Get(NetlinkMessageBuilder request, string operation)
    {
        var replies = new List<NetlinkMessage>();
        Exchange(request, operation, dump: false, replies);
        return replies;
    }

    /// <summary>An NLM_F_DUMP request: every message until NLMSG_DONE. Dumps end with DONE rather than an acknowledgement.</summary>
    internal List<NetlinkMessage> Dump(NetlinkMessageBuilder request, string operation)
    {
        var replies = new List<NetlinkMessage>();
        Exchange(request, operation, dump: true, replies);
        return replies;
    }

    private void Exchange(NetlinkMessageBuilder request, string operation, bool dump, List<NetlinkMessage>? replies)
    {
        var sequence = ++_sequence;
        SendAll(request.Seal(sequence), operation);
        while (true)
        {
            var received = ReceiveOnce(operation);
            var data = _receiveBuffer.AsSpan(0, received);
            while (data.Length >= NetlinkHeader.Size)
            {
                var header = MemoryMarshal.Read<NetlinkHeader>(data);
                if (header.Length < NetlinkHeader.Size || header.Length > data.Length)
                    throw new NetlinkException($"{operation} (malformed netlink reply)", 74 /* EBADMSG */);
                var payload = data[NetlinkHeader.Size..(int)header.Length];
                data = data[Math.Min(data.Length, NetlinkMessageBuilder.Align((int)header.Length))..];
                if (header.Sequence != sequence) continue;

                if (header.Type == Rtm.NLMSG_ERROR)
                {
                    var error = MemoryMarshal.Read<int>(payload);
                    if (error == 0) return;
                    throw new NetlinkException(operation, -error, ExtendedAckMessage(header.Flags, payload));
                }
                if (header.Type == Rtm.NLMSG_DONE)
                {
                    var error = payload.Length >= 4 ? MemoryMarshal.Read<int>(payload) : 0;
                    if (error < 0) throw new NetlinkException(operation, -error);
                    if (dump) return;
                    continue;
                }
                replies?.Add(new NetlinkMessage(header.Type, header.Flags, payload.ToArray()));
            }
        }
    }

    /// <summary>The NLMSGERR_ATTR_MSG of an extended acknowledgement, if the kernel wrote one.</summary>
    private static string? ExtendedAckMessage(ushort flags, ReadOnlySpan<byte> payload)
    {
        if ((flags & NlmFlags.AckTlvs) == 0 || payload.Length < 4 + NetlinkHeader.Size) return null;
        var echoedRequest = MemoryMarshal.Read<NetlinkHeader>(payload[4..]);
        var echoedLength = (flags & NlmFlags.Capped) != 0 ? NetlinkHeader.Size : NetlinkMessageBuilder.Align((int)echoedRequest.Length);
        var attributesStart = 4 + echoedLength;
        if (attributesStart >= payload.Length) return null;
        return NetlinkAttributes.Parse(payload[attributesStart..]).String(Attr.NLMSGERR_ATTR_MSG);
    }

    private void SendAll(ReadOnlySpan<byte> message, string operation)
    {
        fixed (byte* bytes = message)
        {
            while (true)
            {
                var sent = Libc.Send(_fd, bytes, message.Length, 0);
                if (sent >= 0) return;
                var errno = Libc.LastErrno();
                if (errno != Errno.EINTR) throw new NetlinkException($"{operation} (sending the netlink request)", errno);
            }
        }
    }

    private int ReceiveOnce(string operation)
    {
        fixed (byte* bytes = _receiveBuffer)
        {
            while (true)
            {
                var received = Libc.Receive(_fd, bytes, _receiveBuffer.Length, 0);
                if (received > 0) return (int)received;
                var errno = received == 0 ? 104 /* ECONNRESET */ : Libc.LastErrno();
                if (errno != Errno.EINTR) throw new NetlinkException($"{operation} (reading the netlink reply)", errno);
            }
        }
    }

    public void Dispose() => Libc.Close(_fd);
}
