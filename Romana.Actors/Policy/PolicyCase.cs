using System.Collections.Immutable;
using System.Text.Json;
using System.Text.RegularExpressions;
using Romana.Actors.Addressing;

namespace Romana.Actors.Policy;

/// <summary>One probe of a case: a port and protocol, and the pairs it denies, then allows back, in order.</summary>
public sealed record CaseProbe(int Port, PolicyProtocol Protocol, ImmutableArray<(string From, string To)> Deny,
    ImmutableArray<(string From, string To)> Allow)
{
    /// <summary>Every pair allowed, minus the deny pairs, plus the allow pairs; <c>*</c> and <c>ns/*</c> are patterns.</summary>
    public bool Expected(string from, string to)
    {
        var allowed = true;
        foreach (var (f, t) in Deny)
            if (PolicyCase.Matches(f, from) && PolicyCase.Matches(t, to)) allowed = false;
        foreach (var (f, t) in Allow)
            if (PolicyCase.Matches(f, from) && PolicyCase.Matches(t, to)) allowed = true;
        return allowed;
    }
}

/// <summary>
/// A truth table of <c>../shared/conformance/netpol</c> (its README is the format): pods <c>ns/name</c> in namespaces
/// x, y, z, each serving TCP, UDP and SCTP on 80 and 81 with ports named <c>serve-PORT-PROTO</c>; policies as kubectl
/// reads them, whose ipBlocks may name a pod's address as <c>{ns/pod}/N</c>; probes. The policies are kept as JSON until
/// the runner has chosen the pods' addresses.
/// </summary>
public sealed partial record PolicyCase(string Name, string File, ImmutableArray<string> Pods,
    ImmutableDictionary<string, ImmutableSortedDictionary<string, string>> NamespaceLabels, ImmutableArray<string> PolicyJson,
    ImmutableArray<CaseProbe> Probes)
{
    public static readonly ImmutableArray<string> CaseNamespaces = ["x", "y", "z"];
    public static readonly ImmutableArray<int> ServedPorts = [80, 81];
    public static readonly ImmutableArray<PolicyProtocol> ServedProtocols = [PolicyProtocol.Tcp, PolicyProtocol.Udp, PolicyProtocol.Sctp];

    public static string PortName(int port, PolicyProtocol protocol) => $"serve-{port}-{protocol.ToString().ToLowerInvariant()}";

    public static ImmutableArray<NamedPort> NamedPorts { get; } =
        [.. ServedPorts.SelectMany(p => ServedProtocols.Select(proto => new NamedPort(PortName(p, proto), p, proto)))];

    /// <summary>Reads a case file; anything malformed is a <see cref="PolicyFormatException"/> naming the file and field.</summary>
    public static PolicyCase Load(string path)
    {
        string text;
        try
        {
            text = System.IO.File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PolicyFormatException(path, $"cannot be read ({e.Message})");
        }
        try
        {
            using var document = JsonDocument.Parse(text);
            return Read(document.RootElement, path);
        }
        catch (JsonException e)
        {
            throw new PolicyFormatException(path, $"not JSON ({e.Message})");
        }
    }

    /// <summary>The case files of each path (a file, or every <c>*.json</c> of a folder, in name order).</summary>
    public static IReadOnlyList<string> Files(IEnumerable<string> paths) => paths.SelectMany<string, string>(path =>
        Directory.Exists(path)
            ? Directory.GetFiles(path, "*.json").Order(StringComparer.Ordinal)
            : System.IO.File.Exists(path) ? [path] : throw new PolicyFormatException(path, "no such file or folder"))
        .ToList();

    private static PolicyCase Read(JsonElement root, string file)
    {
        string Field(string name) => $"{file}: {name}";
        if (root.ValueKind != JsonValueKind.Object) throw new PolicyFormatException(file, "expected a JSON object");
        var name = root.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
            ? n.GetString()!
            : throw new PolicyFormatException(Field("name"), "missing or not a string");
        var pods = Strings(root, "pods", file);
        foreach (var pod in pods)
            if (!PodPattern().IsMatch(pod) || !CaseNamespaces.Contains(pod[..pod.IndexOf('/')]))
                throw new PolicyFormatException(Field("pods"), $"'{pod}' is not ns/name with ns one of x, y, z");
        if (pods.Distinct().Count() != pods.Length) throw new PolicyFormatException(Field("pods"), "a pod is listed twice");
        var labels = ImmutableDictionary.CreateBuilder<string, ImmutableSortedDictionary<string, string>>();
        if (root.TryGetProperty("namespaceLabels", out var nsLabels) && nsLabels.ValueKind != JsonValueKind.Null)
        {
            if (nsLabels.ValueKind != JsonValueKind.Object) throw new PolicyFormatException(Field("namespaceLabels"), "expected an object");
            foreach (var ns in nsLabels.EnumerateObject())
            {
                if (ns.Value.ValueKind != JsonValueKind.Object)
                    throw new PolicyFormatException(Field($"namespaceLabels.{ns.Name}"), "expected an object of labels");
                labels[ns.Name] = ns.Value.EnumerateObject().ToImmutableSortedDictionary(p => p.Name,
                    p => p.Value.ValueKind == JsonValueKind.String
                        ? p.Value.GetString()!
                        : throw new PolicyFormatException(Field($"namespaceLabels.{ns.Name}.{p.Name}"), "expected a string"),
                    StringComparer.Ordinal);
            }
        }
        if (!root.TryGetProperty("policies", out var policies) || policies.ValueKind != JsonValueKind.Array)
            throw new PolicyFormatException(Field("policies"), "missing or not an array");
        var policyJson = policies.EnumerateArray().Select(p => p.GetRawText()).ToImmutableArray();
        if (!root.TryGetProperty("probes", out var probes) || probes.ValueKind != JsonValueKind.Array)
            throw new PolicyFormatException(Field("probes"), "missing or not an array");
        var probeList = ImmutableArray.CreateBuilder<CaseProbe>();
        var i = 0;
        foreach (var probe in probes.EnumerateArray())
        {
            var at = $"probes[{i++}]";
            if (probe.ValueKind != JsonValueKind.Object) throw new PolicyFormatException(Field(at), "expected an object");
            var port = probe.TryGetProperty("port", out var p) && p.ValueKind == JsonValueKind.Number && p.TryGetInt32(out var number)
                && number is >= 1 and <= 65535
                ? number
                : throw new PolicyFormatException(Field($"{at}.port"), "missing or not a port number");
            var protocolText = probe.TryGetProperty("protocol", out var proto) && proto.ValueKind == JsonValueKind.String
                ? proto.GetString()
                : null;
            var protocol = protocolText switch
            {
                "TCP" => PolicyProtocol.Tcp,
                "UDP" => PolicyProtocol.Udp,
                "SCTP" => PolicyProtocol.Sctp,
                var other => throw new PolicyFormatException(Field($"{at}.protocol"), $"'{other}' is not TCP, UDP or SCTP"),
            };
            probeList.Add(new CaseProbe(port, protocol, Pairs(probe, "deny", $"{file}: {at}"), Pairs(probe, "allow", $"{file}: {at}")));
        }
        var read = new PolicyCase(name, file, pods, labels.ToImmutable(), policyJson, probeList.ToImmutable());
        read.World(CaseAddresses.Pod); // every policy is read once here, so a bad one names the file
        return read;
    }

    /// <summary>
    /// The case's world with the pods at the addresses the runner chose (<paramref name="addressOf"/> by pod index) and,
    /// when given, their node's address.
    /// </summary>
    public PolicyWorld World(Func<int, Ipv4> addressOf, Ipv4? nodeAddress = null)
    {
        var pods = Pods.Select((key, i) => new PolicyPod(key[..key.IndexOf('/')], key[(key.IndexOf('/') + 1)..],
            ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, [KeyValuePair.Create("pod", key[(key.IndexOf('/') + 1)..])]),
            addressOf(i), nodeAddress, NamedPorts)).ToImmutableArray();
        var namespaces = CaseNamespaces.ToImmutableSortedDictionary(ns => ns, ns => new PolicyNamespace(ns,
            (NamespaceLabels.GetValueOrDefault(ns) ?? ImmutableSortedDictionary<string, string>.Empty)
            .SetItem(PolicyNamespace.NameLabel, ns)),
            StringComparer.Ordinal);
        var byKey = pods.ToDictionary(p => p.Key);
        string Resolve(string cidr)
        {
            var match = PodCidrPattern().Match(cidr);
            if (!match.Success) return cidr;
            return byKey.TryGetValue(match.Groups[1].Value, out var pod)
                ? $"{pod.Address}/{match.Groups[2].Value}"
                : throw new PolicyFormatException(cidr, $"names pod {match.Groups[1].Value}, which the case does not have");
        }
        var policies = PolicyJson.Select((json, i) => NetworkPolicyJson.Parse(json, $"{File}: policies[{i}]", Resolve)).ToImmutableArray();
        return new PolicyWorld(namespaces, pods, policies);
    }

    internal static bool Matches(string pattern, string pod) =>
        pattern == "*" || pattern == pod
        || (pattern.EndsWith("/*", StringComparison.Ordinal) && pod.StartsWith(pattern[..^1], StringComparison.Ordinal));

    private static ImmutableArray<string> Strings(JsonElement root, string field, string file)
    {
        if (!root.TryGetProperty(field, out var list) || list.ValueKind != JsonValueKind.Array)
            throw new PolicyFormatException($"{file}: {field}", "missing or not an array");
        return [.. list.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String
            ? e.GetString()!
            : throw new PolicyFormatException($"{file}: {field}", "expected strings"))];
    }

    private static ImmutableArray<(string, string)> Pairs(JsonElement probe, string field, string at)
    {
        if (!probe.TryGetProperty(field, out var list) || list.ValueKind == JsonValueKind.Null) return [];
        if (list.ValueKind != JsonValueKind.Array) throw new PolicyFormatException($"{at}.{field}", "expected an array of [from, to]");
        return [.. list.EnumerateArray().Select((pair, i) =>
            pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2
            && pair[0].ValueKind == JsonValueKind.String && pair[1].ValueKind == JsonValueKind.String
                ? (pair[0].GetString()!, pair[1].GetString()!)
                : throw new PolicyFormatException($"{at}.{field}[{i}]", "expected [from, to] of two strings"))];
    }

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex PodPattern();

    [GeneratedRegex(@"^\{([^}]+)\}/(\d+)$")]
    private static partial Regex PodCidrPattern();
}

/// <summary>One probe pair that did not go as the case says.</summary>
public sealed record CaseMismatch(int Probe, CaseProbe Of, string From, string To, bool Expected, bool Got)
{
    public override string ToString() =>
        $"probe {Probe} ({Of.Port}/{Of.Protocol.ToString().ToUpperInvariant()}): {From} -> {To}: " +
        $"expected {Word(Expected)}, got {Word(Got)}";

    private static string Word(bool allowed) => allowed ? "allow" : "deny";
}

/// <summary>
/// Where every runner of a case (the evaluator and real packets alike) puts its pods: 10.0.0.1, .2, ... on a node at 10.0.255.254.
/// </summary>
public static class CaseAddresses
{
    public static readonly Ipv4Cidr PodCidr = Ipv4Cidr.Parse("10.0.0.0/16");
    public static readonly Ipv4 Node = Ipv4.Parse("10.0.255.254");

    public static Ipv4 Pod(int index) => new(PodCidr.Network.Value + (uint)index + 1);
}

/// <summary>Runs a case's probes through a decision (the pure evaluator, or real packets) and lists what disagrees.</summary>
public static class PolicyCaseRunner
{
    /// <summary>Every ordered pair of distinct pods for every probe, with what the case expects.</summary>
    public static IEnumerable<(int Index, CaseProbe Probe, string From, string To, bool Expected)> Questions(PolicyCase @case) =>
        @case.Probes.SelectMany((probe, i) => @case.Pods.SelectMany(from => @case.Pods.Where(to => to != from)
            .Select(to => (i, probe, from, to, probe.Expected(from, to)))));

    /// <summary>The pure evaluator's answers, the pods and their node at <see cref="CaseAddresses"/>.</summary>
    public static ImmutableArray<CaseMismatch> Evaluate(PolicyCase @case)
    {
        var world = @case.World(CaseAddresses.Pod, CaseAddresses.Node);
        var pods = world.Pods.ToDictionary(p => p.Key);
        return [.. Questions(@case)
            .Select(q => (q, got: PolicyEvaluator.Allows(world, pods[q.From], pods[q.To], q.Probe.Port, q.Probe.Protocol)))
            .Where(r => r.got != r.q.Expected)
            .Select(r => new CaseMismatch(r.q.Index, r.q.Probe, r.q.From, r.q.To, r.q.Expected, r.got))];
    }
}
