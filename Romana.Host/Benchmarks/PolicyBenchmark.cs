using System.Collections.Immutable;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;
using Romana.Host.Policy;

namespace Romana.Host.Benchmarks;

/// <summary>
/// NetworkPolicy on nftables at scale, in a scratch network namespace (romana-nft-bench-RANDOM, removed at the end): a
/// generated world of policies over pods in 50 namespaces, the node hosting some of them. Times compiling and applying the
/// whole table (a fresh adapter each run), and one local pod's label change until the kernel's table shows it (apply, then
/// `list set` through the same nft finds the pod's address in its new peer set), for libnftables in this process, libnftables
/// in a helper process (the daemon's way) and `nft -f`. The adapter's compiler is incremental: the label change compiles only
/// what the pod's change touches.
/// </summary>
public static class PolicyBenchmark
{
    public sealed record Options(int Policies, int Pods, int Local, int Runs);

    public sealed record Figure(string Backend, string Measure, double MedianMs, IReadOnlyList<double> RunsMs);

    public sealed record Result(string Machine, string LoadBefore, string LoadAfter, int Policies, int Pods, int Local, int Chains,
        int Sets, int FullStatements, int ChangeStatements, IReadOnlyList<Figure> Figures);

    public const int Namespaces = 50;
    private const int Apps = 200;

    public static async Task<Result> RunAsync(Options options, Action<string>? progress, CancellationToken cancellation)
    {
        var loadBefore = Load();
        var world = World(options.Policies, options.Pods);
        var local = world.Pods.Take(options.Local).Select(p => p.Key).ToHashSet();
        var changed = Relabel(world, 0);
        var netns = $"romana-nft-bench-{Random.Shared.Next(0, 1 << 24):x6}";
        Ip("netns", "add", netns);
        try
        {
            var figures = new List<Figure>();
            var samples = new Dictionary<(NftablesBackend, string), List<double>>();
            void Add(NftablesBackend backend, string measure, double ms)
            {
                if (!samples.TryGetValue((backend, measure), out var list)) samples[(backend, measure)] = list = [];
                list.Add(ms);
            }
            var (fullStatements, changeStatements) = (0, 0);
            var compiled = NftCompiler.Compile(world, local, 1);
            var relabelled = NftCompiler.Compile(changed, local, 1);
            var (toChanged, toWorld) = (NewPeerSet(compiled, relabelled, changed.Pods[0].Address),
                NewPeerSet(relabelled, compiled, world.Pods[0].Address));
            // Interleaved: each run measures both backends, so that a burst of load weighs on both alike.
            for (var run = 0; run < options.Runs; run++)
            {
                foreach (var backend in new[] { NftablesBackend.Library, NftablesBackend.Helper, NftablesBackend.CommandLine })
                {
                    var started = Stopwatch.StartNew();
                    using var dataplane = new NftablesPolicyDataplane(netns, backend);
                    // The first command pays the start (the helper process's, libnftables' context, an nft process): once
                    // per adapter in the daemon, so apart from the figures of the whole table
                    await dataplane.Nft.RunAsync("list tables", false, cancellation);
                    Add(backend, "start (first command)", started.Elapsed.TotalMilliseconds);
                    var whole = await dataplane.ApplyAsync(world, local, cancellation);
                    fullStatements = whole.Statements;
                    Add(backend, "compile whole table", whole.Compile.TotalMilliseconds);
                    Add(backend, "apply whole table", whole.Apply.TotalMilliseconds);
                    Add(backend, "compile + apply whole table", (whole.Compile + whole.Apply).TotalMilliseconds);
                    foreach (var (next, shown) in new[] { (changed, toChanged), (world, toWorld) })
                    {
                        var clock = Stopwatch.StartNew();
                        var change = await dataplane.ApplyAsync(next, local, cancellation);
                        var applied = clock.Elapsed.TotalMilliseconds;
                        await WaitVisibleAsync(dataplane, shown, next.Pods[0].Address, cancellation);
                        changeStatements = change.Statements;
                        Add(backend, "label change: compile", change.Compile.TotalMilliseconds);
                        Add(backend, "label change: apply", change.Apply.TotalMilliseconds);
                        Add(backend, "label change: compile + apply", applied);
                        Add(backend, "label change: until nft list shows it", clock.Elapsed.TotalMilliseconds);
                    }
                    progress?.Invoke(
                        $"run {run + 1}/{options.Runs} {backend}: whole {(whole.Compile + whole.Apply).TotalMilliseconds:0} ms");
                }
            }
            foreach (var ((backend, measure), list) in samples)
                figures.Add(new Figure(BackendName(backend), measure,
                    BenchStatistics.Median(list), list));
            return new Result(Machine(), loadBefore, Load(), options.Policies, options.Pods, local.Count, compiled.Chains.Count,
                compiled.Sets.Count, fullStatements, changeStatements, figures);
        }
        finally
        {
            Ip("netns", "del", netns);
        }
    }

    public static string BackendName(NftablesBackend backend) => backend switch
    {
        NftablesBackend.Library => "libnftables",
        NftablesBackend.Helper => "libnftables helper process",
        _ => "nft -f",
    };

    /// <summary>A peer set that holds <paramref name="address"/> after the change and did not before.</summary>
    private static string NewPeerSet(NftRuleset before, NftRuleset after, Ipv4 address) =>
        after.Sets.Values.First(s => s.Name.StartsWith("p.", StringComparison.Ordinal) && s.Elements.Contains(address.ToString())
            && !(before.Sets.TryGetValue(s.Name, out var old) && old.Elements.Contains(address.ToString()))).Name;

    /// <summary>Lists, through the adapter's own nft, the set the relabelled pod must now be in, until it is there.</summary>
    private static async Task WaitVisibleAsync(NftablesPolicyDataplane dataplane, string set, Ipv4 address, CancellationToken cancellation)
    {
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var listed = await dataplane.Nft.RunAsync($"list set {NftCompiler.TableRef} {set}", false, cancellation);
            if (Regex.IsMatch(listed, $@"(?<![0-9.]){Regex.Escape(address.ToString())}(?![0-9.])")) return;
        }
        throw new InvalidOperationException($"the kernel never showed {address} in {set}");
    }

    /// <summary>
    /// The generated world: pod k in namespace ns(k mod 50) with app=a(k mod 200), tier=t(k mod 4), a named port http
    /// (8080/TCP); policy j in namespace ns(j mod 50) selects app=a(j mod 200) (so each pod is selected by policies/200) and
    /// takes TCP 80 and 8080-8090 from the next app and from one team's tier, and http from an ipBlock with an except; every
    /// second policy also limits egress to another app on http and UDP 53.
    /// </summary>
    public static PolicyWorld World(int policies, int pods)
    {
        var namespaces = Enumerable.Range(0, Namespaces).ToImmutableSortedDictionary(i => $"ns{i}", i => new PolicyNamespace($"ns{i}",
            Labels((PolicyNamespace.NameLabel, $"ns{i}"), ("team", $"t{i % 5}"))), StringComparer.Ordinal);
        var podList = Enumerable.Range(0, pods).Select(k => new PolicyPod($"ns{k % Namespaces}", $"p{k}",
            Labels(("app", $"a{k % Apps}"), ("tier", $"t{k % 4}")), new Ipv4(0x0a640000u + (uint)(k / 250 * 256 + k % 250 + 1)),
            new Ipv4(0x0a630001u + (uint)(k / 100 * 256)), [new NamedPort("http", 8080, PolicyProtocol.Tcp)])).ToImmutableArray();
        var policyList = Enumerable.Range(0, policies).Select(j =>
        {
            var ingress = ImmutableArray.Create(
                new PolicyRule([Peer(("app", $"a{(j + 1) % Apps}")), new PolicyPeer(Selector(("tier", $"t{j % 4}")),
                    Selector(("team", $"t{j % 5}")), null)],
                    [new PolicyPort(PolicyProtocol.Tcp, 80, null, null), new PolicyPort(PolicyProtocol.Tcp, 8080, null, 8090)]),
                new PolicyRule([new PolicyPeer(null, null, new IpBlock(Ipv4Cidr.Parse("10.100.0.0/16"),
                    [Ipv4Cidr.Parse($"10.100.{j % 40}.0/24")]))], [new PolicyPort(PolicyProtocol.Tcp, null, "http", null)]));
            var egress = j % 2 == 0
                ? ImmutableArray.Create(new PolicyRule([Peer(("app", $"a{(j + 7) % Apps}"))],
                    [new PolicyPort(PolicyProtocol.Tcp, null, "http", null), new PolicyPort(PolicyProtocol.Udp, 53, null, null)]))
                : [];
            return new NetworkPolicy($"ns{j % Namespaces}", $"policy{j}", Selector(("app", $"a{j % Apps}")),
                PolicyDirections.Ingress | (egress.IsEmpty ? PolicyDirections.None : PolicyDirections.Egress), ingress, egress);
        }).ToImmutableArray();
        return new PolicyWorld(namespaces, podList, policyList);
    }

    /// <summary>The world with pod <paramref name="index"/> moved to another app and tier (other policies, other peer sets).</summary>
    public static PolicyWorld Relabel(PolicyWorld world, int index)
    {
        var pod = world.Pods[index];
        var (app, tier) = (int.Parse(pod.Labels["app"][1..]), int.Parse(pod.Labels["tier"][1..]));
        var labels = pod.Labels.SetItem("app", $"a{(app + 50) % Apps}").SetItem("tier", $"t{(tier + 1) % 4}");
        return world with { Pods = world.Pods.SetItem(index, pod with { Labels = labels }) };
    }

    private static PolicyPeer Peer((string, string) label) => new(Selector(label), null, null);

    private static LabelSelector Selector(params (string Key, string Value)[] labels) => new(Labels(labels), []);

    private static ImmutableSortedDictionary<string, string> Labels(params (string Key, string Value)[] labels) =>
        labels.ToImmutableSortedDictionary(l => l.Key, l => l.Value, StringComparer.Ordinal);

    private static void Ip(params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"ip {string.Join(' ', arguments)}: {error.Trim()}");
    }

    private static string Load() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private static string Machine() =>
        $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, " +
        $".NET {Environment.Version}";
}
