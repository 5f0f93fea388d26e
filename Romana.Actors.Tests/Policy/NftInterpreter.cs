using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using Romana.Actors.Addressing;

namespace Romana.Actors.Tests.Policy;

/*
 * A small interpreter of `nft -j list table FAMILY NAME` (libnftables-json(5)): for one IPv4 packet it answers what a hook
 * of that table decides. It knows the base chains of the hook in priority order, rules in order, matches on payload
 * fields (ip saddr/daddr/protocol, th/tcp/udp/sctp sport/dport), meta l4proto/nfproto/iifname/oifname, ct state, named
 * and anonymous sets (single values, prefixes, ranges, concatenations), verdict maps, jump/goto/return/continue/accept/
 * drop/reject, counters (ignored), ct direction, and ct mark (matched under a mask, set by a rule for the rules after).
 * Anything else is an NftUnsupportedException naming the construct and where it is, at load (or, for a packet that lacks
 * what a rule reads, such as its interface, at evaluation): the interpreter never gives a verdict for a ruleset it does
 * not fully understand.
 */

/// <summary>A construct of the ruleset the interpreter does not know, named with its place (chain and rule handle).</summary>
public sealed class NftUnsupportedException(string message) : Exception(message);

/// <summary>
/// One IPv4 packet: addresses, IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP), ports, its conntrack state
/// (new, established, related, invalid, untracked) and, when a rule asks for them, its interfaces.
/// </summary>
public sealed record NftPacket(Ipv4 Source, Ipv4 Destination, int Protocol, int DestinationPort, int SourcePort = 40000,
    string CtState = "new", string? InInterface = null, string? OutInterface = null, uint CtMark = 0,
    string CtDirection = "original")
{
    public const int Tcp = 6;
    public const int Udp = 17;
    public const int Sctp = 132;

    public override string ToString() =>
        $"{Source}:{SourcePort} -> {Destination}:{DestinationPort} proto {Protocol} ct {CtState}"
        + (InInterface is null ? "" : $" iif {InInterface}") + (OutInterface is null ? "" : $" oif {OutInterface}")
        + (CtMark == 0 ? "" : $" ct mark 0x{CtMark:x8}") + (CtDirection == "original" ? "" : $" ct direction {CtDirection}");
}

/// <summary>The hook's answer and the way there: every rule that gave a verdict, as chain#handle verdict.</summary>
public sealed record NftVerdict(bool Accepted, ImmutableArray<string> Trace)
{
    public override string ToString() => (Accepted ? "accept" : "drop") + " via " + string.Join(", ", Trace);
}

public sealed class NftRuleset
{
    private const int JumpStackSize = 16;
    private readonly Dictionary<string, Chain> _chains;
    private readonly Dictionary<string, NftSet> _sets;

    private NftRuleset(Dictionary<string, Chain> chains, Dictionary<string, NftSet> sets)
    {
        _chains = chains;
        _sets = sets;
    }

    public IReadOnlyCollection<string> Chains => _chains.Keys;

    public int Rules => _chains.Values.Sum(c => c.Rules.Count);

    /// <summary>Reads the output of `nft -j list table`; every construct must be understood.</summary>
    public static NftRuleset Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        if (!document.RootElement.TryGetProperty("nftables", out var items) || items.ValueKind != JsonValueKind.Array)
            throw new NftUnsupportedException("the JSON has no \"nftables\" array");
        var chains = new Dictionary<string, Chain>();
        var sets = new Dictionary<string, NftSet>();
        var rules = new List<JsonElement>();
        string? table = null;
        foreach (var item in items.EnumerateArray())
        {
            var (kind, body) = Single(item, "ruleset item");
            switch (kind)
            {
                case "metainfo":
                    break;
                case "table":
                    table = table is null ? Text(body, "name") : throw new NftUnsupportedException("more than one table");
                    break;
                case "chain":
                    chains.Add(Text(body, "name"), ChainOf(body));
                    break;
                case "set":
                case "map":
                    sets.Add(Text(body, "name"), SetOf(kind, body));
                    break;
                case "counter":
                    break; // named counters: counted by the kernel, no part of a verdict
                case "rule":
                    rules.Add(body);
                    break;
                default:
                    throw new NftUnsupportedException($"ruleset object \"{kind}\"");
            }
        }

        foreach (var rule in rules)
        {
            var chain = Text(rule, "chain");
            var handle = rule.TryGetProperty("handle", out var h) ? h.GetInt64() : -1;
            var where = $"{chain}#{handle}";
            if (!chains.TryGetValue(chain, out var owner)) throw new NftUnsupportedException($"{where}: rule of an unknown chain");
            var statements = rule.GetProperty("expr").EnumerateArray().Select(e => StatementOf(e, where, sets)).ToList();
            owner.Rules.Add(new Rule(where, statements));
        }

        foreach (var (name, chain) in chains)
            foreach (var rule in chain.Rules)
                foreach (var target in rule.Statements.SelectMany(Targets))
                    if (!chains.ContainsKey(target))
                        throw new NftUnsupportedException($"{rule.Where}: jump to unknown chain {target} (from {name})");
        foreach (var set in sets.Values)
            foreach (var target in set.Verdicts?.Select(v => v.Target).OfType<string>() ?? [])
                if (!chains.ContainsKey(target))
                    throw new NftUnsupportedException($"map {set.Name}: jump to unknown chain {target}");
        return new NftRuleset(chains, sets);
    }

    /// <summary>The verdict of every base chain of <paramref name="hook"/>, in priority order: accepted when none drops.</summary>
    public NftVerdict Evaluate(NftPacket packet, string hook = "forward")
    {
        var trace = ImmutableArray.CreateBuilder<string>();
        foreach (var chain in _chains.Values.Where(c => c.Hook == hook).OrderBy(c => c.Priority))
        {
            var outcome = Run(chain, new Flow(packet), trace, 0);
            if (outcome == Outcome.Return)
            {
                trace.Add($"{chain.Name} policy {(chain.PolicyAccepts ? "accept" : "drop")}");
                outcome = chain.PolicyAccepts ? Outcome.Accept : Outcome.Drop;
            }

            if (outcome == Outcome.Drop) return new NftVerdict(false, trace.ToImmutable());
        }

        return new NftVerdict(true, trace.ToImmutable());
    }

    /// <summary>How many elements a named set or map holds; -1 when the table has none of that name.</summary>
    public int ElementsOf(string set) => _sets.TryGetValue(set, out var s) ? s.Elements.Count : -1;

    private enum Outcome
    {
        Accept,
        Drop,
        Return,
    }

    /// <summary>The packet as the rules see it so far: a rule may set its connection's mark for the rules after it.</summary>
    private sealed class Flow(NftPacket packet)
    {
        public NftPacket Packet { get; set; } = packet;
    }

    private Outcome Run(Chain chain, Flow flow, ImmutableArray<string>.Builder trace, int depth)
    {
        if (depth > JumpStackSize) throw new NftUnsupportedException($"{chain.Name}: more than {JumpStackSize} nested jumps");
        foreach (var rule in chain.Rules)
        {
            Verdict? verdict = null;
            foreach (var statement in rule.Statements)
            {
                if (statement is Match match)
                {
                    if (!match.Holds(flow.Packet, _sets)) break;
                }
                else if (statement is Verdict v)
                {
                    verdict = v;
                    break;
                }
                else if (statement is SetMark mark)
                {
                    flow.Packet = flow.Packet with { CtMark = (uint)mark.Value.Read(flow.Packet)![0] };
                }
                else if (statement is VerdictMap map)
                {
                    verdict = map.Lookup(flow.Packet, _sets);
                    break;
                }
            }

            if (verdict is null) continue;
            trace.Add($"{rule.Where} {verdict}");
            switch (verdict.Kind)
            {
                case "accept":
                    return Outcome.Accept;
                case "drop":
                case "reject":
                    return Outcome.Drop;
                case "return":
                    return Outcome.Return;
                case "continue":
                    continue;
                case "goto":
                    return Run(_chains[verdict.Target!], flow, trace, depth + 1);
                case "jump":
                    var outcome = Run(_chains[verdict.Target!], flow, trace, depth + 1);
                    if (outcome != Outcome.Return) return outcome;
                    continue;
            }
        }

        return Outcome.Return;
    }

    private static IEnumerable<string> Targets(Statement statement) => statement switch
    {
        Verdict { Target: { } target } => [target],
        VerdictMap { Anonymous.Verdicts: { } verdicts } => verdicts.Select(v => v.Target).OfType<string>(),
        _ => [],
    };

    // ---- parsing ----

    private static (string Kind, JsonElement Body) Single(JsonElement item, string what)
    {
        if (item.ValueKind != JsonValueKind.Object) throw new NftUnsupportedException($"{what} {item.GetRawText()}");
        var properties = item.EnumerateObject().ToList();
        return properties.Count == 1
            ? (properties[0].Name, properties[0].Value)
            : throw new NftUnsupportedException($"{what} with {properties.Count} keys: {Short(item)}");
    }

    private static string Text(JsonElement body, string name) =>
        body.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new NftUnsupportedException($"missing \"{name}\" in {Short(body)}");

    private static string Short(JsonElement element)
    {
        var text = element.GetRawText();
        return text.Length <= 200 ? text : text[..200] + "...";
    }

    private static Chain ChainOf(JsonElement body)
    {
        var name = Text(body, "name");
        if (!body.TryGetProperty("hook", out var hook)) return new Chain(name, null, 0, true);
        var type = Text(body, "type");
        if (type != "filter") throw new NftUnsupportedException($"chain {name}: type {type}");
        var policy = body.TryGetProperty("policy", out var p) ? p.GetString() : "accept";
        if (policy is not ("accept" or "drop")) throw new NftUnsupportedException($"chain {name}: policy {policy}");
        var priority = body.TryGetProperty("prio", out var prio) && prio.ValueKind == JsonValueKind.Number
            ? prio.GetInt32()
            : throw new NftUnsupportedException($"chain {name}: priority {Short(body)}");
        return new Chain(name, hook.GetString(), priority, policy == "accept");
    }

    private static NftSet SetOf(string kind, JsonElement body)
    {
        var name = Text(body, "name");
        var where = $"{kind} {name}";
        var types = body.GetProperty("type") is { ValueKind: JsonValueKind.Array } list
            ? list.EnumerateArray().Select(t => TypeNamed(t.GetString()!, where)).ToImmutableArray()
            : [TypeNamed(body.GetProperty("type").GetString()!, where)];
        var isMap = kind == "map";
        if (isMap && (!body.TryGetProperty("map", out var data) || data.GetString() != "verdict"))
            throw new NftUnsupportedException($"{where}: a map of other data than verdicts");
        var elements = new List<Element>();
        var verdicts = new List<Verdict>();
        if (body.TryGetProperty("elem", out var elems))
            foreach (var elem in elems.EnumerateArray())
            {
                if (isMap)
                {
                    if (elem.ValueKind != JsonValueKind.Array || elem.GetArrayLength() != 2)
                        throw new NftUnsupportedException($"{where}: map element {Short(elem)}");
                    elements.Add(ElementOf(elem[0], types, where));
                    verdicts.Add(VerdictOf(elem[1], where) ?? throw new NftUnsupportedException($"{where}: data {Short(elem[1])}"));
                }
                else
                {
                    elements.Add(ElementOf(elem, types, where));
                }
            }

        return new NftSet(name, types, elements, isMap ? verdicts : null);
    }

    private static Statement StatementOf(JsonElement item, string where, Dictionary<string, NftSet> sets)
    {
        var (kind, body) = Single(item, $"{where}: statement");
        if (VerdictOf(item, where) is { } verdict) return verdict;
        switch (kind)
        {
            case "counter":
                return new Counter();
            case "match":
                return MatchOf(body, where, sets);
            case "mangle":
                var target = ExpressionOf(body.GetProperty("key"), where);
                var value = OperandOf(body.GetProperty("value"), where);
                return target.Text == "ct mark" && value.Types is [FieldType.Mark]
                    ? new SetMark(value)
                    : throw new NftUnsupportedException($"{where}: mangle {Short(body)}");
            case "vmap":
                var key = ExpressionOf(body.GetProperty("key"), where);
                var data = body.GetProperty("data");
                if (data.ValueKind == JsonValueKind.String)
                {
                    var set = SetNamed(data.GetString()!, where, sets);
                    if (set.Verdicts is null) throw new NftUnsupportedException($"{where}: vmap over set {set.Name}, not a map");
                    CheckTypes(key, set, where);
                    return new VerdictMap(key, set.Name, null);
                }

                var (setKind, setBody) = Single(data, $"{where}: vmap data");
                if (setKind != "set") throw new NftUnsupportedException($"{where}: vmap data {setKind}");
                var elements = new List<Element>();
                var verdicts = new List<Verdict>();
                foreach (var pair in setBody.EnumerateArray())
                {
                    elements.Add(ElementOf(pair[0], key.Types, where));
                    verdicts.Add(VerdictOf(pair[1], where) ?? throw new NftUnsupportedException($"{where}: vmap data {Short(pair[1])}"));
                }

                return new VerdictMap(key, null, new NftSet("(anonymous)", key.Types, elements, verdicts));
            default:
                throw new NftUnsupportedException($"{where}: statement \"{kind}\" {Short(body)}");
        }
    }

    private static Verdict? VerdictOf(JsonElement item, string where)
    {
        if (item.ValueKind != JsonValueKind.Object) return null;
        var (kind, body) = Single(item, $"{where}: verdict");
        return kind switch
        {
            "accept" or "drop" or "return" or "continue" => new Verdict(kind, null),
            "reject" => new Verdict(kind, null),
            "jump" or "goto" => new Verdict(kind, Text(body, "target")),
            _ => null,
        };
    }

    private static NftSet SetNamed(string reference, string where, Dictionary<string, NftSet> sets) =>
        reference.StartsWith('@') && sets.TryGetValue(reference[1..], out var set)
            ? set
            : throw new NftUnsupportedException($"{where}: reference {reference} to no set of the table");

    private static void CheckTypes(Expression key, NftSet set, string where)
    {
        if (!key.Types.SequenceEqual(set.Types))
            throw new NftUnsupportedException(
                $"{where}: key of types {string.Join('.', key.Types)} looked up in {set.Name} of {string.Join('.', set.Types)}");
    }

    private static Match MatchOf(JsonElement body, string where, Dictionary<string, NftSet> sets)
    {
        var op = Text(body, "op");
        var left = ExpressionOf(body.GetProperty("left"), where);
        var right = body.GetProperty("right");
        if (left.Types is [FieldType.CtState])
        {
            if (right.ValueKind == JsonValueKind.Object && right.TryGetProperty("set", out var states)) right = states;
            var mask = right.ValueKind == JsonValueKind.Array
                ? right.EnumerateArray().Aggregate(UInt128.Zero, (m, s) => m | CtStateBit(s.GetString()!, where))
                : right.ValueKind == JsonValueKind.String
                    ? CtStateBit(right.GetString()!, where)
                    : throw new NftUnsupportedException($"{where}: ct state compared with {Short(right)}");
            return op switch
            {
                "in" => new Match(left, MatchKind.AnyBit, mask, null, null),
                "==" => new Match(left, MatchKind.Equal, mask, null, null),
                "!=" => new Match(left, MatchKind.NotEqual, mask, null, null),
                _ => throw new NftUnsupportedException($"{where}: ct state op {op}"),
            };
        }

        if (right.ValueKind == JsonValueKind.String && right.GetString()!.StartsWith('@'))
        {
            var set = SetNamed(right.GetString()!, where, sets);
            if (set.Verdicts is not null) throw new NftUnsupportedException($"{where}: match against map {set.Name}");
            CheckTypes(left, set, where);
            return op switch
            {
                "==" or "in" => new Match(left, MatchKind.InSet, 0, set.Name, null),
                "!=" => new Match(left, MatchKind.NotInSet, 0, set.Name, null),
                _ => throw new NftUnsupportedException($"{where}: op {op} against set {set.Name}"),
            };
        }

        NftSet elements;
        if (right.ValueKind == JsonValueKind.Object && right.TryGetProperty("set", out var anonymous))
            elements = new NftSet("(anonymous)", left.Types,
                anonymous.EnumerateArray().Select(e => ElementOf(e, left.Types, where)).ToList(), null);
        else
            elements = new NftSet("(value)", left.Types, [ElementOf(right, left.Types, where)], null);
        return op switch
        {
            "==" or "in" => new Match(left, MatchKind.InSet, 0, null, elements),
            "!=" => new Match(left, MatchKind.NotInSet, 0, null, elements),
            "<" or "<=" or ">" or ">=" when left.Types.Length == 1 && elements.Elements is [{ Intervals: [var (low, high)] }]
                && low == high => new Match(left, op switch
                {
                    "<" => MatchKind.Less,
                    "<=" => MatchKind.LessOrEqual,
                    ">" => MatchKind.Greater,
                    _ => MatchKind.GreaterOrEqual,
                }, low, null, null),
            _ => throw new NftUnsupportedException($"{where}: op {op} with {Short(right)}"),
        };
    }

    private static Expression ExpressionOf(JsonElement item, string where)
    {
        var (kind, body) = Single(item, $"{where}: expression");
        switch (kind)
        {
            case "payload":
                if (!body.TryGetProperty("protocol", out var protocol))
                    throw new NftUnsupportedException($"{where}: raw payload {Short(body)}");
                var field = Text(body, "field");
                return (protocol.GetString(), field) switch
                {
                    ("ip", "saddr") => new Expression([FieldType.Address], p => [p.Source.Value], $"ip saddr"),
                    ("ip", "daddr") => new Expression([FieldType.Address], p => [p.Destination.Value], $"ip daddr"),
                    ("ip", "protocol") => new Expression([FieldType.Protocol], p => [(UInt128)p.Protocol], "ip protocol"),
                    ("th", "dport" or "sport") => new Expression([FieldType.Service],
                        p => p.Protocol is NftPacket.Tcp or NftPacket.Udp or NftPacket.Sctp
                            ? [Port(p, field)]
                            : throw new NftUnsupportedException($"{where}: th {field} of a packet of protocol {p.Protocol}"),
                        $"th {field}"),
                    ("tcp" or "udp" or "sctp", "dport" or "sport") => PortOf(protocol.GetString()!, field),
                    _ => throw new NftUnsupportedException($"{where}: payload {protocol.GetString()} {field}"),
                };
            case "meta":
                var key = Text(body, "key");
                return key switch
                {
                    "l4proto" => new Expression([FieldType.Protocol], p => [(UInt128)p.Protocol], "meta l4proto"),
                    "nfproto" => new Expression([FieldType.NfProto], _ => [2], "meta nfproto"),
                    "iifname" => new Expression([FieldType.InterfaceName],
                        p => [InterfaceKey(p.InInterface ?? throw new NftUnsupportedException($"{where}: iifname of {p}"))], key),
                    "oifname" => new Expression([FieldType.InterfaceName],
                        p => [InterfaceKey(p.OutInterface ?? throw new NftUnsupportedException($"{where}: oifname of {p}"))], key),
                    _ => throw new NftUnsupportedException($"{where}: meta {key}"),
                };
            case "ct":
                var ct = Text(body, "key");
                if (body.TryGetProperty("dir", out _)) throw new NftUnsupportedException($"{where}: ct {Short(body)}");
                return ct switch
                {
                    "state" => new Expression([FieldType.CtState], p => [CtStateBit(p.CtState, where)], "ct state"),
                    "mark" => new Expression([FieldType.Mark], p => [p.CtMark], "ct mark"),
                    "direction" => new Expression([FieldType.CtDirection], p => [CtDirectionOf(p.CtDirection, where)], "ct direction"),
                    _ => throw new NftUnsupportedException($"{where}: ct {ct}"),
                };
            case "&" or "|" or "^":
                var operands = body.EnumerateArray().Select(e => OperandOf(e, where)).ToList();
                if (operands.Count != 2 || operands.Any(o => o.Types is not [FieldType.Mark]))
                    throw new NftUnsupportedException($"{where}: {kind} of {Short(body)}");
                var (a, b) = (operands[0], operands[1]);
                return new Expression([FieldType.Mark], p => a.Read(p) is [var x] && b.Read(p) is [var y]
                        ? [kind == "&" ? x & y : kind == "|" ? x | y : x ^ y]
                        : null,
                    $"({a.Text} {kind} {b.Text})");
            case "concat":
                var parts = body.EnumerateArray().Select(e => ExpressionOf(e, where)).ToList();
                return new Expression([.. parts.SelectMany(p => p.Types)],
                    p =>
                    {
                        var values = new List<UInt128>();
                        foreach (var part in parts)
                        {
                            if (part.Read(p) is not { } value) return null;
                            values.AddRange(value);
                        }

                        return [.. values];
                    },
                    string.Join(" . ", parts.Select(p => p.Text)));
            default:
                throw new NftUnsupportedException($"{where}: expression \"{kind}\" {Short(body)}");
        }

        Expression PortOf(string transport, string field)
        {
            var number = transport switch { "tcp" => NftPacket.Tcp, "udp" => NftPacket.Udp, _ => NftPacket.Sctp };
            return new Expression([FieldType.Service], p => p.Protocol == number ? [Port(p, field)] : null, $"{transport} {field}");
        }
    }

    /// <summary>An operand of a mark's arithmetic: a number (a 32-bit mark) or an expression.</summary>
    private static Expression OperandOf(JsonElement item, string where)
    {
        if (item.ValueKind != JsonValueKind.Number) return ExpressionOf(item, where);
        var value = item.GetUInt32();
        return new Expression([FieldType.Mark], _ => [value], $"0x{value:x8}");
    }

    private static UInt128 Port(NftPacket packet, string field) =>
        (UInt128)(field == "dport" ? packet.DestinationPort : packet.SourcePort);

    /// <summary>An interface name as nft compares it: 16 bytes, zero-padded, compared as a big-endian number.</summary>
    private static UInt128 InterfaceKey(string name)
    {
        var bytes = Encoding.ASCII.GetBytes(name);
        if (bytes.Length > 16) throw new NftUnsupportedException($"interface name {name} longer than 16 bytes");
        UInt128 value = 0;
        for (var i = 0; i < 16; i++) value = (value << 8) | (i < bytes.Length ? bytes[i] : 0u);
        return value;
    }

    private static UInt128 CtStateBit(string state, string where) => state switch
    {
        "invalid" => 1,
        "established" => 2,
        "related" => 4,
        "new" => 8,
        "untracked" => 64,
        _ => throw new NftUnsupportedException($"{where}: ct state {state}"),
    };

    private static UInt128 CtDirectionOf(string direction, string where) => direction switch
    {
        "original" => 0,
        "reply" => 1,
        _ => throw new NftUnsupportedException($"{where}: ct direction {direction}"),
    };

    private static FieldType TypeNamed(string name, string where) => name switch
    {
        "ipv4_addr" => FieldType.Address,
        "inet_service" => FieldType.Service,
        "inet_proto" => FieldType.Protocol,
        "ifname" => FieldType.InterfaceName,
        _ => throw new NftUnsupportedException($"{where}: type {name}"),
    };

    private static Element ElementOf(JsonElement item, ImmutableArray<FieldType> types, string where)
    {
        if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("elem", out var wrapped))
            item = wrapped.GetProperty("val"); // an element with a counter, a timeout or a comment
        if (types.Length == 1) return new Element([IntervalOf(item, types[0], where)]);
        if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("concat", out var parts)
            || parts.GetArrayLength() != types.Length)
            throw new NftUnsupportedException($"{where}: element {Short(item)} for a key of {types.Length} fields");
        return new Element([.. parts.EnumerateArray().Select((part, i) => IntervalOf(part, types[i], where))]);
    }

    private static (UInt128 Low, UInt128 High) IntervalOf(JsonElement item, FieldType type, string where)
    {
        if (item.ValueKind == JsonValueKind.Object)
        {
            var (kind, body) = Single(item, $"{where}: value");
            switch (kind)
            {
                case "prefix" when type is FieldType.Address or FieldType.Mark:
                    var address = body.GetProperty("addr");
                    var network = type == FieldType.Mark && address.ValueKind == JsonValueKind.Number
                        ? address.GetUInt32()
                        : Ipv4.Parse(Text(body, "addr")).Value;
                    var length = body.GetProperty("len").GetInt32();
                    var mask = Ipv4Cidr.MaskOf(length);
                    return (network & mask, (network & mask) | ~mask);
                case "range":
                    var (low, _) = IntervalOf(body[0], type, where);
                    var (_, high) = IntervalOf(body[1], type, where);
                    return (low, high);
                default:
                    throw new NftUnsupportedException($"{where}: value {Short(item)} of a {type} field");
            }
        }

        var value = IntervalValue(item, type, where);
        return (value, value);
    }

    private static UInt128 IntervalValue(JsonElement item, FieldType type, string where)
    {
        switch (type)
        {
            case FieldType.Address when item.ValueKind == JsonValueKind.String && Ipv4.TryParse(item.GetString(), out var a):
                return a.Value;
            case FieldType.Mark when item.ValueKind == JsonValueKind.Number:
                return item.GetUInt32();
            case FieldType.CtDirection when item.ValueKind == JsonValueKind.String:
                return CtDirectionOf(item.GetString()!, where);
            case FieldType.Service when item.ValueKind == JsonValueKind.Number:
                return item.GetUInt16();
            case FieldType.Protocol when item.ValueKind == JsonValueKind.Number:
                return item.GetByte();
            case FieldType.Protocol when item.ValueKind == JsonValueKind.String:
                return item.GetString() switch
                {
                    "icmp" => 1,
                    "tcp" => 6,
                    "udp" => 17,
                    "sctp" => 132,
                    var other => throw new NftUnsupportedException($"{where}: protocol {other}"),
                };
            case FieldType.NfProto when item.ValueKind == JsonValueKind.String:
                return item.GetString() switch
                {
                    "ipv4" => 2,
                    "ipv6" => 10,
                    var other => throw new NftUnsupportedException($"{where}: nfproto {other}"),
                };
            case FieldType.InterfaceName when item.ValueKind == JsonValueKind.String:
                var name = item.GetString()!;
                return name.Contains('*') || name.Contains('\\')
                    ? throw new NftUnsupportedException($"{where}: interface pattern {name}")
                    : InterfaceKey(name);
            default:
                throw new NftUnsupportedException($"{where}: value {Short(item)} of a {type} field");
        }
    }

    // ---- the model ----

    private enum FieldType
    {
        Address,
        Service,
        Protocol,
        NfProto,
        CtState,
        InterfaceName,
        Mark,
        CtDirection,
    }

    private enum MatchKind
    {
        InSet,
        NotInSet,
        AnyBit,
        Equal,
        NotEqual,
        Less,
        LessOrEqual,
        Greater,
        GreaterOrEqual,
    }

    private sealed record Chain(string Name, string? Hook, int Priority, bool PolicyAccepts)
    {
        public List<Rule> Rules { get; } = [];
    }

    private sealed record Rule(string Where, IReadOnlyList<Statement> Statements);

    private abstract record Statement;

    private sealed record Counter : Statement;

    /// <summary>ct mark set VALUE: the rules after it see the new mark.</summary>
    private sealed record SetMark(Expression Value) : Statement;

    private sealed record Verdict(string Kind, string? Target) : Statement
    {
        public override string ToString() => Target is null ? Kind : $"{Kind} {Target}";
    }

    /// <summary>
    /// A field (or a concatenation of fields) of a packet; null when the packet has none (a tcp field of a UDP packet), which
    /// makes every match on it fail, as the kernel's implicit protocol dependency does.
    /// </summary>
    private sealed record Expression(ImmutableArray<FieldType> Types, Func<NftPacket, UInt128[]?> Read, string Text);

    private sealed record Element(ImmutableArray<(UInt128 Low, UInt128 High)> Intervals)
    {
        public bool Contains(UInt128[] key)
        {
            for (var i = 0; i < key.Length; i++)
                if (key[i] < Intervals[i].Low || key[i] > Intervals[i].High) return false;
            return true;
        }
    }

    private sealed record NftSet(string Name, ImmutableArray<FieldType> Types, IReadOnlyList<Element> Elements,
        IReadOnlyList<Verdict>? Verdicts)
    {
        public int IndexOf(UInt128[] key)
        {
            for (var i = 0; i < Elements.Count; i++)
                if (Elements[i].Contains(key)) return i;
            return -1;
        }
    }

    private sealed record Match(Expression Left, MatchKind Kind, UInt128 Value, string? SetName, NftSet? Inline) : Statement
    {
        public bool Holds(NftPacket packet, Dictionary<string, NftSet> sets)
        {
            if (Left.Read(packet) is not { } key) return false;
            var set = Inline ?? (SetName is null ? null : sets[SetName]);
            return Kind switch
            {
                MatchKind.InSet => set!.IndexOf(key) >= 0,
                MatchKind.NotInSet => set!.IndexOf(key) < 0,
                MatchKind.AnyBit => (key[0] & Value) != 0,
                MatchKind.Equal => key[0] == Value,
                MatchKind.NotEqual => key[0] != Value,
                MatchKind.Less => key[0] < Value,
                MatchKind.LessOrEqual => key[0] <= Value,
                MatchKind.Greater => key[0] > Value,
                _ => key[0] >= Value,
            };
        }
    }

    private sealed record VerdictMap(Expression Key, string? SetName, NftSet? Anonymous) : Statement
    {
        /// <summary>The verdict of the key's element; null (the rule stops, as a failed lookup breaks it) when none.</summary>
        public Verdict? Lookup(NftPacket packet, Dictionary<string, NftSet> sets)
        {
            if (Key.Read(packet) is not { } key) return null;
            var map = Anonymous ?? sets[SetName!];
            var index = map.IndexOf(key);
            return index < 0 ? null : map.Verdicts![index];
        }
    }
}
