using System.Collections.Immutable;

namespace Romana.Actors.Kubernetes;

/// <summary>
/// What Romana reads of a Kubernetes Node: its name (Romana's node name), the zone label
/// (<c>topology.kubernetes.io/zone</c>), <c>spec.providerID</c> and its InternalIP addresses.
/// </summary>
public sealed record KubeNode(string Name, string Uid, string ResourceVersion, string? Zone, string? ProviderId,
    ImmutableArray<string> InternalIps) : IKubeObject
{
    public const string ZoneLabel = "topology.kubernetes.io/zone";

    public string Key => Name;
}

/// <summary>
/// What Romana reads of a Pod: namespace, name, uid, the node it is bound to and its labels and address; for policy also its
/// node's address (<c>status.hostIP</c>), whether it uses the host's network, its phase, and its named container ports.
/// </summary>
public sealed record KubePod(string Namespace, string Name, string Uid, string ResourceVersion, string? NodeName,
    ImmutableSortedDictionary<string, string> Labels, string? PodIp = null, string? HostIp = null, bool HostNetwork = false,
    string? Phase = null, ImmutableArray<Policy.NamedPort> NamedPorts = default) : IKubeObject
{
    public string Key => $"{Namespace}/{Name}";
}

/// <summary>A Namespace and its labels (what a NetworkPolicy's namespaceSelector selects on).</summary>
public sealed record KubeNamespace(string Name, string Uid, string ResourceVersion, ImmutableSortedDictionary<string, string> Labels)
    : IKubeObject
{
    public string Key => Name;
}

/// <summary>A NetworkPolicy, its spec kept as the API server's JSON for the policy compiler (the next issue) to read.</summary>
public sealed record KubeNetworkPolicy(string Namespace, string Name, string Uid, string ResourceVersion, string SpecJson) : IKubeObject
{
    public string Key => $"{Namespace}/{Name}";
}
