using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Romana.Netlink;

/// <summary>
/// One rtnetlink request: the netlink header, one fixed family header (ifinfomsg, rtmsg, ...) and attributes, nested
/// ones included. Netlink is host byte order and 4-byte aligned; the sequence number is stamped by the socket on send.
/// </summary>
internal sealed class NetlinkMessageBuilder
{
    private byte[] _buffer = new byte[512];
    private int _length = NetlinkHeader.Size;

    public NetlinkMessageBuilder(ushort type, ushort flags)
    {
        var header = new NetlinkHeader { Type = type, Flags = (ushort)(flags | NlmFlags.Request) };
        MemoryMarshal.Write(_buffer, in header);
    }

    public NetlinkMessageBuilder Append<T>(in T familyHeader) where T : unmanaged
    {
        MemoryMarshal.Write(Reserve(Unsafe.SizeOf<T>()), in familyHeader);
        return this;
    }

    public NetlinkMessageBuilder Attribute(ushort type, ReadOnlySpan<byte> value)
    {
        var span = Reserve(4 + value.Length);
        MemoryMarshal.Write(span, (ushort)(4 + value.Length));
        MemoryMarshal.Write(span[2..], type);
        value.CopyTo(span[4..]);
        return this;
    }

    /// <summary>A NUL-terminated string, as the kernel wants interface names and link kinds.</summary>
    public NetlinkMessageBuilder Attribute(ushort type, string value)
    {
        Span<byte> bytes = stackalloc byte[Encoding.UTF8.GetByteCount(value) + 1];
        Encoding.UTF8.GetBytes(value, bytes);
        bytes[^1] = 0;
        return Attribute(type, bytes);
    }

    public NetlinkMessageBuilder Attribute(ushort type, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        MemoryMarshal.Write(bytes, value);
        return Attribute(type, bytes);
    }

    public NetlinkMessageBuilder Attribute(ushort type, IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        return Attribute(type, bytes[..written]);
    }

    /// <summary>Opens a nested attribute; its length is fixed by <see cref="EndNested"/> with the returned offset.</summary>
    public int BeginNested(ushort type)
    {
        var start = _length;
        var span = Reserve(4);
        MemoryMarshal.Write(span[2..], (ushort)(type | Attr.NestedFlag));
        return start;
    }

    public NetlinkMessageBuilder EndNested(int start)
    {
        MemoryMarshal.Write(_buffer.AsSpan(start), (ushort)(_length - start));
        return this;
    }

    /// <summary>The finished message with its length and <paramref name="sequence"/> filled in.</summary>
    public ReadOnlySpan<byte> Seal(uint sequence)
    {
        MemoryMarshal.Write(_buffer, (uint)_length);
        MemoryMarshal.Write(_buffer.AsSpan(8), sequence);
        return _buffer.AsSpan(0, _length);
    }

    public static int Align(int length) => (length + 3) & ~3;

    private Span<byte> Reserve(int size)
    {
        var aligned = Align(size);
        if (_length + aligned > _buffer.Length) Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + aligned));
        var span = _buffer.AsSpan(_length, aligned);
        span.Clear();
        _length += aligned;
        return span[..size];
    }
}
