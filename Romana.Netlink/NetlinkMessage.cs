using System.Net;
using System.Runtime.InteropServices;
using System.Text;

namespace Romana.Netlink;

/// <summary>One message the kernel sent back (a link, an address, a route), its payload copied out of the receive buffer.</summary>
internal sealed record NetlinkMessage(ushort Type, ushort Flags, byte[] Payload)
{
    public T FamilyHeader<T>() where T : unmanaged => MemoryMarshal.Read<T>(Payload);

    /// <summary>The attributes after the fixed family header of <paramref name="familyHeaderSize"/> bytes.</summary>
    public NetlinkAttributes Attributes(int familyHeaderSize) =>
        NetlinkAttributes.Parse(Payload.AsSpan(NetlinkMessageBuilder.Align(familyHeaderSize)));
}

/// <summary>The attributes of one level (nested ones are parsed again from their value); a later duplicate wins.</summary>
internal sealed class NetlinkAttributes
{
    private readonly Dictionary<ushort, byte[]> _values = [];

    public static NetlinkAttributes Parse(ReadOnlySpan<byte> data)
    {
        var attributes = new NetlinkAttributes();
        while (data.Length >= 4)
        {
            var length = MemoryMarshal.Read<ushort>(data);
            var type = (ushort)(MemoryMarshal.Read<ushort>(data[2..]) & Attr.TypeMask);
            if (length < 4 || length > data.Length) break;
            attributes._values[type] = data[4..length].ToArray();
            data = data[Math.Min(data.Length, NetlinkMessageBuilder.Align(length))..];
        }
        return attributes;
    }

    public byte[]? Bytes(ushort type) => _values.GetValueOrDefault(type);

    public string? String(ushort type) => Bytes(type) is { } bytes ? Encoding.UTF8.GetString(bytes.AsSpan().TrimEnd((byte)0)) : null;

    public uint? UInt32(ushort type) => Bytes(type) is { Length: >= 4 } bytes ? MemoryMarshal.Read<uint>(bytes) : null;

    public IPAddress? Address(ushort type) => Bytes(type) is { Length: 4 or 16 } bytes ? new IPAddress(bytes) : null;
}
