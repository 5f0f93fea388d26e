using System.Net;
using System.Net.Sockets;

namespace Romana.Actors.Addressing;

/// <summary>An IPv4 address held as a number, so that blocks and prefixes are plain arithmetic.</summary>
public readonly record struct Ipv4(uint Value) : IComparable<Ipv4>
{
    public int CompareTo(Ipv4 other) => Value.CompareTo(other.Value);

    /// <summary>Accepts only the dotted-quad form: IPAddress alone would also take "10" or "10.1".</summary>
    public static bool TryParse(string? text, out Ipv4 address)
    {
        address = default;
        if (string.IsNullOrWhiteSpace(text) || text.Count(c => c == '.') != 3) return false;
        if (!IPAddress.TryParse(text, out var parsed) || parsed.AddressFamily != AddressFamily.InterNetwork) return false;
        Span<byte> bytes = stackalloc byte[4];
        parsed.TryWriteBytes(bytes, out _);
        address = new Ipv4((uint)bytes[0] << 24 | (uint)bytes[1] << 16 | (uint)bytes[2] << 8 | bytes[3]);
        return true;
    }

    public static Ipv4 Parse(string text) =>
        TryParse(text, out var address) ? address : throw new FormatException($"'{text}' is not an IPv4 address");

    public IPAddress ToIPAddress() => new([(byte)(Value >> 24), (byte)(Value >> 16), (byte)(Value >> 8), (byte)Value]);

    public override string ToString() => $"{Value >> 24}.{(Value >> 16) & 255}.{(Value >> 8) & 255}.{Value & 255}";
}

/// <summary>An aligned IPv4 prefix (network address and prefix length).</summary>
public readonly record struct Ipv4Cidr : IComparable<Ipv4Cidr>
{
    public Ipv4Cidr(Ipv4 network, int prefixLength)
    {
        if (prefixLength is < 0 or > 32) throw new ArgumentOutOfRangeException(nameof(prefixLength));
        if ((network.Value & ~MaskOf(prefixLength)) != 0) throw new ArgumentException($"{network}/{prefixLength} has host bits set");
        Network = network;
        PrefixLength = prefixLength;
    }

    public Ipv4 Network { get; }
    public int PrefixLength { get; }

    public ulong Size => 1UL << (32 - PrefixLength);
    public Ipv4 First => Network;
    public Ipv4 Last => new(Network.Value | ~MaskOf(PrefixLength));

    public static uint MaskOf(int prefixLength) => prefixLength == 0 ? 0u : uint.MaxValue << (32 - prefixLength);

    public bool Contains(Ipv4 address) => (address.Value & MaskOf(PrefixLength)) == Network.Value;
    public bool Contains(Ipv4Cidr other) => other.PrefixLength >= PrefixLength && Contains(other.Network);
    public bool Overlaps(Ipv4Cidr other) => Contains(other.Network) || other.Contains(Network);

    /// <summary>The slot'th prefix of length <paramref name="slotPrefixLength"/> inside this one.</summary>
    public Ipv4Cidr Slot(ulong slot, int slotPrefixLength) =>
        new(new Ipv4(Network.Value + (uint)(slot << (32 - slotPrefixLength))), slotPrefixLength);

    /// <summary>The prefix of the given length that contains <paramref name="address"/>.</summary>
    public static Ipv4Cidr Containing(Ipv4 address, int prefixLength) =>
        new(new Ipv4(address.Value & MaskOf(prefixLength)), prefixLength);

    /// <summary>Parses "a.b.c.d/n" with System.Net.IPNetwork; an address with host bits beyond the prefix is not a CIDR.</summary>
    public static bool TryParse(string? text, out Ipv4Cidr cidr)
    {
        cidr = default;
        if (string.IsNullOrWhiteSpace(text) || !text.Contains('/')) return false;
        if (!IPNetwork.TryParse(text, out var network) || network.BaseAddress.AddressFamily != AddressFamily.InterNetwork) return false;
        if (!Ipv4.TryParse(text[..text.IndexOf('/')], out var address)) return false;
        if ((address.Value & ~MaskOf(network.PrefixLength)) != 0) return false; // host bits set: not a network
        cidr = new Ipv4Cidr(address, network.PrefixLength);
        return true;
    }

    public static Ipv4Cidr Parse(string text) =>
        TryParse(text, out var cidr) ? cidr : throw new FormatException($"'{text}' is not an IPv4 CIDR");

    public int CompareTo(Ipv4Cidr other)
    {
        var byNetwork = Network.CompareTo(other.Network);
        return byNetwork != 0 ? byNetwork : PrefixLength.CompareTo(other.PrefixLength);
    }

    public override string ToString() => $"{Network}/{PrefixLength}";
}
