using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;
using Romana.Actors.Tests.Support;
using Romana.Host.Policy;

namespace Romana.Actors.Tests.Policy;

/// <summary>
/// The nftables adapter on a real kernel: a node namespace routing between pod namespaces, the world compiled and applied
/// there, and real TCP connections that the rules let through or drop.
/// </summary>
public class NftablesPolicyDataplaneTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    // Namespaces x (team=red) and y (team=blue); pods x/a (app=a), x/b (app=b), y/c (app=c), all on the lab's node.
    internal static PolicyPod Pod(string ns, string name, string address, params (string, string)[] labels) =>
        new(ns, name, labels.ToImmutableSortedDictionary(l => l.Item1, l => l.Item2, StringComparer.Ordinal), Ipv4.Parse(address),
            Ipv4.Parse(NftNodeLab.NodeAddress), [new NamedPort("http", 81, PolicyProtocol.Tcp)]);

    internal static readonly PolicyPod Xa = Pod("x", "a", "10.77.1.1", ("app", "a"));
    internal static readonly PolicyPod Xb = Pod("x", "b", "10.77.1.2", ("app", "b"));
    internal static readonly PolicyPod Yc = Pod("y", "c", "10.77.1.3", ("app", "c"));

    internal static PolicyWorld World(IEnumerable<PolicyPod> pods, params string[] policies) => new(
        new[] { ("x", "red"), ("y", "blue") }.ToImmutableSortedDictionary(n => n.Item1, n => new PolicyNamespace(n.Item1,
            ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal,
                [KeyValuePair.Create(PolicyNamespace.NameLabel, n.Item1), KeyValuePair.Create("team", n.Item2)])), StringComparer.Ordinal),
        [.. pods],
        [.. policies.Select((p, i) => NetworkPolicyJson.Parse(p, $"policies[{i}]"))]);

    internal static PolicyWorld World(params string[] policies) => World([Xa, Xb, Yc], policies);

    internal static string NetPol(string ns, string name, string spec) => $$"""
        {"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"{{name}}","namespace":"{{ns}}"},"spec":{{spec}}}
        """;

    /// <summary>x/b takes TCP 80 from app=a only.</summary>
    internal static readonly string BFromAOn80 = NetPol("x", "b-from-a", """
        {"podSelector":{"matchLabels":{"app":"b"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"a"}}}],
         "ports":[{"protocol":"TCP","port":80}]}]}
        """);

    internal static readonly IReadOnlySet<string> AllLocal = new HashSet<string> { Xa.Key, Xb.Key, Yc.Key };

    /// <summary>A lab with the three pods, each serving TCP 80 and 81.</summary>
    internal static (NftNodeLab Lab, Dictionary<PolicyPod, string> Netns) ThreePods()
    {
        var lab = new NftNodeLab();
        try
        {
            var netns = new Dictionary<PolicyPod, string>();
            foreach (var pod in new[] { Xa, Xb, Yc })
            {
                netns[pod] = lab.AddPod($"{pod.Namespace}-{pod.Name}", pod.Address.ToString());
                lab.ServeTcp(netns[pod], 80);
                lab.ServeTcp(netns[pod], 81);
            }
            return (lab, netns);
        }
        catch
        {
            lab.Dispose();
            throw;
        }
    }

    [SkippableFact]
    public async Task Real_tcp_connections_between_pod_namespaces_obey_the_applied_world()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        var (lab, netns) = ThreePods();
        using var _ = lab;
        using var dataplane = new NftablesPolicyDataplane(lab.Node);
        // Before any policy, everything connects (the lab routes).
        Assert.True(await lab.ConnectsAsync(netns[Yc], Xb.Address.ToString(), 81));

        var world = World(BFromAOn80);
        var applied = await dataplane.ApplyAsync(world, AllLocal, None);

        Assert.True(applied.Whole);
        var expected = new (PolicyPod From, PolicyPod To, int Port, bool Allowed)[]
        {
            (Xa, Xb, 80, true), (Xa, Xb, 81, false), (Yc, Xb, 80, false), (Yc, Xb, 81, false),
            (Xb, Xa, 80, true), (Xb, Yc, 81, true), (Yc, Xa, 80, true),
        };
        foreach (var (from, to, port, allowed) in expected)
        {
            Assert.Equal(allowed, PolicyEvaluator.Allows(world, from, to, port, PolicyProtocol.Tcp));
            Assert.True(allowed == await lab.ConnectsAsync(netns[from], to.Address.ToString(), port),
                $"{from.Key} -> {to.Key}:{port} should be {(allowed ? "allowed" : "dropped")}");
        }
        // Pod to its own node is never filtered: x/b, closed to all but app=a, still reaches the node.
        lab.ServeTcp(lab.Node, 80);
        Assert.True(await lab.ConnectsAsync(netns[Xb], NftNodeLab.NodeAddress, 80));
        Assert.True(await lab.ConnectsAsync(lab.Node, Xb.Address.ToString(), 81));
    }

    [SkippableFact]
    public async Task Dropped_packets_are_counted_for_the_pod_and_direction_that_dropped_them()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        var (lab, netns) = ThreePods();
        using var _ = lab;
        using var dataplane = new NftablesPolicyDataplane(lab.Node);
        await dataplane.ApplyAsync(World(BFromAOn80), AllLocal, None);
        Assert.Equal([new PolicyDrops(Xb.Key, PolicyDirections.Ingress, 0, 0)], await dataplane.DropsAsync(None));

        Assert.False(await lab.ConnectsAsync(netns[Yc], Xb.Address.ToString(), 80));

        var drops = Assert.Single(await dataplane.DropsAsync(None));
        Assert.Equal((Xb.Key, PolicyDirections.Ingress), (drops.Pod, drops.Direction));
        Assert.True(drops.Packets >= 1, $"{drops.Packets} packets counted");
    }

    [SkippableFact]
    public async Task Another_table_is_byte_identical_after_apply_update_and_remove()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        var (lab, _) = ThreePods();
        using var __ = lab;
        var made = NetnsLab.Exec(lab.Node, "nft", ["-f", "-"], """
            table inet other {
                set friends { type ipv4_addr; elements = { 10.77.1.1, 192.0.2.1 }; }
                chain forward { type filter hook forward priority -10; policy accept; ip saddr @friends counter accept; }
            }
            table ip romana_policy_not { chain c { ip daddr 10.77.1.2 counter; }; }
            """);
        Assert.True(made.Exit == 0, made.Error);
        string Others() => lab.Nft("list", "table", "inet", "other") + lab.Nft("list", "table", "ip", "romana_policy_not");
        var before = Others();
        using var dataplane = new NftablesPolicyDataplane(lab.Node);

        await dataplane.ApplyAsync(World(BFromAOn80), AllLocal, None);
        Assert.Equal(before, Others());
        await dataplane.ApplyAsync(World([Xa, Xb with { Labels = Xb.Labels.SetItem("app", "z") }, Yc], BFromAOn80), AllLocal, None);
        Assert.Equal(before, Others());
        await dataplane.RemoveAsync(None);
        Assert.Equal(before, Others());
        Assert.DoesNotContain("table inet romana_policy", lab.Nft("list", "tables").Split('\n').Select(l => l.Trim()));
    }

    /// <summary>
    /// The daemon's way to nftables: libnftables in a helper process. This process holds over 1,024 descriptors (its next
    /// one is numbered 1024 or more, where libnftables' select() in this process would abort it), and the adapter still
    /// applies a whole table and a change, which real connections obey; a refused transaction gives nft's message and the
    /// next one works; the helper's own descriptors stay under 1024.
    /// </summary>
    [SkippableFact]
    public async Task The_helper_process_applies_for_a_process_holding_more_than_1024_descriptors()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        var (lab, netns) = ThreePods();
        using var _ = lab;
        var held = new List<Microsoft.Win32.SafeHandles.SafeFileHandle>();
        try
        {
            // Other tests run beside this one and open and close their own: hold 1,100 at least, some numbered over 1023
            while (Directory.GetFiles("/proc/self/fd").Length < 1100 || held.Count < 1100) held.Add(File.OpenHandle("/dev/null"));
            Assert.Contains(held, handle => handle.DangerousGetHandle() >= 1024);
            var nft = Assert.IsType<NftHelperProcess>(Nftables.Open(lab.Node));
            using var dataplane = new NftablesPolicyDataplane(nft);

            Assert.True((await dataplane.ApplyAsync(World(BFromAOn80), AllLocal, None)).Whole);
            Assert.True(await lab.ConnectsAsync(netns[Xa], Xb.Address.ToString(), 80));
            Assert.False(await lab.ConnectsAsync(netns[Yc], Xb.Address.ToString(), 80));
            // x/a leaves app=a: it may not any more; then x/b leaves app=b: no policy selects it, y/c may
            Assert.False((await dataplane.ApplyAsync(World([Xa with { Labels = Xa.Labels.SetItem("app", "q") }, Xb, Yc], BFromAOn80),
                AllLocal, None)).Whole);
            Assert.False(await lab.ConnectsAsync(netns[Xa], Xb.Address.ToString(), 80));
            Assert.False((await dataplane.ApplyAsync(World([Xa, Xb with { Labels = Xb.Labels.SetItem("app", "z") }, Yc], BFromAOn80),
                AllLocal, None)).Whole);
            Assert.True(await lab.ConnectsAsync(netns[Yc], Xb.Address.ToString(), 80));

            var refused = await Assert.ThrowsAsync<NftablesException>(
                () => nft.RunAsync("add rule inet romana_policy nowhere accept\n", false, None));
            Assert.Contains("No such file or directory", refused.Message);
            Assert.Contains("chain forward", await nft.RunAsync("list table inet romana_policy", false, None));
            var helperDescriptors = Directory.GetFiles($"/proc/{nft.ProcessId}/fd").Select(f => int.Parse(Path.GetFileName(f))).ToList();
            Assert.True(helperDescriptors.Max() < 1024, $"the helper holds descriptor {helperDescriptors.Max()}");
            Assert.True(Directory.GetFiles("/proc/self/fd").Length >= 1100, "this process still holds over 1,024 descriptors");
        }
        finally
        {
            foreach (var handle in held) handle.Dispose();
        }
    }
}
