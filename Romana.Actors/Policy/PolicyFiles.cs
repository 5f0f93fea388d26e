using System.Collections.Immutable;
using System.Text.Json;
using Romana.Actors.Addressing;

namespace Romana.Actors.Policy;

/// <summary>A pod as a policy file describes it: labels and named ports; an address and node only where no IPAM gives them.</summary>
public sealed record FilePod(string Namespace, string Name, ImmutableSortedDictionary<string, string> Labels,
    ImmutableArray<NamedPort> NamedPorts, Ipv4? Address, string? Node, Ipv4? NodeAddress)
{
    public string Key => $"{Namespace}/{Name}";
}

/// <summary>What one file holds.</summary>
public sealed record PolicyFileContent(ImmutableArray<PolicyNamespace> Namespaces, ImmutableArray<FilePod> Pods,
    ImmutableArray<NetworkPolicy> Policies)
{
    public static readonly PolicyFileContent Empty = new([], [], []);
}

/// <summary>A pod address from the IPAM: the allocation's pod (<c>ns/name</c>, from CNI_ARGS), its node and the node's address.</summary>
public sealed record IpamPod(string Pod, Ipv4 Address, string Node, Ipv4 NodeAddress);

/// <summary>
/// The files of <c>romana.policy.files</c>: every <c>*.json</c> file of the folder (not its subfolders) holds Kubernetes
/// objects as <c>kubectl get -o json</c> writes them, one object, a JSON array of them, or a <c>List</c> (<c>items</c>):
/// <list type="bullet">
/// <item><c>NetworkPolicy</c> (networking.k8s.io/v1), read as the API server's JSON is.</item>
/// <item><c>Namespace</c>: <c>metadata.name</c> and <c>metadata.labels</c> (<c>kubernetes.io/metadata.name</c> is added, as the
/// API server adds it).</item>
/// <item><c>Pod</c>: <c>metadata.namespace</c> (default "default"), <c>metadata.name</c>, <c>metadata.labels</c>, and the named
/// ports of <c>spec.containers[].ports[]</c>; the address and node come from the IPAM (the allocation's pod, which the CNI ADD
/// records from K8S_POD_NAMESPACE and K8S_POD_NAME), or, for a pod the IPAM does not hold, from <c>status.podIP</c>,
/// <c>spec.nodeName</c> and <c>status.hostIP</c> when the file gives them.</item>
/// </list>
/// Other kinds are ignored. A field of the wrong kind is a <see cref="PolicyFormatException"/> naming the file and the field.
/// </summary>
public static class PolicyFiles
{
    public static IReadOnlyList<string> List(string folder) =>
        Directory.Exists(folder) ? [.. Directory.GetFiles(folder, "*.json").Order(StringComparer.Ordinal)] : [];

    public static PolicyFileContent Read(string path) => Parse(File.ReadAllText(path), Path.GetFileName(path));

    public static PolicyFileContent Parse(string json, string where)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new PolicyFormatException(where, $"not JSON ({e.Message})");
        }
        using (document)
        {
            var namespaces = ImmutableArray.CreateBuilder<PolicyNamespace>();
            var pods = ImmutableArray.CreateBuilder<FilePod>();
            var policies = ImmutableArray.CreateBuilder<NetworkPolicy>();
            foreach (var (item, at) in Items(document.RootElement, where))
            {
                switch (Text(item, "kind", at))
                {
                    case "NetworkPolicy":
                        policies.Add(NetworkPolicyJson.Parse(item, at));
                        break;
                    case "Namespace":
                        var name = Name(item, at);
                        namespaces.Add(new PolicyNamespace(name, Labels(item, at).SetItem(PolicyNamespace.NameLabel, name)));
                        break;
                    case "Pod":
                        pods.Add(Pod(item, at));
                        break;
                    case null:
                        throw new PolicyFormatException($"{at}.kind", "missing");
                }
            }
            return new PolicyFileContent(namespaces.ToImmutable(), pods.ToImmutable(), policies.ToImmutable());
        }
    }

    /// <summary>
    /// The view of the files' content and the IPAM's pods: every pod the IPAM holds for a <c>ns/name</c> (labelled by its file
    /// entry, if any), every file pod with an address of its own that the IPAM does not hold, the files' namespaces and the
    /// namespaces of those pods, and the files' policies. Where two files say the same key, the later file (by name) wins.
    /// </summary>
    public static PolicyView View(IEnumerable<PolicyFileContent> files, IEnumerable<IpamPod> ipam)
    {
        var contents = files.ToList();
        var view = PolicyView.Empty;
        var filePods = contents.SelectMany(c => c.Pods).GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        var pods = new Dictionary<string, ViewPod>(StringComparer.Ordinal);
        foreach (var held in ipam)
        {
            var slash = held.Pod.IndexOf('/');
            if (slash <= 0) continue;
            var (ns, name) = (held.Pod[..slash], held.Pod[(slash + 1)..]);
            filePods.TryGetValue(held.Pod, out var described);
            pods[held.Pod] = new ViewPod(new PolicyPod(ns, name, described?.Labels ?? ImmutableSortedDictionary<string, string>.Empty,
                held.Address, held.NodeAddress, described?.NamedPorts ?? []), held.Node);
        }
        foreach (var pod in filePods.Values.Where(p => !pods.ContainsKey(p.Key) && p.Address is not null))
            pods[pod.Key] = new ViewPod(
                new PolicyPod(pod.Namespace, pod.Name, pod.Labels, pod.Address!.Value, pod.NodeAddress, pod.NamedPorts),
                pod.Node ?? "");
        var namespaces = new Dictionary<string, PolicyNamespace>(StringComparer.Ordinal);
        foreach (var ns in pods.Values.Select(p => p.Pod.Namespace).Distinct())
            namespaces[ns] = new PolicyNamespace(ns, ImmutableSortedDictionary<string, string>.Empty.Add(PolicyNamespace.NameLabel, ns));
        foreach (var ns in contents.SelectMany(c => c.Namespaces)) namespaces[ns.Name] = ns;
        return view with
        {
            Namespaces = view.Namespaces.SetItems(namespaces),
            Pods = view.Pods.SetItems(pods),
            Policies = view.Policies.SetItems(contents.SelectMany(c => c.Policies).Select(p => KeyValuePair.Create(p.Key, p))),
        };
    }

    /// <summary>The changes that make <paramref name="from"/> into <paramref name="to"/>, each with <paramref name="cause"/>.</summary>
    public static ImmutableArray<ViewChange> Diff(PolicyView from, PolicyView to, string cause)
    {
        var changes = ImmutableArray.CreateBuilder<ViewChange>();
        foreach (var key in from.Namespaces.Keys.Where(k => !to.Namespaces.ContainsKey(k)))
            changes.Add(new ViewChange.NamespaceRemoved(key, cause));
        foreach (var (key, ns) in to.Namespaces.Where(n => !from.Namespaces.TryGetValue(n.Key, out var old) || !Same(old, n.Value)))
            changes.Add(new ViewChange.NamespaceSet(ns, cause));
        foreach (var key in from.Pods.Keys.Where(k => !to.Pods.ContainsKey(k))) changes.Add(new ViewChange.PodRemoved(key, cause));
        foreach (var (key, pod) in to.Pods.Where(p => !from.Pods.TryGetValue(p.Key, out var old) || !Same(old, p.Value)))
            changes.Add(new ViewChange.PodSet(pod, cause));
        foreach (var key in from.Policies.Keys.Where(k => !to.Policies.ContainsKey(k)))
            changes.Add(new ViewChange.PolicyRemoved(key, cause));
        foreach (var (key, policy) in to.Policies.Where(p => !from.Policies.TryGetValue(p.Key, out var old) || !Same(old, p.Value)))
            changes.Add(new ViewChange.PolicySet(policy, cause));
        return changes.ToImmutable();
    }

    /// <summary>Equal by content (records holding immutable collections compare those by reference).</summary>
    private static bool Same<T>(T a, T b) =>
        JsonSerializer.Serialize(a, Persistence.RomanaSerializer.Options)
        == JsonSerializer.Serialize(b, Persistence.RomanaSerializer.Options);

    private static IEnumerable<(JsonElement Item, string At)> Items(JsonElement root, string where)
    {
        if (root.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var item in root.EnumerateArray()) yield return Expect(item, $"{where}[{i++}]");
            yield break;
        }
        Expect(root, where);
        if (root.TryGetProperty("kind", out var kind) && kind.ValueKind == JsonValueKind.String && kind.GetString() == "List")
        {
            if (!root.TryGetProperty("items", out var items) || items.ValueKind != JsonValueKind.Array)
                throw new PolicyFormatException($"{where}.items", "expected an array of objects");
            var i = 0;
            foreach (var item in items.EnumerateArray()) yield return Expect(item, $"{where}.items[{i++}]");
            yield break;
        }
        yield return (root, where);
    }

    private static (JsonElement, string) Expect(JsonElement item, string at) =>
        item.ValueKind == JsonValueKind.Object
            ? (item, at)
            : throw new PolicyFormatException(at, $"expected an object, found {item.ValueKind}");

    private static FilePod Pod(JsonElement item, string at)
    {
        var metadata = Property(item, "metadata", at);
        var ns = metadata is { } m ? Text(m, "namespace", $"{at}.metadata") ?? "default" : "default";
        var ports = ImmutableArray.CreateBuilder<NamedPort>();
        var spec = Property(item, "spec", at);
        string? node = null;
        if (spec is { } s)
        {
            node = Text(s, "nodeName", $"{at}.spec");
            var c = 0;
            foreach (var container in Elements(s, "containers", $"{at}.spec"))
            {
                var p = 0;
                var cAt = $"{at}.spec.containers[{c++}]";
                foreach (var port in Elements(container, "ports", cAt))
                {
                    var pAt = $"{cAt}.ports[{p++}]";
                    if (Text(port, "name", pAt) is not { Length: > 0 } name) continue;
                    if (!port.TryGetProperty("containerPort", out var number) || !number.TryGetInt32(out var value)
                        || value is < 1 or > 65535)
                        throw new PolicyFormatException($"{pAt}.containerPort", "expected a port number 1-65535");
                    ports.Add(new NamedPort(name, value, Text(port, "protocol", pAt) switch
                    {
                        null or "TCP" => PolicyProtocol.Tcp,
                        "UDP" => PolicyProtocol.Udp,
                        "SCTP" => PolicyProtocol.Sctp,
                        var other => throw new PolicyFormatException($"{pAt}.protocol", $"'{other}' is not TCP, UDP or SCTP"),
                    }));
                }
            }
        }
        var status = Property(item, "status", at);
        return new FilePod(ns, Name(item, at), Labels(item, at), ports.ToImmutable(),
            Address(status, "podIP", $"{at}.status"), node, Address(status, "hostIP", $"{at}.status"));
    }

    private static Ipv4? Address(JsonElement? parent, string field, string at) =>
        parent is { } p && Text(p, field, at) is { } text
            ? Ipv4.TryParse(text, out var address)
                ? address
                : throw new PolicyFormatException($"{at}.{field}", $"'{text}' is not an IPv4 address")
            : null;

    private static string Name(JsonElement item, string at) =>
        (Property(item, "metadata", at) is { } m ? Text(m, "name", $"{at}.metadata") : null)
        ?? throw new PolicyFormatException($"{at}.metadata.name", "missing");

    private static ImmutableSortedDictionary<string, string> Labels(JsonElement item, string at)
    {
        var labels = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        if (Property(item, "metadata", at) is { } m && Property(m, "labels", $"{at}.metadata") is { } l)
            foreach (var label in l.EnumerateObject())
                labels[label.Name] = label.Value.ValueKind == JsonValueKind.String
                    ? label.Value.GetString()!
                    : throw new PolicyFormatException($"{at}.metadata.labels.{label.Name}",
                        $"expected a string, found {label.Value.ValueKind}");
        return labels.ToImmutable();
    }

    private static JsonElement? Property(JsonElement parent, string name, string at)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.Object
            ? value
            : throw new PolicyFormatException($"{at}.{name}", $"expected an object, found {value.ValueKind}");
    }

    private static IEnumerable<JsonElement> Elements(JsonElement parent, string name, string at)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return [];
        return value.ValueKind == JsonValueKind.Array
            ? value.EnumerateArray()
            : throw new PolicyFormatException($"{at}.{name}", $"expected an array, found {value.ValueKind}");
    }

    private static string? Text(JsonElement parent, string name, string at)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new PolicyFormatException($"{at}.{name}", $"expected a string, found {value.ValueKind}");
    }
}
