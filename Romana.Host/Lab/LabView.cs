using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Romana.Host.Lab;

/// <summary>A ping every 50 ms from a pod's namespace for a while; the outage is the lost pings times 50 ms.</summary>
public sealed class PingTrain
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    public sealed record Outcome(int Sent, int Received)
    {
        public int Lost => Sent - Received;
        public TimeSpan Outage => Interval * Lost;
        public override string ToString() => $"{Sent} sent, {Received} answered, {Lost} lost = {Outage.TotalSeconds:0.00} s";
    }

    public required Task<Outcome> Result { get; init; }

    public static PingTrain Start(LabView.LabPodView from, string to, TimeSpan duration)
    {
        var count = (int)(duration / Interval);
        return new PingTrain
        {
            Result = Task.Run(() =>
            {
                var run = LabShell.Run("ip", ["netns", "exec", from.Netns, "ping", "-n", "-q", "-i", "0.05", "-W", "1",
                    "-c", count.ToString(CultureInfo.InvariantCulture), to], timeout: duration + TimeSpan.FromSeconds(10));
                var match = Regex.Match(run.Output, @"(\d+) packets transmitted, (\d+) (packets )?received");
                if (!match.Success) throw new InvalidOperationException($"ping said: {run.Output} {run.Error}");
                return new Outcome(int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture),
                    int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture));
            }),
        };
    }
}

/// <summary>The lab as <c>romana lab status --json</c> shows it now, with the questions a failover asks of it: which pods reach
/// which through a forwarder, and whether EC2 routes every pod of a live node through a live node of its subnet.</summary>
public sealed class LabView
{
    public sealed record LabNodeView(string Name, string Netns, string Zone, string Subnet, string Ip, string Eni, int Pid)
    {
        public string Folder => Path.Combine(LabLayout.RunFolder, "nodes", Name);
        public string Socket => Path.Combine(Folder, "cni.sock");
        public string Gateway => Ip[..Ip.LastIndexOf('.')] + ".1";
    }

    public sealed record LabPodView(string Name, string Netns, string Node, string Ip);

    public sealed record LabBastionView(string Name, string Netns, string Subnet, string Ip);

    public sealed record PodPath(LabPodView Source, LabPodView Target, string Forwarder);

    public required IReadOnlyList<LabNodeView> Nodes { get; init; }
    public required IReadOnlyList<LabPodView> Pods { get; init; }
    public required IReadOnlyList<LabBastionView> Bastions { get; init; }
    public required IReadOnlyDictionary<string, IReadOnlyList<LabRoute>> Tables { get; init; }
    public required IReadOnlyDictionary<string, IReadOnlyList<string>> TableSubnets { get; init; }
    public string? RouteManager { get; init; }

    public static LabView Now()
    {
        using var text = new StringWriter();
        if (LabRunner.StatusAsync(json: true, text).GetAwaiter().GetResult() != 0) throw new LabException("no lab is up");
        var json = JsonNode.Parse(text.ToString())!;
        return new LabView
        {
            Nodes = [.. json["nodes"]!.AsArray().Select(n => new LabNodeView(S(n, "name"), S(n, "netns"), S(n, "zone"), S(n, "subnet"),
                S(n, "ip"), S(n, "eni"), n!["pid"]?.GetValue<int>() ?? 0))],
            Pods = [.. json["pods"]!.AsArray().Select(p => new LabPodView(S(p, "name"), S(p, "netns"), S(p, "node"), S(p, "ip")))],
            Bastions = [.. json["bastions"]!.AsArray().Select(b => new LabBastionView(S(b, "name"), S(b, "netns"), S(b, "subnet"),
                S(b, "ip")))],
            Tables = json["routeTables"]!.AsArray().ToDictionary(t => S(t, "id"),
                t => (IReadOnlyList<LabRoute>)[.. t!["routes"]!.AsArray().Select(r => new LabRoute(S(r, "cidr"), S(r, "target")))]),
            TableSubnets = json["routeTables"]!.AsArray().ToDictionary(t => S(t, "id"),
                t => (IReadOnlyList<string>)[.. t!["subnets"]!.AsArray().Select(s => s!.GetValue<string>())]),
            RouteManager = json["routeManager"]?.GetValue<string>(),
        };
    }

    private static string S(JsonNode? node, string name) => node![name]!.GetValue<string>();

    public LabNodeView Node(string? name) => Nodes.First(n => n.Name == name);

    private string TableOf(LabPodView pod) => TableSubnets.First(t => t.Value.Contains(Node(pod.Node).Subnet)).Key;

    /// <summary>The node a table sends a pod's packets to: the target of the most specific route of Romana's that holds it.</summary>
    public string? FirstHop(string table, string ip) =>
        LabRoute.For(Tables[table], ip) is { } route ? Nodes.FirstOrDefault(n => n.Eni == route.Target)?.Name : null;

    /// <summary>Pod pairs across zones whose packets go through a forwarder (a node other than the target's).</summary>
    public IEnumerable<PodPath> ForwardedPaths() =>
        from target in Pods
        from source in Pods
        where Node(source.Node).Zone != Node(target.Node).Zone
        let hop = FirstHop(TableOf(source), target.Ip)
        where hop is not null && hop != target.Node && hop != source.Node
        select new PodPath(source, target, hop);

    /// <summary>Pod pairs across zones whose packets go straight to the target's node, touching none of the nodes given.</summary>
    public IEnumerable<PodPath> DirectPaths(IReadOnlyList<string> exceptNodes) =>
        from target in Pods
        from source in Pods
        where Node(source.Node).Zone != Node(target.Node).Zone
            && !exceptNodes.Contains(source.Node) && !exceptNodes.Contains(target.Node)
        let hop = FirstHop(TableOf(source), target.Ip)
        where hop == target.Node
        select new PodPath(source, target, hop!);

    /// <summary>Every table's routes that Romana does not own (the local route, the internet gateway's).</summary>
    public IReadOnlyList<string> ForeignRoutes() =>
        [.. Tables.SelectMany(t => t.Value.Where(r => !r.ToEni)
            .Select(r => $"{t.Key} {r.Cidr} {r.Target}")).Order(StringComparer.Ordinal)];

    /// <summary>
    /// Every pod on a live node is reached, from every table (its own subnet's included: instances that are not nodes use it),
    /// through a live node of its subnet.
    /// </summary>
    public bool Converged(IReadOnlyList<string> dead) =>
        Pods.Where(p => !dead.Contains(p.Node)).All(pod => Tables.Keys
            .All(table => FirstHop(table, pod.Ip) is { } hop && !dead.Contains(hop) && Node(hop).Subnet == Node(pod.Node).Subnet));
}
