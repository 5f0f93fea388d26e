using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Policy;

/*
 * networking.k8s.io/v1 NetworkPolicy as Romana reads it: the pure evaluator (the reference), the nftables compiler and the
 * conformance runner all take these records. They come from the API server's JSON (NetworkPolicyJson) or from the
 * Kubernetes view; nothing here knows where.
 */

/// <summary>The transport protocols a NetworkPolicy port may name; TCP when a port omits it.</summary>
public enum PolicyProtocol
{
    Tcp,
    Udp,
    Sctp,
}

public enum SelectorOperator
{
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

public sealed record SelectorRequirement(string Key, SelectorOperator Operator, ImmutableArray<string> Values)
{
    public bool Matches(IReadOnlyDictionary<string, string> labels) => Operator switch
    {
        SelectorOperator.In => labels.TryGetValue(Key, out var value) && Values.Contains(value),
        SelectorOperator.NotIn => !labels.TryGetValue(Key, out var value) || !Values.Contains(value),
        SelectorOperator.Exists => labels.ContainsKey(Key),
        SelectorOperator.DoesNotExist => !labels.ContainsKey(Key),
        _ => false,
    };
}

/// <summary>A metav1.LabelSelector: every matchLabels pair and every matchExpressions requirement (AND); empty selects all.</summary>
public sealed record LabelSelector(
    ImmutableSortedDictionary<string, string> MatchLabels, ImmutableArray<SelectorRequirement> MatchExpressions)
{
    public static readonly LabelSelector Everything = new(ImmutableSortedDictionary<string, string>.Empty, []);

    public bool SelectsEverything => MatchLabels.IsEmpty && MatchExpressions.IsEmpty;

    public bool Matches(IReadOnlyDictionary<string, string> labels) =>
        MatchLabels.All(pair => labels.TryGetValue(pair.Key, out var value) && value == pair.Value)
        && MatchExpressions.All(requirement => requirement.Matches(labels));
}

/// <summary>An ipBlock: the CIDR minus its excepts.</summary>
public sealed record IpBlock(Ipv4Cidr Cidr, ImmutableArray<Ipv4Cidr> Except)
{
    public bool Contains(Ipv4 address) => Cidr.Contains(address) && !Except.Any(e => e.Contains(address));
}

/// <summary>
/// One peer of a rule. Pod and namespace selectors in one peer are ANDed; a peer with only a podSelector selects in the
/// policy's own namespace; a peer with only a namespaceSelector selects every pod of the matching namespaces.
/// </summary>
public sealed record PolicyPeer(LabelSelector? PodSelector, LabelSelector? NamespaceSelector, IpBlock? IpBlock);

/// <summary>
/// One port of a rule: a number (with an optional endPort, inclusive), a name resolved against the destination pod's
/// container ports, or none (every port of the protocol).
/// </summary>
public sealed record PolicyPort(PolicyProtocol Protocol, int? Number, string? Name, int? EndPort)
{
    public static PolicyPort AllOf(PolicyProtocol protocol) => new(protocol, null, null, null);
}

/// <summary>One ingress or egress rule: its peers (none means every source or destination) and its ports (none means all).</summary>
public sealed record PolicyRule(ImmutableArray<PolicyPeer> Peers, ImmutableArray<PolicyPort> Ports);

[Flags]
public enum PolicyDirections
{
    None = 0,
    Ingress = 1,
    Egress = 2,
}

/// <summary>
/// A NetworkPolicy. <see cref="Directions"/> is policyTypes as given, or its default when omitted: Ingress, plus Egress when
/// the policy has egress rules.
/// </summary>
public sealed record NetworkPolicy(string Namespace, string Name, LabelSelector PodSelector, PolicyDirections Directions,
    ImmutableArray<PolicyRule> Ingress, ImmutableArray<PolicyRule> Egress)
{
    public string Key => $"{Namespace}/{Name}";

    public bool Selects(PolicyPod pod) => pod.Namespace == Namespace && PodSelector.Matches(pod.Labels);
}

/// <summary>A container port with a name, which a policy port may name instead of a number.</summary>
public sealed record NamedPort(string Name, int Number, PolicyProtocol Protocol);

/// <summary>
/// A pod as policy sees it: where it is, its labels, its address, the node that hosts it (traffic between a pod and its
/// own node is always allowed) and its named container ports.
/// </summary>
public sealed record PolicyPod(string Namespace, string Name, ImmutableSortedDictionary<string, string> Labels, Ipv4 Address,
    Ipv4? NodeAddress, ImmutableArray<NamedPort> NamedPorts)
{
    public string Key => $"{Namespace}/{Name}";
}

public sealed record PolicyNamespace(string Name, ImmutableSortedDictionary<string, string> Labels)
{
    public const string NameLabel = "kubernetes.io/metadata.name";
}

/// <summary>Everything policy decisions read: the namespaces with their labels, the pods, the policies.</summary>
public sealed record PolicyWorld(ImmutableSortedDictionary<string, PolicyNamespace> Namespaces, ImmutableArray<PolicyPod> Pods,
    ImmutableArray<NetworkPolicy> Policies)
{
    public static readonly PolicyWorld Empty = new(ImmutableSortedDictionary<string, PolicyNamespace>.Empty, [], []);

    public IReadOnlyDictionary<string, string> NamespaceLabels(string name) =>
        Namespaces.TryGetValue(name, out var ns) ? ns.Labels : ImmutableSortedDictionary<string, string>.Empty;
}

/// <summary>One packet's worth of question: from where, to where, on which port and protocol.</summary>
public sealed record PolicyProbe(Ipv4 From, Ipv4 To, int Port, PolicyProtocol Protocol);
