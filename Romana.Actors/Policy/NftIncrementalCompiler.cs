using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Policy;

/// <summary>
/// The compiler with its caches (see the layout at the top of NftCompiler.cs). It keeps, from its last compile, each local
/// pod and direction's chains (they depend only on the pod and the policies) and each set's definition and elements (they
/// depend only on the pods and namespaces the definition reads). A compile after a change of pods only (namespaces and
/// policies the same objects or equal) compiles again the chains of the local pods that changed, and updates the elements
/// of the sets the changed pods enter or leave; any other change compiles everything again. The result equals a fresh
/// compile (NftCompiler.Compile is this class with nothing cached), which the property tests check. Not thread-safe: one
/// per adapter, used under its lock.
/// </summary>
public sealed class NftIncrementalCompiler
{
    private PolicyWorld? _world;
    private Dictionary<string, PolicyPod> _pods = [];
    private readonly Dictionary<(string Pod, PolicyDirections Direction), PodOutput?> _outputs = [];
    private readonly Dictionary<string, SetDefinition> _definitions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NftSet> _sets = new(StringComparer.Ordinal);

    /// <summary>How many pod chains the last compile built (the others came from the cache): for tests and logs.</summary>
    public int LastCompiledChains { get; private set; }

    /// <summary>Whether the last compile started from the cache (only pods had changed).</summary>
    public bool LastWasIncremental { get; private set; }

    /// <summary>What a set's elements are made of.</summary>
    private abstract record SetDefinition;

    /// <summary>The addresses of the pods of <paramref name="Namespace"/> (or of the namespaces Namespaces selects) Pods selects.</summary>
    private sealed record PeerDefinition(string? Namespace, LabelSelector? Namespaces, LabelSelector Pods) : SetDefinition
    {
        public bool Matches(PolicyWorld world, PolicyPod pod) =>
            (Namespaces is null ? pod.Namespace == Namespace : Namespaces.Matches(world.NamespaceLabels(pod.Namespace)))
            && Pods.Matches(pod.Labels);
    }

    private sealed record BlockDefinition(IpBlock Block) : SetDefinition;

    private sealed record NamedDefinition(string Port, PolicyProtocol Protocol) : SetDefinition;

    /// <summary>The union of other sets (peer and block sets), as ranges.</summary>
    private sealed record MergedDefinition(ImmutableArray<string> Parts) : SetDefinition;

    /// <summary>One pod and direction's share of the table, and the sets it refers to.</summary>
    private sealed record PodOutput(NftPodChain Chain, ImmutableArray<NftSegmentChain> Segments, NftPortMap? Map, string Address,
        ImmutableArray<string> Sets);

    public NftRuleset Compile(PolicyWorld world, IReadOnlySet<string> localPods, int generation)
    {
        if (generation is < 1 or > NftCompiler.MaxGeneration)
            throw new ArgumentOutOfRangeException(nameof(generation), generation, "a generation is 1..65535");
        var changes = Changed(world);
        if (changes is null)
        {
            _outputs.Clear();
            _definitions.Clear();
            _sets.Clear();
            _pods = new Dictionary<string, PolicyPod>(StringComparer.Ordinal);
            foreach (var pod in world.Pods) _pods.TryAdd(pod.Key, pod);
        }
        else
        {
            UpdateSets(world, changes);
            foreach (var (key, (_, now)) in changes)
            {
                if (now is null) _pods.Remove(key);
                else _pods[key] = now;
            }
            foreach (var key in _outputs.Keys.Where(k => changes.ContainsKey(k.Pod) || !localPods.Contains(k.Pod)).ToList())
                _outputs.Remove(key);
        }
        _world = world;
        var index = new WorldIndex(world);

        var builder = new Builder(this, world, index);
        LastCompiledChains = 0;
        var chains = ImmutableSortedDictionary.CreateBuilder<string, NftPodChain>(StringComparer.Ordinal);
        var segments = ImmutableSortedDictionary.CreateBuilder<string, NftSegmentChain>(StringComparer.Ordinal);
        var maps = ImmutableSortedDictionary.CreateBuilder<string, NftPortMap>(StringComparer.Ordinal);
        var egress = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        var ingress = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        // The first pod of a key wins, as in the world's own order; pods in key order
        foreach (var pod in localPods.Where(_pods.ContainsKey).Order(StringComparer.Ordinal).Select(key => _pods[key]))
        {
            foreach (var direction in new[] { PolicyDirections.Ingress, PolicyDirections.Egress })
            {
                if (!_outputs.TryGetValue((pod.Key, direction), out var output))
                {
                    output = builder.Output(pod, direction);
                    _outputs[(pod.Key, direction)] = output;
                    LastCompiledChains++;
                }
                if (output is null) continue;
                chains[output.Chain.Name] = output.Chain;
                foreach (var segment in output.Segments) segments[segment.Name] = segment;
                if (output.Map is { } map) maps[map.Name] = map;
                (direction == PolicyDirections.Ingress ? ingress : egress).TryAdd(output.Address, output.Chain.Name);
                used.UnionWith(output.Sets);
            }
        }
        foreach (var name in _definitions.Keys.Where(n => !used.Contains(n)).ToList())
        {
            _definitions.Remove(name);
            _sets.Remove(name);
        }
        var sets = _sets.ToImmutableSortedDictionary(StringComparer.Ordinal);
        return new NftRuleset(generation, sets, chains.ToImmutable(), egress.ToImmutable(), ingress.ToImmutable(),
            segments.ToImmutable(), maps.ToImmutable());
    }

    /// <summary>
    /// The pods that differ from the last compile's, by key (before and after; null where there is none), or null when more
    /// than pods changed (compile all). The world's pods in the same order with the same keys are compared place by place.
    /// </summary>
    private Dictionary<string, (PolicyPod? Old, PolicyPod? New)>? Changed(PolicyWorld world)
    {
        LastWasIncremental = false;
        if (_world is not { } last) return null;
        if (last.Policies != world.Policies && !last.Policies.SequenceEqual(world.Policies, Same.Policies)) return null;
        if (last.Namespaces != world.Namespaces && !last.Namespaces.Values.SequenceEqual(world.Namespaces.Values, Same.Namespaces))
            return null;
        var changes = new Dictionary<string, (PolicyPod? Old, PolicyPod? New)>(StringComparer.Ordinal);
        if (last.Pods != world.Pods
            && !(last.Pods.Length == world.Pods.Length && _pods.Count == world.Pods.Length && InPlace(last.Pods, world.Pods, changes)))
        {
            changes.Clear();
            var pods = new Dictionary<string, PolicyPod>(StringComparer.Ordinal);
            foreach (var pod in world.Pods) pods.TryAdd(pod.Key, pod);
            foreach (var (key, pod) in pods)
                if (!_pods.TryGetValue(key, out var old) || !Same.Pods.Equals(old, pod)) changes[key] = (old, pod);
            foreach (var (key, old) in _pods)
                if (!pods.ContainsKey(key)) changes[key] = (old, null);
        }
        // Many changes at once: compiling afresh is as quick and simpler to trust
        if (changes.Count > world.Pods.Length / 4 + 16) return null;
        LastWasIncremental = true;
        return changes;
    }

    /// <summary>The changes of pods that kept their places and keys (the keys unique); false when a key moved.</summary>
    private static bool InPlace(ImmutableArray<PolicyPod> before, ImmutableArray<PolicyPod> after,
        Dictionary<string, (PolicyPod? Old, PolicyPod? New)> changes)
    {
        for (var i = 0; i < after.Length; i++)
        {
            var (old, now) = (before[i], after[i]);
            if (ReferenceEquals(old, now)) continue;
            if (old.Key != now.Key) return false;
            if (!Same.Pods.Equals(old, now)) changes[old.Key] = (old, now);
        }
        return true;
    }

    /// <summary>The cached sets' elements after the pods changed (added, removed or altered).</summary>
    private void UpdateSets(PolicyWorld world, Dictionary<string, (PolicyPod? Old, PolicyPod? New)> changes)
    {
        if (changes.Count == 0) return;
        // Another pod of the same address may still hold an element a changed one took away: every pod at the addresses
        // the change touched gives its elements again
        var atAddress = new Dictionary<Ipv4, List<PolicyPod>>();
        foreach (var (old, now) in changes.Values)
        {
            if (old is not null) atAddress.TryAdd(old.Address, []);
            if (now is not null) atAddress.TryAdd(now.Address, []);
        }
        foreach (var pod in world.Pods)
            if (atAddress.TryGetValue(pod.Address, out var list)) list.Add(pod);
        var touched = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, definition) in _definitions)
        {
            if (definition is not (PeerDefinition or NamedDefinition)) continue;
            var elements = _sets[name].Elements;
            var builder = elements.ToBuilder();
            var modified = false;
            foreach (var (old, _) in changes.Values)
                if (old is not null)
                    foreach (var element in ElementsOf(definition, _world!, old)) modified |= builder.Remove(element);
            foreach (var pod in atAddress.Values.SelectMany(l => l))
                foreach (var element in ElementsOf(definition, world, pod)) modified |= builder.Add(element);
            if (!modified) continue;
            var updated = builder.ToImmutable();
            if (updated.SetEquals(elements)) continue;
            _sets[name] = _sets[name] with { Elements = updated };
            touched.Add(name);
        }
        foreach (var (name, definition) in _definitions)
            if (definition is MergedDefinition merged && merged.Parts.Any(touched.Contains))
                _sets[name] = _sets[name] with { Elements = Union(merged.Parts.Select(p => _sets[p].Elements)) };
    }

    /// <summary>The elements one pod gives a set of pods (peer or named port).</summary>
    private static IEnumerable<string> ElementsOf(SetDefinition definition, PolicyWorld world, PolicyPod pod) => definition switch
    {
        PeerDefinition peer => peer.Matches(world, pod) ? [pod.Address.ToString()] : [],
        NamedDefinition named => pod.NamedPorts.Where(n => n.Name == named.Port && n.Protocol == named.Protocol)
            .Select(n => $"{pod.Address} . {NftCompiler.ProtocolName(named.Protocol)} . {n.Number}"),
        _ => [],
    };

    /// <summary>The union of address sets' elements (addresses and ranges) as disjoint, non-adjacent ranges.</summary>
    private static ImmutableSortedSet<string> Union(IEnumerable<ImmutableSortedSet<string>> parts)
    {
        var ranges = new List<(ulong First, ulong Last)>();
        foreach (var element in parts.SelectMany(p => p))
        {
            var dash = element.IndexOf('-');
            var (first, last) = dash < 0
                ? (Ipv4.Parse(element).Value, Ipv4.Parse(element).Value)
                : (Ipv4.Parse(element[..dash]).Value, Ipv4.Parse(element[(dash + 1)..]).Value);
            ranges.Add((first, last));
        }
        return Merge(ranges).Select(r => Range(r.First, r.Last)).ToImmutableSortedSet(StringComparer.Ordinal);
    }

    private static List<(ulong First, ulong Last)> Merge(IEnumerable<(ulong First, ulong Last)> ranges)
    {
        var merged = new List<(ulong First, ulong Last)>();
        foreach (var range in ranges.OrderBy(r => r.First))
        {
            if (merged.Count > 0 && range.First <= merged[^1].Last + 1)
                merged[^1] = (merged[^1].First, Math.Max(merged[^1].Last, range.Last));
            else merged.Add(range);
        }
        return merged;
    }

    private static string Range(ulong first, ulong last) =>
        first == last ? new Ipv4((uint)first).ToString() : $"{new Ipv4((uint)first)}-{new Ipv4((uint)last)}";

    /// <summary>The world's pods by namespace, made when first asked.</summary>
    private sealed class WorldIndex(PolicyWorld world)
    {
        private Dictionary<string, List<PolicyPod>>? _byNamespace;

        public IReadOnlyDictionary<string, List<PolicyPod>> ByNamespace => _byNamespace ??= world.Pods.GroupBy(p => p.Namespace)
            .ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
    }

    /// <summary>Builds one pod and direction's chains, and the sets they need that the cache does not hold yet.</summary>
    private sealed class Builder(NftIncrementalCompiler cache, PolicyWorld world, WorldIndex index)
    {
        private const string AnyPeer = "";

        public PodOutput? Output(PolicyPod pod, PolicyDirections direction)
        {
            var selecting = PolicyEvaluator.Selecting(world, pod, direction).ToList();
            if (selecting.Count == 0) return null;
            var ingress = direction == PolicyDirections.Ingress;
            var field = ingress ? "ip saddr" : "ip daddr";
            var name = NftCompiler.ChainName(pod, direction);
            var sets = new HashSet<string>(StringComparer.Ordinal);
            var segments = new Dictionary<PolicyProtocol, List<(int First, int Last, string Peer)>>();
            var allPorts = new SortedSet<string>(StringComparer.Ordinal);
            var named = new List<string>();
            foreach (var policy in selecting)
            {
                foreach (var rule in ingress ? policy.Ingress : policy.Egress)
                {
                    var peers = rule.Peers.IsEmpty ? [AnyPeer] : rule.Peers.Select(peer => PeerSet(policy, peer, sets)).ToList();
                    if (rule.Ports.IsEmpty)
                    {
                        allPorts.UnionWith(peers);
                        continue;
                    }
                    foreach (var port in rule.Ports)
                    {
                        if (!segments.TryGetValue(port.Protocol, out var list)) segments[port.Protocol] = list = [];
                        if (port.Name is { } portName)
                        {
                            if (ingress)
                            {
                                foreach (var number in pod.NamedPorts.Where(n => n.Name == portName && n.Protocol == port.Protocol))
                                    list.AddRange(peers.Select(peer => (number.Number, number.Number, peer)));
                                continue;
                            }
                            var set = Set("n." + NftCompiler.Hash($"named={portName};protocol={port.Protocol}"),
                                new NamedDefinition(portName, port.Protocol), sets);
                            var match = $"ip daddr . meta l4proto . th dport @{set}";
                            named.AddRange(peers.Select(peer => peer == AnyPeer ? $"{match} return" : $"{field} @{peer} {match} return"));
                        }
                        else if (port.Number is { } number)
                        {
                            var end = port.EndPort ?? number;
                            if (end >= number) list.AddRange(peers.Select(peer => (number, end, peer)));
                        }
                        else list.AddRange(peers.Select(peer => (0, 65535, peer)));
                    }
                }
            }

            // The fallback: rules without ports, then named ports of egress; a rule open to any peer on all ports opens all
            var fallback = new List<string>();
            if (allPorts.Contains(AnyPeer)) fallback.Add("return");
            else fallback.AddRange(Peers(allPorts, sets).Select(set => $"{field} @{set} return"));
            fallback.AddRange(named.Distinct());
            fallback.Add($"counter name {name} drop");

            var mapName = "v." + name;
            var elements = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
            var segmentChains = new Dictionary<string, NftSegmentChain>(StringComparer.Ordinal);
            foreach (var (protocol, list) in segments.OrderBy(s => s.Key))
            {
                foreach (var (first, last, peers) in Segments(list))
                {
                    var signature = string.Join(",", peers);
                    var segment = "s." + NftCompiler.Hash($"{name}|{signature}");
                    if (!segmentChains.ContainsKey(segment))
                    {
                        var rules = peers.Contains(AnyPeer)
                            ? ImmutableArray.Create("return")
                            : [.. Peers(peers, sets).Select(set => $"{field} @{set} return"), .. fallback];
                        segmentChains[segment] = new NftSegmentChain(segment, name, rules);
                    }
                    var key = first == last ? $"{NftCompiler.ProtocolName(protocol)} . {first}"
                        : $"{NftCompiler.ProtocolName(protocol)} . {first}-{last}";
                    elements[key] = $"goto {segment}";
                }
            }
            var chainRules = elements.Count == 0
                ? [.. fallback]
                : ImmutableArray.Create([$"meta l4proto {{ tcp, udp, sctp }} meta l4proto . th dport vmap @{mapName}", .. fallback]);
            return new PodOutput(new NftPodChain(name, pod.Key, direction, chainRules),
                [.. segmentChains.Values.OrderBy(s => s.Name, StringComparer.Ordinal)],
                elements.Count == 0 ? null : new NftPortMap(mapName, name, elements.ToImmutable()), pod.Address.ToString(),
                [.. sets.Order(StringComparer.Ordinal)]);
        }

        /// <summary>
        /// A protocol's port ranges, each allowed to a peer, cut into disjoint segments with the peers of each (adjacent
        /// segments with the same peers joined).
        /// </summary>
        private static List<(int First, int Last, SortedSet<string> Peers)> Segments(List<(int First, int Last, string Peer)> ranges)
        {
            var bounds = ranges.SelectMany(r => new[] { r.First, r.Last + 1 }).Distinct().Order().ToList();
            var result = new List<(int First, int Last, SortedSet<string> Peers)>();
            for (var i = 0; i + 1 < bounds.Count; i++)
            {
                var (first, last) = (bounds[i], bounds[i + 1] - 1);
                var peers = new SortedSet<string>(ranges.Where(r => r.First <= first && r.Last >= last).Select(r => r.Peer),
                    StringComparer.Ordinal);
                if (peers.Count == 0) continue;
                if (result.Count > 0 && result[^1].Last + 1 == first && result[^1].Peers.SetEquals(peers))
                    result[^1] = (result[^1].First, last, result[^1].Peers);
                else result.Add((first, last, peers));
            }
            return result;
        }

        /// <summary>
        /// The sets to look up for several peers: each pod peer's own set (shared by every chain that names that peer),
        /// and the ipBlocks as one set, the block's own or the merged union of all of them (blocks never change with pods).
        /// </summary>
        private List<string> Peers(IReadOnlyCollection<string> peers, HashSet<string> sets)
        {
            var blocks = peers.Where(p => p.StartsWith("b.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToImmutableArray();
            var lookups = peers.Where(p => !p.StartsWith("b.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
            if (blocks.Length == 1) lookups.Add(blocks[0]);
            else if (blocks.Length > 1)
                lookups.Add(Set("m." + NftCompiler.Hash(string.Join(",", blocks)), new MergedDefinition(blocks), sets));
            return lookups;
        }

        private string PeerSet(NetworkPolicy policy, PolicyPeer peer, HashSet<string> sets)
        {
            if (peer.IpBlock is { } block)
            {
                var blockDefinition = $"{block.Cidr} except {string.Join(",", block.Except.Order())}";
                return Set("b." + NftCompiler.Hash(blockDefinition), new BlockDefinition(block), sets);
            }
            var pods = peer.PodSelector ?? LabelSelector.Everything;
            var definition = peer.NamespaceSelector is null
                ? $"ns={policy.Namespace};pods={NftCompiler.Canonical(pods)}"
                : $"namespaces={NftCompiler.Canonical(peer.NamespaceSelector)};pods={NftCompiler.Canonical(pods)}";
            return Set("p." + NftCompiler.Hash(definition),
                new PeerDefinition(peer.NamespaceSelector is null ? policy.Namespace : null, peer.NamespaceSelector, pods), sets);
        }

        /// <summary>The set of that name, made (elements and all) when the cache does not hold it.</summary>
        private string Set(string name, SetDefinition definition, HashSet<string> sets)
        {
            sets.Add(name);
            if (definition is MergedDefinition merged) sets.UnionWith(merged.Parts);
            if (cache._definitions.ContainsKey(name)) return name;
            cache._definitions[name] = definition;
            cache._sets[name] = definition switch
            {
                PeerDefinition peer => new NftSet(name, "ipv4_addr", false, PeerElements(peer)),
                BlockDefinition block => new NftSet(name, "ipv4_addr", true,
                    NftCompiler.Ranges(block.Block).ToImmutableSortedSet(StringComparer.Ordinal)),
                NamedDefinition named => new NftSet(name, "ipv4_addr . inet_proto . inet_service", false,
                    world.Pods.SelectMany(p => ElementsOf(named, world, p)).ToImmutableSortedSet(StringComparer.Ordinal)),
                MergedDefinition m => new NftSet(name, "ipv4_addr", true, Union(m.Parts.Select(p => cache._sets[p].Elements))),
                _ => throw new InvalidOperationException($"set definition {definition}"),
            };
            return name;
        }

        private ImmutableSortedSet<string> PeerElements(PeerDefinition peer)
        {
            var namespaces = peer.Namespaces is { } selector
                ? index.ByNamespace.Keys.Where(ns => selector.Matches(world.NamespaceLabels(ns)))
                : [peer.Namespace!];
            return namespaces.SelectMany(ns => index.ByNamespace.GetValueOrDefault(ns) ?? [])
                .Where(p => peer.Pods.Matches(p.Labels))
                .Select(p => p.Address.ToString()).ToImmutableSortedSet(StringComparer.Ordinal);
        }
    }
}

/// <summary>
/// Equality by content for the policy model (its records hold immutable arrays and dictionaries, which compare by reference):
/// a world rebuilt from the same objects' data is the same world.
/// </summary>
internal static class Same
{
    public static readonly IEqualityComparer<PolicyPod> Pods = new Comparer<PolicyPod>((a, b) =>
        a.Namespace == b.Namespace && a.Name == b.Name && a.Address == b.Address && a.NodeAddress == b.NodeAddress
        && a.Labels.SequenceEqual(b.Labels) && a.NamedPorts.SequenceEqual(b.NamedPorts));

    public static readonly IEqualityComparer<PolicyNamespace> Namespaces = new Comparer<PolicyNamespace>((a, b) =>
        a.Name == b.Name && a.Labels.SequenceEqual(b.Labels));

    public static readonly IEqualityComparer<NetworkPolicy> Policies = new Comparer<NetworkPolicy>((a, b) =>
        a.Namespace == b.Namespace && a.Name == b.Name && a.Directions == b.Directions && Selectors(a.PodSelector, b.PodSelector)
        && a.Ingress.SequenceEqual(b.Ingress, Rules) && a.Egress.SequenceEqual(b.Egress, Rules));

    private static readonly IEqualityComparer<PolicyRule> Rules = new Comparer<PolicyRule>((a, b) =>
        a.Ports.SequenceEqual(b.Ports) && a.Peers.SequenceEqual(b.Peers, Peers));

    private static readonly IEqualityComparer<PolicyPeer> Peers = new Comparer<PolicyPeer>((a, b) =>
        Selectors(a.PodSelector, b.PodSelector) && Selectors(a.NamespaceSelector, b.NamespaceSelector)
        && (a.IpBlock is null ? b.IpBlock is null
            : b.IpBlock is not null && a.IpBlock.Cidr == b.IpBlock.Cidr && a.IpBlock.Except.SequenceEqual(b.IpBlock.Except)));

    private static bool Selectors(LabelSelector? a, LabelSelector? b) =>
        a is null ? b is null
            : b is not null && a.MatchLabels.SequenceEqual(b.MatchLabels) && a.MatchExpressions.SequenceEqual(b.MatchExpressions,
                Requirements);

    private static readonly IEqualityComparer<SelectorRequirement> Requirements = new Comparer<SelectorRequirement>((x, y) =>
        x.Key == y.Key && x.Operator == y.Operator && x.Values.SequenceEqual(y.Values));

    private sealed class Comparer<T>(Func<T, T, bool> equal) : IEqualityComparer<T>
        where T : class
    {
        public bool Equals(T? x, T? y) => ReferenceEquals(x, y) || (x is not null && y is not null && equal(x, y));

        public int GetHashCode(T obj) => 0;
    }
}
