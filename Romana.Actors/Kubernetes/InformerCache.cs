using System.Collections.Immutable;
using Akka.Actor;

namespace Romana.Actors.Kubernetes;

/// <summary>What an informer needs of a watched object: its key (name, or namespace/name), uid and resourceVersion.</summary>
public interface IKubeObject
{
    /// <summary>"name" for a cluster-scoped kind, "namespace/name" for a namespaced one.</summary>
    string Key { get; }
    string Uid { get; }
    string ResourceVersion { get; }
}

/// <summary>The kinds of object events a watch carries (BOOKMARK and ERROR are the informer's own business).</summary>
public enum WatchChange { Added, Modified, Deleted }

/// <summary>What an informer tells its consumer: an object added, changed or deleted, each with why.</summary>
public abstract record InformerDelta<T>(string Cause) : INoSerializationVerificationNeeded where T : IKubeObject
{
    public sealed record Added(T Object, string Cause) : InformerDelta<T>(Cause);
    public sealed record Updated(T Old, T New, string Cause) : InformerDelta<T>(Cause);
    /// <summary><paramref name="Last"/>: the object as the cache last knew it.</summary>
    public sealed record Deleted(T Last, string Cause) : InformerDelta<T>(Cause);
}

/// <summary>
/// The pure part of an informer: the objects a list and the watch after it have shown, and the resourceVersion to resume
/// from. A watch event or a bookmark moves the resourceVersion; a re-list (after 410 Gone) replaces the cache and yields
/// the deltas the watch missed, a delete among them for every object that vanished meanwhile. An object whose uid changed
/// under the same key (deleted and created again) is a delete of the old and an add of the new.
/// </summary>
public sealed record InformerCache<T>(ImmutableSortedDictionary<string, T> Objects, string ResourceVersion) where T : IKubeObject
{
    public static InformerCache<T> Empty { get; } =
        new(ImmutableSortedDictionary<string, T>.Empty.WithComparers(StringComparer.Ordinal), "");

    /// <summary>
    /// The list (or re-list) at <paramref name="resourceVersion"/> replaces the cache; deletes first, then adds and updates.
    /// </summary>
    public (InformerCache<T> Cache, ImmutableArray<InformerDelta<T>> Deltas) Relist(IEnumerable<T> items, string resourceVersion)
    {
        var listed = ImmutableSortedDictionary.CreateBuilder<string, T>(StringComparer.Ordinal);
        foreach (var item in items) listed[item.Key] = item;
        var deltas = ImmutableArray.CreateBuilder<InformerDelta<T>>();
        foreach (var (key, old) in Objects)
            if (!listed.TryGetValue(key, out var now))
                deltas.Add(new InformerDelta<T>.Deleted(old,
                    $"not in the list at resourceVersion {resourceVersion}: deleted while unwatched"));
            else if (now.Uid != old.Uid)
                deltas.Add(new InformerDelta<T>.Deleted(old, $"uid {old.Uid} replaced by {now.Uid} in the list at resourceVersion " +
                    $"{resourceVersion}: deleted and created again while unwatched"));
        foreach (var (key, now) in listed)
            if (!Objects.TryGetValue(key, out var old) || old.Uid != now.Uid)
                deltas.Add(new InformerDelta<T>.Added(now, $"listed at resourceVersion {resourceVersion}"));
            else if (old.ResourceVersion != now.ResourceVersion)
                deltas.Add(new InformerDelta<T>.Updated(old, now, $"changed in the list at resourceVersion {resourceVersion}"));
        return (new InformerCache<T>(listed.ToImmutable(), resourceVersion), deltas.ToImmutable());
    }

    /// <summary>One watch event: the cache follows it, and the resourceVersion becomes the object's.</summary>
    public (InformerCache<T> Cache, ImmutableArray<InformerDelta<T>> Deltas) Apply(WatchChange change, T item)
    {
        var known = Objects.TryGetValue(item.Key, out var old);
        var moved = new InformerCache<T>(Objects, item.ResourceVersion is { Length: > 0 } version ? version : ResourceVersion);
        var by = $"watch {change.ToString().ToUpperInvariant()} at resourceVersion {item.ResourceVersion}";
        if (change == WatchChange.Deleted)
            return known
                ? (moved with { Objects = Objects.Remove(item.Key) }, [new InformerDelta<T>.Deleted(item, by)])
                : (moved, []);
        var cache = moved with { Objects = Objects.SetItem(item.Key, item) };
        if (!known) return (cache, [new InformerDelta<T>.Added(item, by)]);
        if (old!.Uid != item.Uid)
            return (cache, [new InformerDelta<T>.Deleted(old, $"{by}: uid {old.Uid} replaced by {item.Uid}"),
                new InformerDelta<T>.Added(item, by)]);
        return old.ResourceVersion == item.ResourceVersion ? (cache, []) : (cache, [new InformerDelta<T>.Updated(old, item, by)]);
    }

    /// <summary>A BOOKMARK: nothing changed up to <paramref name="resourceVersion"/>, which a watch resumes from.</summary>
    public InformerCache<T> Bookmark(string resourceVersion) => this with { ResourceVersion = resourceVersion };
}
