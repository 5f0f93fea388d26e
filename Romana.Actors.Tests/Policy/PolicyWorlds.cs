using System.Collections.Immutable;
using System.Text;
using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;

namespace Romana.Actors.Tests.Policy;

/// <summary>
/// Random NetworkPolicy worlds for the property tests: 2-3 namespaces with random labels, 5-15 pods over 2 nodes with random
/// labels and named ports, 1-8 policies using every feature (matchLabels and matchExpressions of every operator, pod and
/// namespace selectors alone and together, several peers, ipBlocks with excepts that may be pod addresses, ports by
/// number, name and range, TCP/UDP/SCTP, a protocol without port, policyTypes Ingress/Egress/both/omitted, empty rules).
/// A world is kept as a spec (what a change edits) and built into a PolicyWorld; pods are named by a stable id, so that a
/// pod added later gets an address no earlier pod had.
/// </summary>
public static class PolicyWorlds
{
    public const int Nodes = 2;
    public static readonly string[] Namespaces = ["x", "y", "z"];
    public static readonly string[] PodKeys = ["app", "tier"];
    public static readonly string[] NamespaceKeys = ["team", PolicyNamespace.NameLabel];
    public static readonly string[] LabelValues = ["a", "b", "c"];

    /// <summary>The addresses a probe may come from or go to that are no pod: outside the cluster, a free pod address,
    /// the nodes.</summary>
    public static readonly Ipv4[] Outside =
        [Ipv4.Parse("203.0.113.9"), Ipv4.Parse("198.51.100.20"), Ipv4.Parse("10.240.0.200"), NodeAddress(0), NodeAddress(1)];

    public static readonly int[] ProbePorts = [53, 80, 81, 85, 443, 8080];
    public static readonly PolicyProtocol[] ProbeProtocols = [PolicyProtocol.Tcp, PolicyProtocol.Udp, PolicyProtocol.Sctp];

    public sealed record PodSpec(int Id, int Namespace, ImmutableSortedDictionary<string, string> Labels, int Node, int Ports);

    /// <summary>A peer: a kind (0 pods, 1 namespaces, 2 both, 3 ipBlock), selectors, and for a block what it is made of.</summary>
    public sealed record PeerSpec(int Kind, LabelSelector Pods, LabelSelector Namespaces, int Block, int[] ExceptPods, bool ExceptBlock);

    public sealed record PortSpec(PolicyProtocol Protocol, int Kind, int Number, string Name, (int First, int Last) Range);

    public sealed record RuleSpec(PeerSpec[] Peers, PortSpec[] Ports);

    /// <summary>A policy; <see cref="Types"/> is 0 for policyTypes omitted, else the directions given.</summary>
    public sealed record PolicySpec(int Id, int Namespace, LabelSelector Selector, int Types, RuleSpec[] Ingress, RuleSpec[] Egress);

    public sealed record WorldSpec(ImmutableArray<ImmutableSortedDictionary<string, string>> NamespaceLabels,
        ImmutableArray<PodSpec> Pods, ImmutableArray<PolicySpec> Policies, int NextId);

    public static Ipv4 NodeAddress(int node) => Ipv4.Parse($"10.77.{node}.1");

    /// <summary>A pod's address: in its node's block (10.240.NODE.0/24), from its id.</summary>
    public static Ipv4 PodAddress(int id, int node) => Ipv4.Parse($"10.240.{node}.{10 + id}");

    public static Gen<ImmutableSortedDictionary<string, string>> Labels(string[] keys, string[] values) =>
        Gen.Int[0, values.Length].Array[keys.Length].Select(chosen => Enumerable.Range(0, keys.Length)
            .Where(i => chosen[i] < values.Length)
            .ToImmutableSortedDictionary(i => keys[i], i => values[chosen[i]], StringComparer.Ordinal));

    private static Gen<SelectorRequirement> Requirement(string[] keys, string[] values) =>
        from key in Gen.OneOf(keys)
        from op in Gen.OneOf(SelectorOperator.In, SelectorOperator.NotIn, SelectorOperator.Exists, SelectorOperator.DoesNotExist)
        from chosen in Gen.OneOf(values).Array[1, 2]
        select new SelectorRequirement(key, op,
            op is SelectorOperator.In or SelectorOperator.NotIn ? [.. chosen.Distinct().Order(StringComparer.Ordinal)] : []);

    public static Gen<LabelSelector> Selector(string[] keys, string[] values) =>
        from labels in Labels(keys, values)
        from keep in Gen.Int[0, 3]
        from requirements in Requirement(keys, values).Array[0, 2]
        select new LabelSelector(
            labels.Take(keep == 3 ? labels.Count : keep % 2).ToImmutableSortedDictionary(StringComparer.Ordinal), [.. requirements]);

    private static readonly Gen<LabelSelector> PodSelectors = Selector(PodKeys, LabelValues);

    private static readonly Gen<LabelSelector> NamespaceSelectors =
        Selector(NamespaceKeys, [.. LabelValues.Take(2), .. Namespaces.Take(2)]);

    private static readonly Gen<PeerSpec> Peers =
        from kind in Gen.Frequency((3, Gen.Const(0)), (2, Gen.Const(1)), (2, Gen.Const(2)), (3, Gen.Const(3)))
        from pods in PodSelectors
        from namespaces in NamespaceSelectors
        from block in Gen.Int[0, 19]
        from exceptPods in Gen.Int[0, 14].Array[0, 2]
        from exceptBlock in Gen.Bool
        select new PeerSpec(kind, pods, namespaces, block, exceptPods, exceptBlock);

    private static readonly Gen<PortSpec> Ports =
        from protocol in Gen.Frequency((3, Gen.Const(PolicyProtocol.Tcp)), (2, Gen.Const(PolicyProtocol.Udp)),
            (1, Gen.Const(PolicyProtocol.Sctp)))
        from kind in Gen.Int[0, 3]
        from number in Gen.OneOf(53, 80, 81, 443, 8080)
        from name in Gen.OneOf("web", "dns", "alt", "sc", "nope")
        from range in Gen.OneOf((80, 81), (50, 90), (8000, 8100), (81, 81), (440, 450))
        select new PortSpec(protocol, kind, number, name, range);

    private static readonly Gen<RuleSpec> Rules =
        from peers in Peers.Array[0, 3]
        from ports in Ports.Array[0, 3]
        select new RuleSpec(peers, ports);

    public static Gen<PodSpec> Pod(int id) =>
        from ns in Gen.Int[0, 2]
        from labels in Labels(PodKeys, LabelValues)
        from node in Gen.Int[0, Nodes - 1]
        from ports in Gen.Int[0, 31]
        select new PodSpec(id, ns, labels, node, ports);

    public static Gen<PolicySpec> Policy(int id) =>
        from ns in Gen.Int[0, 2]
        from selector in PodSelectors
        from types in Gen.Int[0, 3]
        from ingress in Rules.Array[0, 3]
        from egress in Rules.Array[0, 3]
        select new PolicySpec(id, ns, selector, types, ingress, egress);

    public static readonly Gen<WorldSpec> Worlds =
        from namespaceCount in Gen.Int[2, 3]
        from namespaceLabels in Labels(["team"], LabelValues.Take(2).ToArray()).Array[namespaceCount]
        from podCount in Gen.Int[5, 15]
        from pods in Pod(0).Array[podCount]
        from policyCount in Gen.Int[1, 8]
        from policies in Policy(0).Array[policyCount]
        select new WorldSpec([.. namespaceLabels],
            [.. pods.Select((p, i) => p with { Id = i, Namespace = p.Namespace % namespaceCount })],
            [.. policies.Select((p, i) => p with { Id = i, Namespace = p.Namespace % namespaceCount })], 100);

    /// <summary>One change to a world, as the node agent sees them arrive: labels, pods and policies come and go.</summary>
    public sealed record Change(int Kind, int Index, ImmutableSortedDictionary<string, string> Labels, PodSpec Pod, PolicySpec Policy)
    {
        public override string ToString() => Kind switch
        {
            0 => $"pod #{Index} labels {LabelText(Labels)}",
            1 => $"namespace #{Index} labels {LabelText(Labels)}",
            2 => $"add pod in ns #{Pod.Namespace} on node {Pod.Node} labels {LabelText(Pod.Labels)}",
            3 => $"remove pod #{Index}",
            4 => $"add policy in ns #{Policy.Namespace}",
            _ => $"remove policy #{Index}",
        };
    }

    public static readonly Gen<Change> Changes =
        from kind in Gen.Frequency((4, Gen.Const(0)), (1, Gen.Const(1)), (2, Gen.Const(2)), (2, Gen.Const(3)), (2, Gen.Const(4)),
            (2, Gen.Const(5)))
        from index in Gen.Int[0, 15]
        from labels in Labels(PodKeys, LabelValues)
        from pod in Pod(0)
        from policy in Policy(0)
        select new Change(kind, index, labels, pod, policy);

    /// <summary>The world after <paramref name="change"/>; indexes wrap over what exists, and a world keeps one pod at least.</summary>
    public static WorldSpec Apply(WorldSpec world, Change change)
    {
        var pods = world.Pods;
        var policies = world.Policies;
        switch (change.Kind)
        {
            case 0:
                var pod = pods[change.Index % pods.Length];
                return world with { Pods = pods.Replace(pod, pod with { Labels = change.Labels }) };
            case 1:
                var ns = change.Index % world.NamespaceLabels.Length;
                return world with
                {
                    NamespaceLabels = world.NamespaceLabels.SetItem(ns, change.Labels.Remove("tier").Remove("app")
                    .SetItem("team", change.Labels.GetValueOrDefault("app", "a")))
                };
            case 2:
                var added = change.Pod with { Id = world.NextId, Namespace = change.Pod.Namespace % world.NamespaceLabels.Length };
                return world with { Pods = pods.Add(added), NextId = world.NextId + 1 };
            case 3:
                return pods.Length <= 1 ? world : world with { Pods = pods.RemoveAt(change.Index % pods.Length) };
            case 4:
                var policy = change.Policy with { Id = world.NextId, Namespace = change.Policy.Namespace % world.NamespaceLabels.Length };
                return world with { Policies = policies.Add(policy), NextId = world.NextId + 1 };
            default:
                return policies.IsEmpty ? world : world with { Policies = policies.RemoveAt(change.Index % policies.Length) };
        }
    }

    /// <summary>A pod's named ports, from the bits of its spec: names shared with other numbers and protocols on other pods.</summary>
    public static ImmutableArray<NamedPort> NamedPorts(int bits)
    {
        var ports = ImmutableArray.CreateBuilder<NamedPort>();
        if ((bits & 1) != 0) ports.Add(new NamedPort("web", (bits & 2) != 0 ? 8080 : 80, PolicyProtocol.Tcp));
        if ((bits & 4) != 0) ports.Add(new NamedPort("dns", 53, PolicyProtocol.Udp));
        if ((bits & 8) != 0) ports.Add(new NamedPort("alt", 81, (bits & 16) != 0 ? PolicyProtocol.Udp : PolicyProtocol.Tcp));
        if ((bits & 16) != 0) ports.Add(new NamedPort("sc", 80, PolicyProtocol.Sctp));
        return ports.ToImmutable();
    }

    public static PolicyWorld Build(WorldSpec spec)
    {
        var namespaces = spec.NamespaceLabels.Select((labels, i) => new PolicyNamespace(Namespaces[i],
                labels.SetItem(PolicyNamespace.NameLabel, Namespaces[i])))
            .ToImmutableSortedDictionary(ns => ns.Name, ns => ns, StringComparer.Ordinal);
        var pods = spec.Pods.Select(p => new PolicyPod(Namespaces[p.Namespace], $"p{p.Id}", p.Labels, PodAddress(p.Id, p.Node),
            NodeAddress(p.Node), NamedPorts(p.Ports))).ToImmutableArray();
        var policies = spec.Policies.Select(p => BuildPolicy(p, pods)).ToImmutableArray();
        return new PolicyWorld(namespaces, pods, policies);
    }

    private static NetworkPolicy BuildPolicy(PolicySpec spec, ImmutableArray<PolicyPod> pods)
    {
        var ingress = spec.Ingress.Select(r => BuildRule(r, pods)).ToImmutableArray();
        var egress = spec.Egress.Select(r => BuildRule(r, pods)).ToImmutableArray();
        var directions = spec.Types == 0
            ? PolicyDirections.Ingress | (egress.IsEmpty ? PolicyDirections.None : PolicyDirections.Egress)
            : (PolicyDirections)spec.Types;
        return new NetworkPolicy(Namespaces[spec.Namespace], $"np{spec.Id}", spec.Selector, directions, ingress, egress);
    }

    private static PolicyRule BuildRule(RuleSpec spec, ImmutableArray<PolicyPod> pods) =>
        new([.. spec.Peers.Select(p => BuildPeer(p, pods))], [.. spec.Ports.Select(BuildPort)]);

    private static PolicyPort BuildPort(PortSpec spec) => spec.Kind switch
    {
        0 => new PolicyPort(spec.Protocol, spec.Number, null, null),
        1 => new PolicyPort(spec.Protocol, null, spec.Name, null),
        2 => new PolicyPort(spec.Protocol, spec.Range.First, null, spec.Range.Last),
        _ => PolicyPort.AllOf(spec.Protocol),
    };

    /// <summary>
    /// A peer; a block is one of a pod's /32, a pod's /30, the /24 of either node's pods, all pods, the outside test
    /// network, or everything; its excepts are pod addresses inside it and possibly the /28 at its start.
    /// </summary>
    private static PolicyPeer BuildPeer(PeerSpec spec, ImmutableArray<PolicyPod> pods)
    {
        switch (spec.Kind)
        {
            case 0:
                return new PolicyPeer(spec.Pods, null, null);
            case 1:
                return new PolicyPeer(null, spec.Namespaces, null);
            case 2:
                return new PolicyPeer(spec.Pods, spec.Namespaces, null);
        }

        var some = pods[spec.Block % pods.Length].Address;
        var cidr = (spec.Block % 8) switch
        {
            0 or 1 => new Ipv4Cidr(some, 32),
            2 => Ipv4Cidr.Containing(some, 30),
            3 => Ipv4Cidr.Parse("10.240.0.0/24"),
            4 => Ipv4Cidr.Parse("10.240.1.0/24"),
            5 => Ipv4Cidr.Parse("10.240.0.0/16"),
            6 => Ipv4Cidr.Parse("203.0.113.0/24"),
            _ => Ipv4Cidr.Parse("0.0.0.0/0"),
        };
        var except = spec.ExceptPods.Select(i => pods[i % pods.Length].Address).Where(cidr.Contains)
            .Select(a => new Ipv4Cidr(a, 32)).ToList();
        if (spec.ExceptBlock && cidr.PrefixLength <= 24) except.Add(new Ipv4Cidr(cidr.Network, 28));
        return new PolicyPeer(null, null, new IpBlock(cidr, [.. except.Distinct()]));
    }

    /// <summary>The world as a reader checks it by hand: namespaces, pods, policies with their rules.</summary>
    public static string Describe(PolicyWorld world)
    {
        var text = new StringBuilder();
        foreach (var ns in world.Namespaces.Values) text.Append($"namespace {ns.Name} {LabelText(ns.Labels)}\n");
        foreach (var pod in world.Pods)
            text.Append($"pod {pod.Key} {LabelText(pod.Labels)} {pod.Address} node {pod.NodeAddress}")
                .Append(pod.NamedPorts.IsEmpty ? "" : " ports " + string.Join(",",
                    pod.NamedPorts.Select(n => $"{n.Name}={n.Number}/{n.Protocol}")))
                .Append('\n');
        foreach (var policy in world.Policies)
        {
            text.Append($"policy {policy.Key} selects {SelectorText(policy.PodSelector)} types {policy.Directions}\n");
            foreach (var (direction, rules) in new[] { ("ingress", policy.Ingress), ("egress", policy.Egress) })
                foreach (var rule in rules)
                    text.Append($"  {direction}: peers [{string.Join(" | ", rule.Peers.Select(PeerText))}]")
                        .Append($" ports [{string.Join(", ", rule.Ports.Select(PortText))}]\n");
        }

        return text.ToString();
    }

    private static string LabelText(IReadOnlyDictionary<string, string> labels) =>
        "{" + string.Join(",", labels.Select(l => $"{l.Key}={l.Value}")) + "}";

    private static string SelectorText(LabelSelector selector) =>
        selector.SelectsEverything
            ? "{}"
            : LabelText(selector.MatchLabels) + string.Concat(selector.MatchExpressions.Select(r =>
                $"[{r.Key} {r.Operator} {string.Join(",", r.Values)}]"));

    private static string PeerText(PolicyPeer peer) => peer.IpBlock is { } block
        ? $"ipBlock {block.Cidr}" + (block.Except.IsEmpty ? "" : $" except {string.Join(",", block.Except)}")
        : (peer.PodSelector is null ? "" : $"pods {SelectorText(peer.PodSelector)} ")
            + (peer.NamespaceSelector is null ? "(own namespace)" : $"namespaces {SelectorText(peer.NamespaceSelector)}");

    private static string PortText(PolicyPort port) =>
        port.Protocol + (port.Name is { } name ? $" {name}" : port.Number is { } n ? $" {n}" + (port.EndPort is { } e ? $"-{e}" : "") : "");
}
