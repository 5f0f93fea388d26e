using System.Collections.Immutable;
using System.IO.Compression;
using System.Text.Json;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Persistence;
using Romana.Actors.Routing;

namespace Romana.Actors.Audit;

/// <summary>
/// A <see cref="JournalReplay"/> as data: everything it holds, so that state → checkpoint → state gives the same IPAM view,
/// routing input and route plan, and the same replay when more events follow. Subnets and nodes are kept as the actors'
/// own snapshot records; the events still waiting for the block size as the journal stores them (manifest and JSON).
/// </summary>
public sealed record ReplayCheckpoint(
    ImmutableArray<ReplayCheckpoint.Zone> Zones,
    ImmutableArray<ReplayCheckpoint.Zone> Subnets,
    ImmutableArray<SubnetSnapshot> SubnetStates,
    ImmutableArray<NodeSnapshot> NodeStates,
    ImmutableArray<Ipv4Cidr> Reservations,
    RouteManagerSnapshot Routes,
    ImmutableArray<ReplayCheckpoint.SubnetHealth> Health,
    int? BlockPrefixLength,
    ImmutableArray<ReplayCheckpoint.StoredEvent> WaitingForBlockSize,
    long Applied)
{
    /// <summary>A zone's or a subnet's pod prefix, in the order they were declared.</summary>
    public sealed record Zone(string Name, Ipv4Cidr Prefix);

    public sealed record SubnetHealth(SubnetId Subnet, ImmutableArray<NodeName> Failed);

    /// <summary>An event as the journal keeps it: the serializer's manifest and its JSON.</summary>
    public sealed record StoredEvent(string Manifest, string Json);

    private static readonly RomanaSerializer Serializer = new(null!);

    public static StoredEvent Store(IRomanaEvent e) =>
        new(Serializer.Manifest(e), System.Text.Encoding.UTF8.GetString(Serializer.ToBinary(e)));

    public static IRomanaEvent Load(StoredEvent e) =>
        (IRomanaEvent)Serializer.FromBinary(System.Text.Encoding.UTF8.GetBytes(e.Json), e.Manifest);

    /// <summary>JSON compressed with Brotli (fastest level): a checkpoint of 300 nodes is mostly repeated names and addresses.</summary>
    public byte[] Encode()
    {
        using var buffer = new MemoryStream();
        using (var brotli = new BrotliStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
            JsonSerializer.Serialize(brotli, this, RomanaSerializer.Options);
        return buffer.ToArray();
    }

    public static ReplayCheckpoint Decode(byte[] payload)
    {
        using var brotli = new BrotliStream(new MemoryStream(payload), CompressionMode.Decompress);
        return JsonSerializer.Deserialize<ReplayCheckpoint>(brotli, RomanaSerializer.Options)
            ?? throw new JsonException("a checkpoint payload that is JSON null");
    }
}
