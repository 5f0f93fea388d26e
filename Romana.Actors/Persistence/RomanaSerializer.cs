using System.Runtime.Serialization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Persistence;
using Akka.Serialization;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;

namespace Romana.Actors.Persistence;

/// <summary>Marks a snapshot payload, so that it is bound to <see cref="RomanaSerializer"/>.</summary>
public interface IRomanaSnapshot;

/// <summary>
/// A message that crosses the network between daemons (and is checked under akka.actor.serialize-messages): bound to
/// <see cref="RomanaSerializer"/>, with its protocol's class and version as manifest; actor references inside it travel as
/// serialized actor paths and are resolved by the receiving system's provider.
/// </summary>
public interface IRomanaMessage;

/// <summary>An immutable state that can be handed to SaveSnapshot as it is; the serializer stores its snapshot record.</summary>
public interface IHasSnapshot : IRomanaSnapshot
{
    IRomanaSnapshot ToSnapshotRecord();
}

/// <summary>
/// A snapshot offer's content as its record. A store that serializes gives the record back; one that keeps objects (the
/// in-memory store of the simulation, <c>romana plan</c> and the tests) gives back the state that was saved.
/// </summary>
public static class SnapshotRecord
{
    public static object Of(object snapshot) => snapshot is IHasSnapshot state ? state.ToSnapshotRecord() : snapshot;

    /// <summary>
    /// The offer as <typeparamref name="T"/>. Anything else stops the recovery: replaying only the events after a snapshot
    /// that was not understood would lose what it held (addresses handed out twice, routes no longer known as Romana's).
    /// </summary>
    public static T As<T>(SnapshotOffer offer, string persistenceId) where T : IRomanaSnapshot =>
        Of(offer.Snapshot) is T record ? record
        : throw new InvalidOperationException(
            $"{persistenceId}: snapshot {offer.Metadata.SequenceNr} is a {offer.Snapshot.GetType().Name}, not a {typeof(T).Name}");
}

/// <summary>
/// Events and snapshots as readable JSON (addresses and CIDRs as text, so the journal can be read with plain SQL),
/// with the type's short name and version as manifest (<see cref="EventVersions"/>): renaming a namespace never breaks
/// an old journal, and an old shape is read as its legacy record.
/// </summary>
public sealed class RomanaSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 4177;

    public static readonly JsonSerializerOptions Options = CreateOptions();

    private readonly JsonSerializerOptions _messageOptions = CreateMessageOptions(system);

    public override int Identifier => Id;

    public override string Manifest(object o) => EventVersions.ManifestOf(Stored(o).GetType());

    public override byte[] ToBinary(object obj)
    {
        var stored = Stored(obj);
        return JsonSerializer.SerializeToUtf8Bytes(stored, stored.GetType(), stored is IRomanaMessage ? _messageOptions : Options);
    }

    /// <summary>A state handed to SaveSnapshot is stored as its snapshot record; converting it here keeps the cost off the actor.</summary>
    private static object Stored(object o) => SnapshotRecord.Of(o);

    /// <summary>
    /// A legacy shape (an older manifest) is read as its legacy record;
    /// snapshots are upgraded here, events by the read adapter.
    /// </summary>
    public override object FromBinary(byte[] bytes, string manifest)
    {
        var type = EventVersions.TypeOf(manifest)
            ?? throw new SerializationException($"unknown Romana manifest '{manifest}' (written by a newer build?)");
        var value = JsonSerializer.Deserialize(bytes, type, typeof(IRomanaMessage).IsAssignableFrom(type) ? _messageOptions : Options)!;
        return value is IUpgradable legacy and IRomanaSnapshot ? EventUpgrader.UpgradeFully(legacy) : value;
    }

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        };
        options.Converters.Add(new TextConverter<Ipv4>(Ipv4.Parse, a => a.ToString()));
        options.Converters.Add(new TextConverter<Ipv4Cidr>(Ipv4Cidr.Parse, c => c.ToString()));
        options.Converters.Add(new TextConverter<ZoneName>(s => new ZoneName(s), z => z.Value));
        options.Converters.Add(new TextConverter<SubnetId>(s => new SubnetId(s), s => s.Value));
        options.Converters.Add(new TextConverter<NodeName>(s => new NodeName(s), n => n.Value));
        options.Converters.Add(new TextConverter<AllocationKey>(s => new AllocationKey(s), k => k.Value));
        return options;
    }

    /// <summary>Messages also carry actor references (as paths) and tuples (public fields).</summary>
    private static JsonSerializerOptions CreateMessageOptions(ExtendedActorSystem system)
    {
        var options = new JsonSerializerOptions(CreateOptions()) { IncludeFields = true };
        options.Converters.Add(new ActorRefConverter(system));
        return options;
    }

    /// <summary>An actor reference as its serialized path (with this system's address when it leaves the process).</summary>
    private sealed class ActorRefConverter(ExtendedActorSystem system) : JsonConverter<IActorRef>
    {
        public override IActorRef Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.GetString() is { Length: > 0 } path ? system.Provider.ResolveActorRef(path) : ActorRefs.Nobody;

        public override void Write(Utf8JsonWriter writer, IActorRef value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.IsNobody() ? "" : Serialization.SerializedActorPath(value));
    }

    /// <summary>Writes a value type as one JSON string.</summary>
    private sealed class TextConverter<T>(Func<string, T> parse, Func<T, string> format) : JsonConverter<T>
    {
        public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            parse(reader.GetString() ?? throw new JsonException($"{typeof(T).Name} must be a string"));

        public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(format(value));

        public override T ReadAsPropertyName(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            parse(reader.GetString()!);

        public override void WriteAsPropertyName(Utf8JsonWriter writer, T value, JsonSerializerOptions options) =>
            writer.WritePropertyName(format(value));
    }
}
