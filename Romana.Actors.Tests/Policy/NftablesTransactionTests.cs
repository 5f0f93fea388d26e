using System.Text.Json.Nodes;
using Romana.Actors.Policy;
using Romana.Actors.Tests.Support;
using Romana.Host.Policy;
using static Romana.Actors.Tests.Policy.NftablesPolicyDataplaneTests;

namespace Romana.Actors.Tests.Policy;

/// <summary>
/// Changes on a real kernel: an incremental transaction leaves exactly what a fresh full compile would, a refused one leaves
/// the previous ruleset whole, allowed established flows survive a change and a flow a change denies stops within 1 s.
/// </summary>
public class NftablesTransactionTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static readonly string BFromCOn81 = NetPol("x", "b-from-c", """
        {"podSelector":{"matchLabels":{"app":"b"}},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"team":"blue"}}}],
         "ports":[{"protocol":"TCP","port":"http"},{"protocol":"UDP","port":53,"endPort":60}]}]}
        """);

    private static readonly string AEgressToBlock = NetPol("x", "a-out", """
        {"podSelector":{"matchLabels":{"app":"a"}},"policyTypes":["Egress"],"egress":[
         {"to":[{"ipBlock":{"cidr":"10.77.0.0/16","except":["10.77.1.3/32"]}}],"ports":[{"protocol":"TCP","port":"http"}]},
         {"to":[{"podSelector":{}}],"ports":[{"protocol":"TCP"}]}]}
        """);

    private static readonly string BEgressClosed =
        NetPol("x", "b-out", """{"podSelector":{"matchLabels":{"app":"b"}},"policyTypes":["Egress"]}""");

    /// <summary>`nft -j list table` without what differs between equal tables: handles, the order of elements and objects.</summary>
    private static string Normalized(string json)
    {
        var items = new List<string>();
        var ruleIndex = new Dictionary<string, int>();
        foreach (var item in JsonNode.Parse(json)!["nftables"]!.AsArray())
        {
            var obj = item!.AsObject();
            var (kind, body) = (obj.First().Key, obj.First().Value!.AsObject());
            if (kind == "metainfo") continue;
            body.Remove("handle");
            if (body["elem"] is JsonArray elements)
                body["elem"] = new JsonArray([.. elements.Select(e => e!.ToJsonString()).Order(StringComparer.Ordinal)
                    .Select(e => JsonNode.Parse(e))]);
            if (kind == "rule")
            {
                var chain = body["chain"]!.GetValue<string>();
                var index = ruleIndex[chain] = ruleIndex.GetValueOrDefault(chain) + 1;
                body["index"] = index;
            }
            items.Add($"{kind} {body.ToJsonString()}");
        }
        return string.Join('\n', items.Order(StringComparer.Ordinal));
    }

    [SkippableFact]
    public async Task After_each_change_the_incremental_table_equals_a_fresh_full_compile_of_the_same_world()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var lab = new NftNodeLab();
        var fresh = lab.AddPod("fresh", "10.77.9.9");
        using var dataplane = new NftablesPolicyDataplane(lab.Node);
        using var full = Nftables.Open(fresh);
        var xb2 = Xb with { Labels = Xb.Labels.SetItem("app", "a") };
        var yd = Pod("y", "d", "10.77.1.4", ("app", "a"));
        var steps = new (PolicyWorld World, IReadOnlySet<string> Local)[]
        {
            (World(BFromAOn80), AllLocal),
            (World(BFromAOn80, BFromCOn81), AllLocal),
            (World(BFromAOn80, BFromCOn81, AEgressToBlock, BEgressClosed), AllLocal),
            (World([Xa, xb2, Yc], BFromAOn80, BFromCOn81, AEgressToBlock, BEgressClosed), AllLocal),
            (World([Xa, Xb, Yc, yd], BFromAOn80, BFromCOn81, AEgressToBlock, BEgressClosed), AllLocal),
            (World([Xa, Xb, Yc, yd], BFromAOn80, AEgressToBlock), new HashSet<string> { Xa.Key, yd.Key }),
            (World([Xa, Xb with { NamedPorts = [new NamedPort("http", 8080, PolicyProtocol.Tcp)] }, Yc], BFromCOn81, AEgressToBlock),
                new HashSet<string> { Xa.Key, Xb.Key }),
            (World([Xa, Xb, Yc]), AllLocal),
            (World(BFromAOn80, BFromCOn81, AEgressToBlock, BEgressClosed), AllLocal),
        };
        for (var i = 0; i < steps.Length; i++)
        {
            var applied = await dataplane.ApplyAsync(steps[i].World, steps[i].Local, None);
            Assert.Equal(i == 0, applied.Whole);
            var expected = NftCompiler.Compile(steps[i].World, steps[i].Local, dataplane.Applied!.Generation);
            await full.RunAsync(NftCompiler.Full(expected).Text, false, None);

            var incremental = Normalized(lab.Nft("-j", "list", "table", "inet", NftCompiler.Table));
            var whole = Normalized(NftNodeLab.Exec(fresh, "nft", "-j", "list", "table", "inet", NftCompiler.Table).Output);
            Assert.True(whole == incremental, $"step {i}: incremental\n{incremental}\n\nfull\n{whole}");
        }
    }

    /// <summary>Runs transactions as given, or with a command nft refuses appended while <see cref="Broken"/>.</summary>
    private sealed class Breakable(INftables inner) : INftables
    {
        public bool Broken { get; set; }

        public Task<string> RunAsync(string commands, bool json, CancellationToken cancellation) =>
            inner.RunAsync(Broken ? commands + $"add rule {NftCompiler.TableRef} no-such-chain accept\n" : commands, json, cancellation);

        public void Dispose() => inner.Dispose();
    }

    [SkippableFact]
    public async Task A_refused_transaction_leaves_the_previous_ruleset_whole_and_enforced()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        var (lab, netns) = ThreePods();
        using var _ = lab;
        var nft = new Breakable(Nftables.Open(lab.Node));
        using var dataplane = new NftablesPolicyDataplane(nft);
        await dataplane.ApplyAsync(World(BFromAOn80), AllLocal, None);
        var before = lab.Nft("list", "table", "inet", NftCompiler.Table);

        nft.Broken = true;
        var refused = await Assert.ThrowsAsync<NftablesException>(() =>
            dataplane.ApplyAsync(World(BFromAOn80, BFromCOn81, BEgressClosed), AllLocal, None));
        Assert.Contains("Could not process rule", refused.Message);

        Assert.Equal(before, lab.Nft("list", "table", "inet", NftCompiler.Table));
        Assert.True(await lab.ConnectsAsync(netns[Xa], Xb.Address.ToString(), 80));
        Assert.False(await lab.ConnectsAsync(netns[Yc], Xb.Address.ToString(), 81));
        Assert.True(await lab.ConnectsAsync(netns[Xb], Yc.Address.ToString(), 80));

        nft.Broken = false;
        var applied = await dataplane.ApplyAsync(World(BFromAOn80, BFromCOn81, BEgressClosed), AllLocal, None);
        Assert.True(applied.Whole);
        Assert.True(await lab.ConnectsAsync(netns[Yc], Xb.Address.ToString(), 81));
        Assert.False(await lab.ConnectsAsync(netns[Xb], Yc.Address.ToString(), 80));
    }

    [SkippableFact]
    public async Task An_allowed_established_flow_survives_a_change_and_one_the_change_denies_stops_within_a_second()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        var (lab, netns) = ThreePods();
        using var _ = lab;
        using var dataplane = new NftablesPolicyDataplane(lab.Node);
        // x/b takes a on 80 and opens no connection of its own (egress closed): were the flow re-admitted from x/b's
        // reply, x/b's egress would judge it and cut it.
        await dataplane.ApplyAsync(World(BFromAOn80, BEgressClosed), AllLocal, None);
        using var flow = await lab.ConnectAsync(netns[Xa], Xb.Address.ToString(), 80, TimeSpan.FromSeconds(1));
        Assert.NotNull(flow);
        Assert.True(await NftNodeLab.EchoesAsync(flow, TimeSpan.FromSeconds(1)));

        // A change to x/b's own ingress chain that still allows the flow.
        await dataplane.ApplyAsync(World(BFromAOn80, BEgressClosed, BFromCOn81), AllLocal, None);
        for (var i = 0; i < 5; i++) Assert.True(await NftNodeLab.EchoesAsync(flow, TimeSpan.FromSeconds(1)), $"round trip {i}");

        // x/a becomes app=z: no longer a peer of b-from-a. Its flow must stop within 1 s.
        var denied = World([Xa with { Labels = Xa.Labels.SetItem("app", "z") }, Xb, Yc], BFromAOn80, BEgressClosed, BFromCOn81);
        Assert.False(PolicyEvaluator.Allows(denied, Xa, Xb, 80, PolicyProtocol.Tcp));
        await dataplane.ApplyAsync(denied, AllLocal, None);
        Assert.False(await NftNodeLab.EchoesAsync(flow, TimeSpan.FromSeconds(1)));
        Assert.False(await lab.ConnectsAsync(netns[Xa], Xb.Address.ToString(), 80));
        var drops = await dataplane.DropsAsync(None);
        Assert.Contains(drops, d => d.Pod == Xb.Key && d.Direction == PolicyDirections.Ingress && d.Packets > 0);
    }
}
