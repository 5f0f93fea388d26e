using System.Reflection;
using Akka.Persistence.Journal;

namespace Romana.Actors.Persistence;

/// <summary>
/// The version of a persisted or cross-process shape. Version 1 is written under the type's short name (what every
/// journal before versioning holds); version N > 1 under "Name.vN". Change a shape only by a new version: the old one
/// stays readable as a <see cref="IUpgradable"/> legacy record.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class EventVersionAttribute(int version) : Attribute
{
    public int Version { get; } = version;
}

/// <summary>An earlier shape of an event or snapshot, still read from old journals: it names its manifest and what it becomes.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class LegacyShapeAttribute(string manifest) : Attribute
{
    public string Manifest { get; } = manifest;
}

/// <summary>A legacy shape read from the journal; the read adapter turns it into today's shape before any actor sees it.</summary>
public interface IUpgradable
{
    object Upgrade();
}

/// <summary>Which manifest names which type, today's shapes and the legacy ones.</summary>
public static class EventVersions
{
    private static readonly object Gate = new();
    private static Dictionary<string, Type> _typesByManifest = [];
    private static Dictionary<Type, string> _manifestsByType = [];

    static EventVersions() => Register(typeof(EventVersions).Assembly);

    public static string ManifestOf(Type type) => _manifestsByType.TryGetValue(type, out var manifest)
        ? manifest
        : throw new ArgumentException($"{type} is not a Romana event, snapshot or message");

    public static Type? TypeOf(string manifest) => _typesByManifest.GetValueOrDefault(manifest);

    /// <summary>The manifest a current type is written under: its short name, with ".vN" from version 2 on.</summary>
    public static string CurrentManifest(Type type)
    {
        var version = type.GetCustomAttribute<EventVersionAttribute>()?.Version ?? 1;
        // A message is named with its protocol's class (SubnetMessages.AddNode, IpamMessages.AddNode): never stored, so
        // no old journal constrains its name, and two protocols may use the same word.
        var name = typeof(IRomanaMessage).IsAssignableFrom(type) && type.DeclaringType is { } protocol
            ? $"{protocol.Name}.{type.Name}"
            : type.Name;
        return version == 1 ? name : $"{name}.v{version}";
    }

    /// <summary>
    /// Adds the persisted shapes of an assembly (Romana.Actors' own are there from the start);
    /// a manifest claimed twice is an error.
    /// </summary>
    public static void Register(Assembly assembly)
    {
        var found = assembly.GetTypes().Where(t => !t.IsAbstract && !typeof(IHasSnapshot).IsAssignableFrom(t) && (
            typeof(Audit.IRomanaEvent).IsAssignableFrom(t) || typeof(IRomanaSnapshot).IsAssignableFrom(t)
                || typeof(IUpgradable).IsAssignableFrom(t) || typeof(IRomanaMessage).IsAssignableFrom(t)));
        lock (Gate)
        {
            var types = new Dictionary<string, Type>(_typesByManifest);
            var manifests = new Dictionary<Type, string>(_manifestsByType);
            foreach (var type in found)
            {
                if (manifests.ContainsKey(type)) continue;
                var manifest = type.GetCustomAttribute<LegacyShapeAttribute>()?.Manifest ?? CurrentManifest(type);
                if (types.TryGetValue(manifest, out var other) && other != type)
                    throw new InvalidOperationException($"manifest '{manifest}' is claimed by both {other} and {type}");
                types[manifest] = type;
                manifests[type] = manifest;
            }
            (_typesByManifest, _manifestsByType) = (types, manifests);
        }
    }
}

/// <summary>
/// The read side of versioning:
/// a legacy shape from an old journal reaches the actors, replays and audits in today's shape.
/// </summary>
public sealed class EventUpgrader : IReadEventAdapter
{
    public IEventSequence FromJournal(object evt, string manifest) =>
        EventSequence.Single(evt is IUpgradable legacy ? UpgradeFully(legacy) : evt);

    /// <summary>A shape two versions old upgrades to the next, and on until today's.</summary>
    public static object UpgradeFully(IUpgradable legacy)
    {
        object current = legacy;
        while (current is IUpgradable older) current = older.Upgrade();
        return current;
    }
}
