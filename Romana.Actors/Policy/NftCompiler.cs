using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using Romana.Actors.Addressing;

namespace Romana.Actors.Policy;

/*
 * The node's NetworkPolicy as nftables: `table inet romana_policy`, nothing else. Pure: a world and the keys of the pods this
 * node hosts give an NftRuleset; the ruleset gives the text of one `nft -f` transaction that replaces the whole table, and two
 * rulesets give the smallest transaction that turns the first into the second.
 *
 * Layout:
 *   chain forward (hook forward, policy accept). Romana routes pod traffic through the host, so every packet between two
 *   pods crosses forward, same node or not; a pod and its own node talk through input/output, which Romana never filters
 *   (the "own node always allowed" rule).
 *     ct state related accept
 *     ct state established ct direction reply accept
 *     ct state established ct mark (high 16 bits) == GENERATION accept
 *     ip saddr vmap @egress      local pod address -> jump its egress chain
 *     ip daddr vmap @ingress     local pod address -> jump its ingress chain
 *     ct mark set GENERATION     (the flow was admitted by this generation's rules)
 *   A chain per local pod and direction, for the pods some policy of that direction selects (the others get none: open).
 *   A new connection costs a constant number of lookups there, however many policies select the pod:
 *     meta l4proto { tcp, udp, sctp } meta l4proto . th dport vmap @v.CHAIN
 *         the pod's ports cut into disjoint segments (an interval map of protocol . port range), each going to the segment
 *         chain of the peers that allow exactly that segment;
 *     FALLBACK: ip saddr @PEERS return (the peers of the rules without ports), and for egress rules with
 *         named ports, ip daddr @PEER ip daddr . meta l4proto . th dport @NAMED return;
 *     counter name CHAIN drop
 *   A segment chain (s.HASH, per pod chain and set of peers): `ip saddr @PEERS return` (or `return` when any peer may),
 *   then the FALLBACK and the counted drop again (the map's goto does not come back). PEERS: one lookup per pod peer set
 *   (the shared p.HASH sets) and one for all the ipBlocks (the block's set, or an interval set m.HASH of their union).
 *   Merging the pod peer sets too (one lookup in all) was measured and left: each pod would hold its own copy of its
 *   peers' addresses (3.5 times the statements in `bench policy`), and interval sets that pods enter and leave make nft
 *   read them back from the kernel on every change (a label change took 470 ms instead of tens).
 *   Each rule `return`s on allow; each chain ends with a drop counted in a named counter (the same name as the pod chain).
 *
 * Why a generation in the connection mark instead of deleting conntrack entries: an established flow of an older
 * generation is evaluated again, packet by packet in its original direction, until one passes the current rules (then it is
 * marked current and skips them again). A flow a change denies is dropped at its next packet; a flow it still allows goes on.
 * Deleting the touched pods' conntrack entries instead lets TCP loose pickup re-create an entry from whichever side sends
 * next; when that is the server's reply, the new entry's "original" direction is server -> client and the server's egress
 * rules judge it (a server with egress closed would lose allowed flows). Reply packets are always accepted: they belong to a
 * flow some generation admitted, and the flow stops when its originator's packets are dropped.
 *
 * Sets: one address set per pod peer (the policy's namespace or namespaceSelector, and the podSelector), holding the
 * addresses of every matching pod of the world; one interval set per ipBlock (its CIDR minus its excepts, as ranges); for
 * egress rules with named ports, one set per (name, protocol) of `address . protocol . port` of every pod of the world
 * that has that container port. Ingress named ports resolve against the local pod itself. Set names are a hash of what
 * defines them, so the same peer anywhere shares one set, and a set's name never changes while its meaning holds.
 *
 * The compile is incremental (NftIncrementalCompiler): a pod's chains depend only on the pod itself and the policies, and a
 * set's elements only on the pods (and namespaces) its definition reads; when only pods change, only the changed local pods'
 * chains are compiled again and only the sets the changed pods enter or leave are updated.
 */

/// <summary>An nftables set of the table: its name, its type, whether it holds ranges, and its elements as nft text.</summary>
public sealed record NftSet(string Name, string Type, bool Interval, ImmutableSortedSet<string> Elements);

/// <summary>A chain of one local pod and direction; its counter (of drops) has the same name.</summary>
public sealed record NftPodChain(string Name, string Pod, PolicyDirections Direction, ImmutableArray<string> Rules);

/// <summary>A segment chain of a pod chain: the peers allowed on some ports, then the pod chain's fallback and its counted drop.</summary>
public sealed record NftSegmentChain(string Name, string PodChain, ImmutableArray<string> Rules);

/// <summary>A pod chain's verdict map from `protocol . port range` (nft text) to `goto SEGMENT`.</summary>
public sealed record NftPortMap(string Name, string PodChain, ImmutableSortedDictionary<string, string> Elements)
{
    public const string Type = "inet_proto . inet_service";
}

/// <summary>
/// The compiled table: the generation its forward chain marks admitted flows with, the sets, the pods' chains, the
/// verdict maps from local pod addresses to their chains, and the pods' segment chains and port maps.
/// </summary>
public sealed record NftRuleset(
    int Generation,
    ImmutableSortedDictionary<string, NftSet> Sets,
    ImmutableSortedDictionary<string, NftPodChain> Chains,
    ImmutableSortedDictionary<string, string> Egress,
    ImmutableSortedDictionary<string, string> Ingress,
    ImmutableSortedDictionary<string, NftSegmentChain> Segments,
    ImmutableSortedDictionary<string, NftPortMap> PortMaps)
{
    public static NftRuleset Empty(int generation) => new(generation, ImmutableSortedDictionary<string, NftSet>.Empty,
        ImmutableSortedDictionary<string, NftPodChain>.Empty, ImmutableSortedDictionary<string, string>.Empty,
        ImmutableSortedDictionary<string, string>.Empty, ImmutableSortedDictionary<string, NftSegmentChain>.Empty,
        ImmutableSortedDictionary<string, NftPortMap>.Empty);
}

/// <summary>One nft transaction as text, and how many statements (objects, rules, elements) it holds.</summary>
public sealed record NftTransaction(string Text, int Statements)
{
    public bool IsEmpty => Statements == 0;
}

public static class NftCompiler
{
    public const string Family = "inet";
    public const string Table = "romana_policy";
    public const string TableRef = Family + " " + Table;
    public const string ForwardChain = "forward";
    public const string EgressMap = "egress";
    public const string IngressMap = "ingress";

    /// <summary>The connection mark bits Romana uses for the generation (the low 16 bits are left to others).</summary>
    public const uint GenerationMask = 0xffff0000;

    public const int MaxGeneration = 0xffff;
    private const int MaxNameLength = 200;

    /// <summary>The next generation after <paramref name="generation"/>: 1..65535, never 0 (an unmarked flow).</summary>
    public static int NextGeneration(int generation) => generation >= MaxGeneration ? 1 : generation + 1;

    /// <summary>A fresh whole compile (the incremental compiler with nothing cached).</summary>
    public static NftRuleset Compile(PolicyWorld world, IReadOnlySet<string> localPods, int generation) =>
        new NftIncrementalCompiler().Compile(world, localPods, generation);

    /// <summary>The name of a pod's chain (and counter) of a direction: readable when the key allows, else a hash.</summary>
    public static string ChainName(PolicyPod pod, PolicyDirections direction)
    {
        var prefix = direction == PolicyDirections.Ingress ? "in." : "eg.";
        var key = pod.Key;
        return key.Length <= MaxNameLength && key.All(IsNameChar) ? prefix + key : prefix + "h" + Hash(key);
    }

    private static bool IsNameChar(char c) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '.' or '-' or '_' or '/';

    /// <summary>The forward chain's rules for <paramref name="generation"/>.</summary>
    public static ImmutableArray<string> ForwardRules(int generation)
    {
        var mark = $"0x{(uint)generation << 16:x8}";
        return
        [
            "ct state related accept",
            "ct state established ct direction reply accept",
            $"ct state established ct mark and 0x{GenerationMask:x8} == {mark} accept",
            $"ip saddr vmap @{EgressMap}",
            $"ip daddr vmap @{IngressMap}",
            $"ct mark set ct mark and 0x{~GenerationMask:x8} or {mark}",
        ];
    }

    /// <summary>
    /// One transaction that makes the table exactly <paramref name="ruleset"/>, whatever was there: it creates the table
    /// (so that deleting it cannot fail), deletes it and declares it whole. Atomic: the kernel sees all or nothing.
    /// </summary>
    public static NftTransaction Full(NftRuleset ruleset)
    {
        var text = new StringBuilder();
        var statements = 0;
        text.Append("add table ").Append(TableRef).Append('\n');
        text.Append("delete table ").Append(TableRef).Append('\n');
        text.Append("table ").Append(TableRef).Append(" {\n");
        foreach (var chain in ruleset.Chains.Values)
        {
            text.Append("\tcounter ").Append(chain.Name).Append(" { }\n");
            statements++;
        }
        foreach (var set in ruleset.Sets.Values)
        {
            text.Append("\tset ").Append(set.Name).Append(" { type ").Append(set.Type).Append(';');
            if (set.Interval) text.Append(" flags interval;");
            if (!set.Elements.IsEmpty) text.Append(" elements = { ").AppendJoin(", ", set.Elements).Append(" }");
            text.Append(" }\n");
            statements += 1 + set.Elements.Count;
        }
        foreach (var chain in ruleset.Segments.Values)
        {
            text.Append("\tchain ").Append(chain.Name).Append(" {\n");
            foreach (var rule in chain.Rules) text.Append("\t\t").Append(rule).Append('\n');
            text.Append("\t}\n");
            statements += 1 + chain.Rules.Length;
        }
        foreach (var map in ruleset.PortMaps.Values)
        {
            text.Append("\tmap ").Append(map.Name).Append(" { type ").Append(NftPortMap.Type).Append(" : verdict; flags interval;");
            if (!map.Elements.IsEmpty)
                text.Append(" elements = { ").AppendJoin(", ", map.Elements.Select(e => $"{e.Key} : {e.Value}")).Append(" }");
            text.Append(" }\n");
            statements += 1 + map.Elements.Count;
        }
        foreach (var chain in ruleset.Chains.Values)
        {
            text.Append("\tchain ").Append(chain.Name).Append(" {\n");
            foreach (var rule in chain.Rules) text.Append("\t\t").Append(rule).Append('\n');
            text.Append("\t}\n");
            statements += 1 + chain.Rules.Length;
        }
        foreach (var (name, map) in new[] { (EgressMap, ruleset.Egress), (IngressMap, ruleset.Ingress) })
        {
            text.Append("\tmap ").Append(name).Append(" { type ipv4_addr : verdict;");
            if (!map.IsEmpty)
                text.Append(" elements = { ").AppendJoin(", ", map.Select(e => $"{e.Key} : jump {e.Value}")).Append(" }");
            text.Append(" }\n");
            statements += 1 + map.Count;
        }
        text.Append("\tchain ").Append(ForwardChain).Append(" {\n");
        text.Append("\t\ttype filter hook forward priority filter; policy accept;\n");
        var forward = ForwardRules(ruleset.Generation);
        foreach (var rule in forward) text.Append("\t\t").Append(rule).Append('\n');
        text.Append("\t}\n}\n");
        statements += 2 + forward.Length;
        return new NftTransaction(text.ToString(), statements);
    }

    /// <summary>The transaction that deletes the table (it creates it first, so that deleting never fails for its absence).</summary>
    public static NftTransaction Remove() => new($"add table {TableRef}\ndelete table {TableRef}\n", 2);

    /// <summary>
    /// The smallest transaction that turns the table <paramref name="previous"/> (as the kernel holds it) into
    /// <paramref name="next"/>: set elements added and removed, a pod's chain flushed and refilled when its rules changed,
    /// chains, counters, sets and map entries created and deleted for what comes and goes, and the forward chain refilled
    /// for the new generation when anything changed. Empty when nothing differs but the generation.
    /// Order matters within a transaction: what a rule or a map entry refers to exists before it, and is deleted after it.
    /// </summary>
    public static NftTransaction Update(NftRuleset previous, NftRuleset next)
    {
        var text = new StringBuilder();
        var statements = 0;
        void Line(string line)
        {
            text.Append(line).Append('\n');
            statements++;
        }
        void Fill(string chain, ImmutableArray<string> rules, ImmutableArray<string>? old)
        {
            if (old is { } before)
            {
                if (before.SequenceEqual(rules)) return;
                Line($"flush chain {TableRef} {chain}");
            }
            else Line($"add chain {TableRef} {chain}");
            foreach (var rule in rules) Line($"add rule {TableRef} {chain} {rule}");
        }
        void Entries(string name, IReadOnlyDictionary<string, string> before, IReadOnlyDictionary<string, string> after)
        {
            var gone = before.Where(e => !after.TryGetValue(e.Key, out var v) || v != e.Value).Select(e => e.Key).ToList();
            var come = after.Where(e => !before.TryGetValue(e.Key, out var v) || v != e.Value).Select(e => $"{e.Key} : {e.Value}").ToList();
            if (gone.Count > 0) Line($"delete element {TableRef} {name} {{ {string.Join(", ", gone)} }}");
            if (come.Count > 0) Line($"add element {TableRef} {name} {{ {string.Join(", ", come)} }}");
        }

        // What rules refer to first: sets, counters, segment chains, port maps; then the pods' chains and the address maps.
        foreach (var set in next.Sets.Values)
        {
            if (!previous.Sets.TryGetValue(set.Name, out var old))
            {
                Line($"add set {TableRef} {set.Name} {{ type {set.Type};{(set.Interval ? " flags interval;" : "")} }}");
                if (!set.Elements.IsEmpty) Line($"add element {TableRef} {set.Name} {{ {string.Join(", ", set.Elements)} }}");
                continue;
            }
            if (ReferenceEquals(old, set) || ReferenceEquals(old.Elements, set.Elements)) continue;
            var removed = old.Elements.Except(set.Elements);
            var added = set.Elements.Except(old.Elements);
            if (!removed.IsEmpty) Line($"delete element {TableRef} {set.Name} {{ {string.Join(", ", removed)} }}");
            if (!added.IsEmpty) Line($"add element {TableRef} {set.Name} {{ {string.Join(", ", added)} }}");
        }
        foreach (var chain in next.Chains.Values.Where(c => !previous.Chains.ContainsKey(c.Name)))
            Line($"add counter {TableRef} {chain.Name}");
        foreach (var chain in next.Segments.Values)
            Fill(chain.Name, chain.Rules, previous.Segments.TryGetValue(chain.Name, out var old) ? old.Rules : null);
        foreach (var map in next.PortMaps.Values)
        {
            if (previous.PortMaps.TryGetValue(map.Name, out var old)) Entries(map.Name, old.Elements, map.Elements);
            else
            {
                Line($"add map {TableRef} {map.Name} {{ type {NftPortMap.Type} : verdict; flags interval; }}");
                Entries(map.Name, ImmutableSortedDictionary<string, string>.Empty, map.Elements);
            }
        }
        foreach (var chain in next.Chains.Values)
            Fill(chain.Name, chain.Rules, previous.Chains.TryGetValue(chain.Name, out var old) ? old.Rules : null);
        static ImmutableSortedDictionary<string, string> Jumps(ImmutableSortedDictionary<string, string> map) =>
            map.ToImmutableSortedDictionary(e => e.Key, e => $"jump {e.Value}", StringComparer.Ordinal);
        Entries(EgressMap, Jumps(previous.Egress), Jumps(next.Egress));
        Entries(IngressMap, Jumps(previous.Ingress), Jumps(next.Ingress));

        // Then what goes, each after what refers to it.
        var goneChains = previous.Chains.Values.Where(c => !next.Chains.ContainsKey(c.Name)).ToList();
        foreach (var chain in goneChains) Line($"flush chain {TableRef} {chain.Name}");
        foreach (var map in previous.PortMaps.Values.Where(m => !next.PortMaps.ContainsKey(m.Name)))
            Line($"delete map {TableRef} {map.Name}");
        foreach (var chain in previous.Segments.Values.Where(c => !next.Segments.ContainsKey(c.Name)))
        {
            Line($"flush chain {TableRef} {chain.Name}");
            Line($"delete chain {TableRef} {chain.Name}");
        }
        foreach (var chain in goneChains)
        {
            Line($"delete chain {TableRef} {chain.Name}");
            Line($"delete counter {TableRef} {chain.Name}");
        }
        foreach (var set in previous.Sets.Values.Where(s => !next.Sets.ContainsKey(s.Name)))
            Line($"delete set {TableRef} {set.Name}");
        if (statements == 0 && previous.Generation == next.Generation) return new NftTransaction("", 0);
        Line($"flush chain {TableRef} {ForwardChain}");
        foreach (var rule in ForwardRules(next.Generation)) Line($"add rule {TableRef} {ForwardChain} {rule}");
        return new NftTransaction(text.ToString(), statements);
    }

    /// <summary>Whether two rulesets hold the same sets, chains and maps (the generation aside).</summary>
    public static bool SameRules(NftRuleset a, NftRuleset b) =>
        a.Sets.Count == b.Sets.Count && a.Sets.All(s => b.Sets.TryGetValue(s.Key, out var o) && o.Elements.SetEquals(s.Value.Elements)
            && o.Type == s.Value.Type && o.Interval == s.Value.Interval)
        && a.Chains.Count == b.Chains.Count
        && a.Chains.All(c => b.Chains.TryGetValue(c.Key, out var o) && o.Rules.SequenceEqual(c.Value.Rules))
        && a.Egress.SequenceEqual(b.Egress) && a.Ingress.SequenceEqual(b.Ingress)
        && a.Segments.Count == b.Segments.Count
        && a.Segments.All(c => b.Segments.TryGetValue(c.Key, out var o) && o.Rules.SequenceEqual(c.Value.Rules))
        && a.PortMaps.Count == b.PortMaps.Count
        && a.PortMaps.All(m => b.PortMaps.TryGetValue(m.Key, out var o) && o.Elements.SequenceEqual(m.Value.Elements));

    internal static string Hash(string text) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];

    public static string ProtocolName(PolicyProtocol protocol) => protocol switch
    {
        PolicyProtocol.Tcp => "tcp",
        PolicyProtocol.Udp => "udp",
        PolicyProtocol.Sctp => "sctp",
        _ => throw new ArgumentOutOfRangeException(nameof(protocol), protocol, null),
    };

    /// <summary>The block's CIDR minus its excepts, as disjoint ranges (an element per range).</summary>
    public static IEnumerable<string> Ranges(IpBlock block)
    {
        var ranges = new List<(ulong First, ulong Last)> { (block.Cidr.First.Value, block.Cidr.Last.Value) };
        foreach (var except in block.Except)
        {
            var (first, last) = ((ulong)except.First.Value, (ulong)except.Last.Value);
            ranges = ranges.SelectMany(r =>
            {
                if (last < r.First || first > r.Last) return new[] { r };
                var parts = new List<(ulong, ulong)>();
                if (first > r.First) parts.Add((r.First, first - 1));
                if (last < r.Last) parts.Add((last + 1, r.Last));
                return parts.ToArray();
            }).ToList();
        }
        return ranges.Select(r => r.First == r.Last
            ? new Ipv4((uint)r.First).ToString()
            : $"{new Ipv4((uint)r.First)}-{new Ipv4((uint)r.Last)}");
    }

    /// <summary>A selector as text that is the same for every equal selector, whatever order it was written in.</summary>
    public static string Canonical(LabelSelector selector)
    {
        var labels = string.Join(",", selector.MatchLabels.Select(p => $"{p.Key}={p.Value}"));
        var expressions = selector.MatchExpressions
            .Select(r => $"{r.Key} {r.Operator} ({string.Join(",", r.Values.Order(StringComparer.Ordinal))})")
            .Order(StringComparer.Ordinal);
        return $"{{{labels}|{string.Join(";", expressions)}}}";
    }
}
