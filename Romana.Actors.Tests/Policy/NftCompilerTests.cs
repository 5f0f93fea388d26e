using Romana.Actors.Policy;
using static Romana.Actors.Tests.Policy.NftablesPolicyDataplaneTests;

namespace Romana.Actors.Tests.Policy;

/// <summary>The compiler alone (pure): what chains, sets, rules and map entries a world gives, and what a change sends.</summary>
public class NftCompilerTests
{
    private static Romana.Actors.Policy.NftRuleset Compile(PolicyWorld world, params PolicyPod[] local) =>
        NftCompiler.Compile(world, local.Select(p => p.Key).ToHashSet(), 7);

    [Fact]
    public void Only_pods_some_policy_of_a_direction_selects_get_a_chain_that_ends_in_a_counted_drop_and_a_map_entry()
    {
        var ruleset = Compile(World(BFromAOn80), Xa, Xb, Yc);

        var chain = Assert.Single(ruleset.Chains.Values);
        Assert.Equal(("in.x/b", Xb.Key, PolicyDirections.Ingress), (chain.Name, chain.Pod, chain.Direction));
        Assert.Equal("counter name in.x/b drop", chain.Rules[^1]);
        Assert.Equal(new Dictionary<string, string> { [Xb.Address.ToString()] = "in.x/b" }, ruleset.Ingress);
        Assert.Empty(ruleset.Egress);
        // A pod the node does not host gets nothing, even when selected.
        Assert.Empty(Compile(World(BFromAOn80), Xa, Yc).Chains);
    }

    [Fact]
    public void A_pod_peer_is_a_set_of_the_matching_pods_addresses_in_the_policys_namespace_or_the_selected_namespaces()
    {
        var ruleset = Compile(World(BFromAOn80, NetPol("x", "b-from-blue", """
            {"podSelector":{"matchLabels":{"app":"b"}},"ingress":[{"from":[
             {"namespaceSelector":{"matchLabels":{"team":"blue"}},"podSelector":{"matchExpressions":[{"key":"app","operator":"Exists"}]}},
             {"podSelector":{"matchLabels":{"app":"c"}}}]}]}
            """)), Xb);

        var rules = ruleset.Chains["in.x/b"].Rules;
        var peerSets = ruleset.Sets.Values.Where(s => s.Name.StartsWith("p.", StringComparison.Ordinal))
            .Select(s => string.Join(",", s.Elements)).Order(StringComparer.Ordinal);
        // app=a in x; app exists in team=blue namespaces (y/c); app=c in x (none: y/c is in y).
        Assert.Equal(["", Xa.Address.ToString(), Yc.Address.ToString()], peerSets);
        // The rule without ports: its two peers' sets, one lookup each (after the port map, before the counted drop)
        var blue = ruleset.Sets.Values.Single(s => s.Elements.SequenceEqual([Yc.Address.ToString()])).Name;
        var appC = ruleset.Sets.Values.Single(s => s.Name.StartsWith("p.", StringComparison.Ordinal) && s.Elements.IsEmpty).Name;
        var fallback = new[] { $"ip saddr @{blue} return", $"ip saddr @{appC} return" }.Order(StringComparer.Ordinal).ToArray();
        Assert.Equal([.. fallback, "counter name in.x/b drop"], rules.Skip(1).ToArray());
        // TCP 80 from app=a: the port map sends it to a segment chain that looks up app=a's set, then the fallback
        Assert.Equal($"meta l4proto {{ tcp, udp, sctp }} meta l4proto . th dport vmap @v.in.x/b", rules[0]);
        var segment = ruleset.Segments[ruleset.PortMaps["v.in.x/b"].Elements["tcp . 80"]["goto ".Length..]];
        var appA = ruleset.Sets.Values.Single(s => s.Elements.SequenceEqual([Xa.Address.ToString()])).Name;
        Assert.Equal([$"ip saddr @{appA} return", .. fallback, "counter name in.x/b drop"], segment.Rules.ToArray());
    }

    [Fact]
    public void The_ip_blocks_of_a_segment_are_one_merged_interval_set()
    {
        var ruleset = Compile(World(NetPol("x", "blocks", """
            {"podSelector":{},"policyTypes":["Ingress"],"ingress":[
             {"from":[{"ipBlock":{"cidr":"10.1.0.0/24","except":["10.1.0.128/25"]}},{"ipBlock":{"cidr":"10.1.0.128/26"}},
                      {"ipBlock":{"cidr":"192.0.2.7/32"}}],"ports":[{"port":80}]}]}
            """)), Xa);

        var merged = Assert.Single(ruleset.Sets.Values, s => s.Name.StartsWith("m.", StringComparison.Ordinal));
        Assert.True(merged.Interval);
        Assert.Equal(["10.1.0.0-10.1.0.191", "192.0.2.7"], merged.Elements);
        var segment = Assert.Single(ruleset.Segments.Values);
        Assert.Equal([$"ip saddr @{merged.Name} return", "counter name in.x/a drop"], segment.Rules.ToArray());
    }

    [Fact]
    public void An_ip_block_is_an_interval_set_of_its_cidr_minus_its_excepts()
    {
        var ruleset = Compile(World(NetPol("x", "a-out", """
            {"podSelector":{},"policyTypes":["Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8",
             "except":["10.1.0.0/16","10.255.255.255/32","10.0.0.0/24"]}}]}]}
            """)), Xa);

        var set = Assert.Single(ruleset.Sets.Values);
        Assert.True(set.Interval);
        Assert.Equal(["10.0.1.0-10.0.255.255", "10.2.0.0-10.255.255.254"], set.Elements);
        Assert.Equal($"ip daddr @{set.Name} return", ruleset.Chains["eg.x/a"].Rules[0]);
    }

    [Fact]
    public void Ports_merge_per_protocol_a_protocol_without_port_takes_all_and_named_ports_resolve_per_destination()
    {
        var world = World(NetPol("x", "ports", """
            {"podSelector":{},"policyTypes":["Ingress","Egress"],
             "ingress":[{"ports":[{"port":80},{"port":81,"endPort":90},{"port":85},{"protocol":"UDP"},{"protocol":"UDP","port":53},
              {"port":"http"},{"protocol":"UDP","port":"http"},{"protocol":"SCTP","port":9}]}],
             "egress":[{"ports":[{"port":"http"}]}]}
            """));
        var ruleset = Compile(world, Xa);

        // Ingress: x/a's own http is 81/TCP, merged into 80-90; its UDP http does not exist; any peer: one segment chain
        Assert.Equal(["meta l4proto { tcp, udp, sctp } meta l4proto . th dport vmap @v.in.x/a", "counter name in.x/a drop"],
            ruleset.Chains["in.x/a"].Rules.ToArray());
        var map = ruleset.PortMaps["v.in.x/a"].Elements;
        Assert.Equal(["sctp . 9", "tcp . 80-90", "udp . 0-65535"], map.Keys);
        Assert.Equal(["return"], ruleset.Segments[Assert.Single(map.Values.Distinct())["goto ".Length..]].Rules.ToArray());
        var named = Assert.Single(ruleset.Sets.Values);
        Assert.Equal($"ip daddr . meta l4proto . th dport @{named.Name} return", ruleset.Chains["eg.x/a"].Rules[0]);
        Assert.Equal([.. new[] { Xa, Xb, Yc }.Select(p => $"{p.Address} . tcp . 81").Order(StringComparer.Ordinal)], named.Elements);
    }

    [Fact]
    public void A_label_change_sends_only_set_elements_and_the_forward_chain_and_nothing_changed_sends_nothing()
    {
        var before = Compile(World(BFromAOn80), Xa, Xb, Yc);
        var world = World([Xa with { Labels = Xa.Labels.SetItem("app", "z") }, Xb, Yc], BFromAOn80);
        var after = NftCompiler.Compile(world, AllLocal, 8);

        var update = NftCompiler.Update(before, after);
        var lines = update.Text.TrimEnd().Split('\n');
        Assert.DoesNotContain(lines, l => l.Contains("chain") && !l.Contains(" forward"));
        Assert.Single(lines, l => l.StartsWith("delete element inet romana_policy p.", StringComparison.Ordinal)
            && l.EndsWith($"{{ {Xa.Address} }}"));
        Assert.DoesNotContain(lines, l => l.StartsWith("add element", StringComparison.Ordinal));
        Assert.Contains("add rule inet romana_policy forward ct state established ct mark and 0xffff0000 == 0x00080000 accept", lines);
        Assert.True(NftCompiler.Update(after, after).IsEmpty);
    }

    [Fact]
    public void A_pod_that_goes_loses_its_map_entry_before_its_chain_and_its_counter()
    {
        var before = Compile(World(BFromAOn80), Xa, Xb, Yc);
        var after = NftCompiler.Compile(World([Xa, Yc], BFromAOn80), AllLocal, 8);

        var lines = NftCompiler.Update(before, after).Text.Split('\n').ToList();
        var entry = lines.IndexOf($"delete element inet romana_policy ingress {{ {Xb.Address} }}");
        var chain = lines.IndexOf("delete chain inet romana_policy in.x/b");
        Assert.True(entry >= 0 && chain > entry, string.Join('\n', lines));
        Assert.Contains("delete counter inet romana_policy in.x/b", lines);
    }
}
