using System.Collections.Immutable;
using System.Text.Json;
using Romana.Actors.Addressing;

namespace Romana.Actors.Policy;

/// <summary>A NetworkPolicy that cannot be read: names the field (a JSON path) and what was found there.</summary>
public sealed class PolicyFormatException(string field, string problem) : Exception($"{field}: {problem}")
{
    public string Field { get; } = field;
}

/// <summary>
/// Reads a NetworkPolicy as the API server (or <c>kubectl get -o json</c>) writes it. Unknown fields are ignored, as the API
/// server's clients do; a field of the wrong kind or value is a <see cref="PolicyFormatException"/> naming it.
/// <paramref name="resolveCidr"/> lets a caller rewrite a CIDR before it is parsed (the conformance format's
/// <c>{ns/pod}/N</c>).
/// </summary>
public static class NetworkPolicyJson
{
    public static NetworkPolicy Parse(string json, string where = "policy", Func<string, string>? resolveCidr = null)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return Parse(document.RootElement, where, resolveCidr);
        }
        catch (JsonException e)
        {
            throw new PolicyFormatException(where, $"not JSON ({e.Message})");
        }
    }

    public static NetworkPolicy Parse(JsonElement policy, string where = "policy", Func<string, string>? resolveCidr = null)
    {
        Expect(policy, JsonValueKind.Object, where);
        var metadata = Object(policy, "metadata", where) ?? throw new PolicyFormatException($"{where}.metadata", "missing");
        var name = String(metadata, "name", $"{where}.metadata") ?? throw new PolicyFormatException($"{where}.metadata.name", "missing");
        var ns = String(metadata, "namespace", $"{where}.metadata") ?? "default";
        var at = $"{where}.spec";
        var spec = Object(policy, "spec", where) ?? throw new PolicyFormatException(at, "missing");
        var podSelector = Selector(Object(spec, "podSelector", at), $"{at}.podSelector") ?? LabelSelector.Everything;
        var ingress = Rules(spec, "ingress", "from", at, resolveCidr);
        var egress = Rules(spec, "egress", "to", at, resolveCidr);
        var directions = PolicyDirections.None;
        if (spec.TryGetProperty("policyTypes", out var types) && types.ValueKind != JsonValueKind.Null)
        {
            var i = 0;
            foreach (var type in Array(types, $"{at}.policyTypes"))
            {
                directions |= type.ValueKind == JsonValueKind.String ? type.GetString() switch
                {
                    "Ingress" => PolicyDirections.Ingress,
                    "Egress" => PolicyDirections.Egress,
                    var other => throw new PolicyFormatException($"{at}.policyTypes[{i}]", $"'{other}' is neither Ingress nor Egress"),
                } : throw new PolicyFormatException($"{at}.policyTypes[{i}]", $"expected a string, found {Describe(type)}");
                i++;
            }
        }
        else
        {
            // The API server's default: Ingress always, Egress when the policy has egress rules.
            directions = PolicyDirections.Ingress | (egress.IsEmpty ? PolicyDirections.None : PolicyDirections.Egress);
        }
        return new NetworkPolicy(ns, name, podSelector, directions, ingress, egress);
    }

    private static ImmutableArray<PolicyRule> Rules(JsonElement spec, string field, string peersField, string where,
        Func<string, string>? resolveCidr)
    {
        if (!spec.TryGetProperty(field, out var rules) || rules.ValueKind == JsonValueKind.Null) return [];
        var result = ImmutableArray.CreateBuilder<PolicyRule>();
        var i = 0;
        foreach (var rule in Array(rules, $"{where}.{field}"))
        {
            var at = $"{where}.{field}[{i++}]";
            Expect(rule, JsonValueKind.Object, at);
            var peers = ImmutableArray.CreateBuilder<PolicyPeer>();
            if (rule.TryGetProperty(peersField, out var peerList) && peerList.ValueKind != JsonValueKind.Null)
            {
                var j = 0;
                foreach (var peer in Array(peerList, $"{at}.{peersField}")) peers.Add(Peer(peer, $"{at}.{peersField}[{j++}]", resolveCidr));
            }
            var ports = ImmutableArray.CreateBuilder<PolicyPort>();
            if (rule.TryGetProperty("ports", out var portList) && portList.ValueKind != JsonValueKind.Null)
            {
                var j = 0;
                foreach (var port in Array(portList, $"{at}.ports")) ports.Add(Port(port, $"{at}.ports[{j++}]"));
            }
            result.Add(new PolicyRule(peers.ToImmutable(), ports.ToImmutable()));
        }
        return result.ToImmutable();
    }

    private static PolicyPeer Peer(JsonElement peer, string at, Func<string, string>? resolveCidr)
    {
        Expect(peer, JsonValueKind.Object, at);
        var pods = Selector(Object(peer, "podSelector", at), $"{at}.podSelector");
        var namespaces = Selector(Object(peer, "namespaceSelector", at), $"{at}.namespaceSelector");
        var blockElement = Object(peer, "ipBlock", at);
        IpBlock? block = null;
        if (blockElement is { } b)
        {
            if (pods is not null || namespaces is not null)
                throw new PolicyFormatException(at, "ipBlock cannot be combined with podSelector or namespaceSelector");
            var cidr = Cidr(String(b, "cidr", $"{at}.ipBlock") ?? throw new PolicyFormatException($"{at}.ipBlock.cidr", "missing"),
                $"{at}.ipBlock.cidr", resolveCidr);
            var except = ImmutableArray.CreateBuilder<Ipv4Cidr>();
            if (b.TryGetProperty("except", out var excepts) && excepts.ValueKind != JsonValueKind.Null)
            {
                var k = 0;
                foreach (var e in Array(excepts, $"{at}.ipBlock.except"))
                {
                    var field = $"{at}.ipBlock.except[{k++}]";
                    if (e.ValueKind != JsonValueKind.String)
                        throw new PolicyFormatException(field, $"expected a CIDR, found {Describe(e)}");
                    var excepted = Cidr(e.GetString()!, field, resolveCidr);
                    if (!cidr.Contains(excepted))
                        throw new PolicyFormatException(field, $"{excepted} is not inside the block's cidr {cidr}");
                    except.Add(excepted);
                }
            }
            block = new IpBlock(cidr, except.ToImmutable());
        }
        else if (pods is null && namespaces is null)
            throw new PolicyFormatException(at, "a peer needs podSelector, namespaceSelector or ipBlock");
        return new PolicyPeer(pods, namespaces, block);
    }

    private static PolicyPort Port(JsonElement port, string at)
    {
        Expect(port, JsonValueKind.Object, at);
        var protocolText = String(port, "protocol", at) ?? "TCP";
        var protocol = protocolText switch
        {
            "TCP" => PolicyProtocol.Tcp,
            "UDP" => PolicyProtocol.Udp,
            "SCTP" => PolicyProtocol.Sctp,
            _ => throw new PolicyFormatException($"{at}.protocol", $"'{protocolText}' is not TCP, UDP or SCTP"),
        };
        int? number = null;
        string? name = null;
        if (port.TryGetProperty("port", out var value) && value.ValueKind != JsonValueKind.Null)
        {
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n is >= 1 and <= 65535) number = n;
            else if (value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text)
            {
                if (int.TryParse(text, out var parsed)) // an IntOrString written as a string of digits is the number
                {
                    if (parsed is < 1 or > 65535) throw new PolicyFormatException($"{at}.port", $"{parsed} is not a port (1-65535)");
                    number = parsed;
                }
                else if (text.Length > 15 || !text.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
                    throw new PolicyFormatException($"{at}.port", $"'{text}' is not a port name (IANA_SVC_NAME: 1-15 of a-z, 0-9, -)");
                else name = text;
            }
            else throw new PolicyFormatException($"{at}.port", $"expected a port number (1-65535) or name, found {Describe(value)}");
        }
        int? endPort = null;
        if (port.TryGetProperty("endPort", out var end) && end.ValueKind != JsonValueKind.Null)
        {
            if (end.ValueKind != JsonValueKind.Number || !end.TryGetInt32(out var e) || e is < 1 or > 65535)
                throw new PolicyFormatException($"{at}.endPort", $"expected a port number (1-65535), found {Describe(end)}");
            if (number is not { } start)
                throw new PolicyFormatException($"{at}.endPort", "needs a numeric port to start the range");
            if (e < start) throw new PolicyFormatException($"{at}.endPort", $"{e} is below port {start}");
            endPort = e;
        }
        return new PolicyPort(protocol, number, name, endPort);
    }

    private static LabelSelector? Selector(JsonElement? selector, string at)
    {
        if (selector is not { } s) return null;
        var labels = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        if (Object(s, "matchLabels", at) is { } matchLabels)
            foreach (var pair in matchLabels.EnumerateObject())
                labels[pair.Name] = pair.Value.ValueKind == JsonValueKind.String
                    ? pair.Value.GetString()!
                    : throw new PolicyFormatException($"{at}.matchLabels.{pair.Name}", $"expected a string, found {Describe(pair.Value)}");
        var expressions = ImmutableArray.CreateBuilder<SelectorRequirement>();
        if (s.TryGetProperty("matchExpressions", out var list) && list.ValueKind != JsonValueKind.Null)
        {
            var i = 0;
            foreach (var expression in Array(list, $"{at}.matchExpressions"))
            {
                var field = $"{at}.matchExpressions[{i++}]";
                Expect(expression, JsonValueKind.Object, field);
                var key = String(expression, "key", field) ?? throw new PolicyFormatException($"{field}.key", "missing");
                var op = String(expression, "operator", field) switch
                {
                    "In" => SelectorOperator.In,
                    "NotIn" => SelectorOperator.NotIn,
                    "Exists" => SelectorOperator.Exists,
                    "DoesNotExist" => SelectorOperator.DoesNotExist,
                    null => throw new PolicyFormatException($"{field}.operator", "missing"),
                    var other => throw new PolicyFormatException($"{field}.operator",
                        $"'{other}' is not In, NotIn, Exists or DoesNotExist"),
                };
                var values = ImmutableArray.CreateBuilder<string>();
                if (expression.TryGetProperty("values", out var valueList) && valueList.ValueKind != JsonValueKind.Null)
                    foreach (var v in Array(valueList, $"{field}.values"))
                        values.Add(v.ValueKind == JsonValueKind.String
                            ? v.GetString()!
                            : throw new PolicyFormatException($"{field}.values", $"expected strings, found {Describe(v)}"));
                if (op is SelectorOperator.In or SelectorOperator.NotIn && values.Count == 0)
                    throw new PolicyFormatException($"{field}.values", $"{op} needs at least one value");
                if (op is SelectorOperator.Exists or SelectorOperator.DoesNotExist && values.Count > 0)
                    throw new PolicyFormatException($"{field}.values", $"{op} takes no values");
                expressions.Add(new SelectorRequirement(key, op, values.ToImmutable()));
            }
        }
        return new LabelSelector(labels.ToImmutable(), expressions.ToImmutable());
    }

    private static Ipv4Cidr Cidr(string text, string field, Func<string, string>? resolve)
    {
        var resolved = resolve is null ? text : resolve(text);
        var slash = resolved.IndexOf('/');
        // Host bits are masked off, as the API server's net.ParseCIDR reads them.
        if (slash < 0 || !Ipv4.TryParse(resolved[..slash], out var address)
            || !int.TryParse(resolved[(slash + 1)..], out var prefix) || prefix is < 0 or > 32)
            throw new PolicyFormatException(field, $"'{text}' is not an IPv4 CIDR");
        return Ipv4Cidr.Containing(address, prefix);
    }

    private static JsonElement? Object(JsonElement parent, string name, string at)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        Expect(value, JsonValueKind.Object, $"{at}.{name}");
        return value;
    }

    private static string? String(JsonElement parent, string name, string at)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new PolicyFormatException($"{at}.{name}", $"expected a string, found {Describe(value)}");
    }

    private static JsonElement.ArrayEnumerator Array(JsonElement value, string at)
    {
        Expect(value, JsonValueKind.Array, at);
        return value.EnumerateArray();
    }

    private static void Expect(JsonElement value, JsonValueKind kind, string at)
    {
        if (value.ValueKind != kind) throw new PolicyFormatException(at, $"expected {Article(kind)}, found {Describe(value)}");
    }

    private static string Article(JsonValueKind kind) => kind == JsonValueKind.Array ? "an array" : "an object";

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"the string '{value.GetString()}'",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        _ => "null",
    };
}
