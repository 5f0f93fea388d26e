using System.Collections.Immutable;
using System.Text.Json.Serialization;
using Romana.Actors.Persistence;

namespace Romana.Actors.Policy;

/// <summary>A pod of the cluster-wide view: what policy reads of it, and the node (Romana's node name) that hosts it.</summary>
public sealed record ViewPod(PolicyPod Pod, string Node)
{
    public string Key => Pod.Key;
}

/// <summary>One change to a <see cref="PolicyView"/>, with why (the watch event, the file).</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "$change")]
[JsonDerivedType(typeof(PodSet), "podSet")]
[JsonDerivedType(typeof(PodRemoved), "podRemoved")]
[JsonDerivedType(typeof(NamespaceSet), "namespaceSet")]
[JsonDerivedType(typeof(NamespaceRemoved), "namespaceRemoved")]
[JsonDerivedType(typeof(PolicySet), "policySet")]
[JsonDerivedType(typeof(PolicyRemoved), "policyRemoved")]
public abstract record ViewChange(string Cause)
{
    public sealed record PodSet(ViewPod Pod, string Cause) : ViewChange(Cause);
    public sealed record PodRemoved(string Key, string Cause) : ViewChange(Cause);
    public sealed record NamespaceSet(PolicyNamespace Namespace, string Cause) : ViewChange(Cause);
    public sealed record NamespaceRemoved(string Name, string Cause) : ViewChange(Cause);
    public sealed record PolicySet(NetworkPolicy Policy, string Cause) : ViewChange(Cause);
    public sealed record PolicyRemoved(string Key, string Cause) : ViewChange(Cause);
}

/// <summary>
/// What a policy source knows of the cluster (immutable): the namespaces with their labels, every pod a policy may select
/// (with its address and node) and the NetworkPolicies. Each node's agent holds one and makes its <see cref="PolicyWorld"/> of it.
/// </summary>
public sealed record PolicyView(ImmutableSortedDictionary<string, PolicyNamespace> Namespaces,
    ImmutableSortedDictionary<string, ViewPod> Pods, ImmutableSortedDictionary<string, NetworkPolicy> Policies)
{
    public static readonly PolicyView Empty = new(ImmutableSortedDictionary.Create<string, PolicyNamespace>(StringComparer.Ordinal),
        ImmutableSortedDictionary.Create<string, ViewPod>(StringComparer.Ordinal),
        ImmutableSortedDictionary.Create<string, NetworkPolicy>(StringComparer.Ordinal));

    public PolicyView Apply(ViewChange change) => change switch
    {
        ViewChange.PodSet set => this with { Pods = Pods.SetItem(set.Pod.Key, set.Pod) },
        ViewChange.PodRemoved removed => this with { Pods = Pods.Remove(removed.Key) },
        ViewChange.NamespaceSet set => this with { Namespaces = Namespaces.SetItem(set.Namespace.Name, set.Namespace) },
        ViewChange.NamespaceRemoved removed => this with { Namespaces = Namespaces.Remove(removed.Name) },
        ViewChange.PolicySet set => this with { Policies = Policies.SetItem(set.Policy.Key, set.Policy) },
        ViewChange.PolicyRemoved removed => this with { Policies = Policies.Remove(removed.Key) },
        _ => this,
    };

    public PolicyView Apply(IEnumerable<ViewChange> changes) => changes.Aggregate(this, (view, change) => view.Apply(change));

    /// <summary>The world policy decisions read: every namespace, pod and policy of the view.</summary>
    public PolicyWorld World() => new(Namespaces, [.. Pods.Values.Select(p => p.Pod)], [.. Policies.Values]);

    /// <summary>The keys (<c>ns/name</c>) of the pods <paramref name="node"/> hosts.</summary>
    public IReadOnlySet<string> LocalPods(string node) =>
        Pods.Values.Where(p => p.Node == node).Select(p => p.Key).ToImmutableSortedSet(StringComparer.Ordinal);

    public override string ToString() => $"{Namespaces.Count} namespaces, {Pods.Count} pods, {Policies.Count} policies";
}

/// <summary>
/// The protocol between a policy source and the node agents (<see cref="PolicyAgentActor"/>). A source (the Kubernetes
/// view, a cluster singleton; or the files of <c>romana.policy.files</c>, one per node) numbers its changes within an epoch
/// (one run of the source): an agent applies <see cref="Changed"/> in order, and on a gap, another epoch, or none seen
/// yet, asks the source for the whole <see cref="View"/> with <see cref="GetView"/>. <see cref="Version"/>, sent now and
/// then, lets an agent that missed the last changes find out.
/// </summary>
public static class PolicyMessages
{
    /// <summary>The cluster topic the Kubernetes view publishes on (DistributedPubSub).</summary>
    public const string Topic = "romana-policy-view";

    public sealed record GetView(string Node) : IRomanaMessage;
    /// <summary>
    /// The whole view at change <paramref name="Seq"/>, or part <paramref name="Part"/> of <paramref name="Parts"/> of it: a
    /// view sent across the cluster is split so that no message nears Akka.Remote's frame size (<see cref="Split"/>).
    /// </summary>
    public sealed record View(string Epoch, long Seq, PolicyView Content, int Part = 0, int Parts = 1) : IRomanaMessage;

    /// <summary>Objects per part of a view sent across the cluster (a policy of a few hundred bytes; the frame is 128,000).</summary>
    public const int ObjectsPerPart = 100;

    /// <summary>The view in parts of at most <paramref name="perPart"/> objects (namespaces, pods, policies); one part at least.</summary>
    public static IReadOnlyList<View> Split(string epoch, long seq, PolicyView view, int perPart = ObjectsPerPart)
    {
        IEnumerable<ViewChange> all = [.. view.Namespaces.Values.Select(n => new ViewChange.NamespaceSet(n, "")),
            .. view.Pods.Values.Select(p => new ViewChange.PodSet(p, "")),
            .. view.Policies.Values.Select(p => new ViewChange.PolicySet(p, ""))];
        var chunks = all.Chunk(perPart).ToList();
        if (chunks.Count <= 1) return [new View(epoch, seq, view)];
        return [.. chunks.Select((chunk, i) => new View(epoch, seq, PolicyView.Empty.Apply(chunk), i, chunks.Count))];
    }
    public sealed record Changed(string Epoch, long Seq, ImmutableArray<ViewChange> Changes) : IRomanaMessage;
    public sealed record Version(string Epoch, long Seq) : IRomanaMessage;
}
