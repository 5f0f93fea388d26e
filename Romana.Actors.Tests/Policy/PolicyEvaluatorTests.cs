using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;
using Romana.Actors.Tests.Support;

namespace Romana.Actors.Tests.Policy;

/// <summary>The pure evaluator against the shared truth tables, and each rule of networking.k8s.io/v1 on its own.</summary>
public class PolicyEvaluatorTests
{
    public static TheoryData<string> Cases() => [.. PolicyCase.Files([Paths.NetpolCases]).Select(f => Path.GetFileName(f))];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_shared_truth_table_holds(string file)
    {
        var @case = PolicyCase.Load(Path.Combine(Paths.NetpolCases, file));
        Assert.NotEmpty(PolicyCaseRunner.Questions(@case));
        Assert.Empty(PolicyCaseRunner.Evaluate(@case).Select(m => m.ToString()));
    }

    // A world of namespaces x (team=red) and y (team=blue), pods x/a, x/b, y/a, one node; tests add policies.
    private static readonly Ipv4 Node = Ipv4.Parse("10.9.0.1");
    private static readonly Ipv4 Outside = Ipv4.Parse("192.0.2.7");

    private static PolicyPod Pod(string ns, string name, string address, params (string, string)[] labels) =>
        new(ns, name, labels.Append(("pod", name)).ToImmutableSortedDictionary(l => l.Item1, l => l.Item2, StringComparer.Ordinal),
            Ipv4.Parse(address), Node, [new NamedPort("http", 8080, PolicyProtocol.Tcp), new NamedPort("dns", 53, PolicyProtocol.Udp)]);

    private static readonly PolicyPod Xa = Pod("x", "a", "10.0.0.1", ("tier", "web"));
    private static readonly PolicyPod Xb = Pod("x", "b", "10.0.0.2", ("tier", "db"));
    private static readonly PolicyPod Ya = Pod("y", "a", "10.0.0.3");

    private static PolicyWorld World(params string[] policies) => new(
        new[] { ("x", "red"), ("y", "blue") }.ToImmutableSortedDictionary(n => n.Item1, n => new PolicyNamespace(n.Item1,
            ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal,
                [KeyValuePair.Create(PolicyNamespace.NameLabel, n.Item1), KeyValuePair.Create("team", n.Item2)])), StringComparer.Ordinal),
        [Xa, Xb, Ya],
        [.. policies.Select((p, i) => NetworkPolicyJson.Parse(p, $"policies[{i}]"))]);

    private static int _named;

    private static string Policy(string ns, string spec) => $$"""
        {"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy",
         "metadata":{"name":"p{{Interlocked.Increment(ref _named)}}","namespace":"{{ns}}"},"spec":{{spec}}}
        """;

    private static bool Allows(PolicyWorld world, PolicyPod from, PolicyPod to, int port = 80,
        PolicyProtocol protocol = PolicyProtocol.Tcp) =>
        PolicyEvaluator.Allows(world, from, to, port, protocol);

    [Fact]
    public void Match_expressions_select_with_in_not_in_exists_and_does_not_exist()
    {
        string Only(string expression) => Policy("x", $$$"""
            {"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"podSelector":{"matchExpressions":[{{{expression}}}]}}]}]}
            """);
        Assert.True(Allows(World(Only("""{"key":"tier","operator":"In","values":["db","cache"]}""")), Xb, Xa));
        Assert.False(Allows(World(Only("""{"key":"tier","operator":"NotIn","values":["db"]}""")), Xb, Xa));
        Assert.True(Allows(World(Only("""{"key":"tier","operator":"Exists"}""")), Xb, Xa));
        Assert.False(Allows(World(Only("""{"key":"tier","operator":"DoesNotExist"}""")), Xb, Xa));
        // A podSelector alone selects in the policy's namespace only: y/a has no tier label, but lives in y.
        Assert.False(Allows(World(Only("""{"key":"tier","operator":"DoesNotExist"}""")), Ya, Xa));
    }

    [Fact]
    public void A_namespace_selector_with_a_pod_selector_in_one_peer_needs_both_and_two_peers_need_either()
    {
        var both = World(Policy("x", """
            {"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[
              {"namespaceSelector":{"matchLabels":{"team":"blue"}},"podSelector":{"matchLabels":{"pod":"b"}}}]}]}
            """));
        Assert.False(Allows(both, Ya, Xa)); // blue, but pod=a
        Assert.False(Allows(both, Xb, Xa)); // pod=b, but red
        var either = World(Policy("x", """
            {"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[
              {"namespaceSelector":{"matchLabels":{"team":"blue"}}},{"podSelector":{"matchLabels":{"pod":"b"}}}]}]}
            """));
        Assert.True(Allows(either, Ya, Xa));
        Assert.True(Allows(either, Xb, Xa));
    }

    [Fact]
    public void An_ip_block_allows_its_cidr_minus_the_excepts_for_pods_and_outside_addresses()
    {
        var world = World(Policy("x", """
            {"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/30","except":["10.0.0.2/32"]}}]}],
             "egress":[{"to":[{"ipBlock":{"cidr":"192.0.2.0/24"}}]}]}
            """));
        Assert.True(Allows(world, Ya, Xa)); // 10.0.0.3 in the block
        Assert.False(Allows(world, Xb, Xa)); // 10.0.0.2 excepted
        Assert.False(PolicyEvaluator.Allows(world, new PolicyProbe(Outside, Xa.Address, 80, PolicyProtocol.Tcp)));
        Assert.True(PolicyEvaluator.Allows(world, new PolicyProbe(Xa.Address, Outside, 443, PolicyProtocol.Tcp)));
        Assert.False(Allows(world, Xa, Xb)); // egress defaulted on by the egress rules, and 10.0.0.2 is not in 192.0.2.0/24
    }

    [Fact]
    public void Ports_match_by_number_range_name_and_protocol_and_a_port_less_rule_opens_the_whole_protocol()
    {
        string Ports(string ports) => Policy("x", $$"""{"podSelector":{},"ingress":[{"ports":[{{ports}}]}]}""");
        var range = World(Ports("""{"port":8000,"endPort":8100}"""));
        Assert.True(Allows(range, Ya, Xa, 8000));
        Assert.True(Allows(range, Ya, Xa, 8100));
        Assert.False(Allows(range, Ya, Xa, 8101));
        Assert.False(Allows(range, Ya, Xa, 8050, PolicyProtocol.Udp));
        var named = World(Ports("""{"port":"http"},{"port":"dns","protocol":"UDP"}"""));
        Assert.True(Allows(named, Ya, Xa, 8080));
        Assert.False(Allows(named, Ya, Xa, 80));
        Assert.True(Allows(named, Ya, Xa, 53, PolicyProtocol.Udp));
        Assert.False(Allows(named, Ya, Xa, 53)); // dns is a UDP port
        var sctp = World(Ports("""{"protocol":"SCTP"}"""));
        Assert.True(Allows(sctp, Ya, Xa, 9999, PolicyProtocol.Sctp));
        Assert.False(Allows(sctp, Ya, Xa, 9999));
    }

    [Fact]
    public void Policy_types_default_to_ingress_plus_egress_when_there_are_egress_rules_and_an_empty_list_isolates()
    {
        var ingressOnly = NetworkPolicyJson.Parse(Policy("x", """{"podSelector":{}}"""));
        Assert.Equal(PolicyDirections.Ingress, ingressOnly.Directions);
        var withEgress = NetworkPolicyJson.Parse(Policy("x", """{"podSelector":{},"egress":[{}]}"""));
        Assert.Equal(PolicyDirections.Ingress | PolicyDirections.Egress, withEgress.Directions);
        var isolated = World(Policy("x", """{"podSelector":{"matchLabels":{"pod":"a"}},"policyTypes":["Egress"]}"""));
        Assert.False(Allows(isolated, Xa, Ya));
        Assert.True(Allows(isolated, Ya, Xa)); // ingress not isolated
    }

    [Fact]
    public void Both_ends_must_agree_and_policies_add_up()
    {
        var world = World(
            Policy("x", """{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"namespaceSelector":{}}]}]}"""),
            Policy("y", """{"podSelector":{},"policyTypes":["Egress"],"egress":[{"ports":[{"port":81}]}]}"""));
        Assert.False(Allows(world, Ya, Xa, 80)); // x/a lets it in, y/a's egress allows only 81
        Assert.True(Allows(world, Ya, Xa, 81));
        var added = World(
            Policy("x", """{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"ports":[{"port":80}]}]}"""),
            Policy("x", """{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"ports":[{"port":81}]}]}"""));
        Assert.True(Allows(added, Xb, Xa, 80));
        Assert.True(Allows(added, Xb, Xa, 81));
        Assert.False(Allows(added, Xb, Xa, 82));
    }

    [Fact]
    public void A_pod_and_its_own_node_always_reach_each_other()
    {
        var world = World(Policy("x", """{"podSelector":{},"policyTypes":["Ingress","Egress"]}"""));
        Assert.True(PolicyEvaluator.Allows(world, new PolicyProbe(Node, Xa.Address, 8080, PolicyProtocol.Tcp)));
        Assert.True(PolicyEvaluator.Allows(world, new PolicyProbe(Xa.Address, Node, 10250, PolicyProtocol.Tcp)));
        Assert.False(Allows(world, Xb, Xa));
    }

    [Theory]
    [InlineData("""{"podSelector":{},"ingress":[{"ports":[{"port":70000}]}]}""", "p.spec.ingress[0].ports[0].port",
        "expected a port number (1-65535) or name, found the number 70000")]
    [InlineData("""{"podSelector":{},"ingress":[{"ports":[{"port":"Not_A_Name"}]}]}""", "p.spec.ingress[0].ports[0].port",
        "'Not_A_Name' is not a port name (IANA_SVC_NAME: 1-15 of a-z, 0-9, -)")]
    [InlineData("""{"podSelector":{},"ingress":[{"ports":[{"port":"http","endPort":90}]}]}""", "p.spec.ingress[0].ports[0].endPort",
        "needs a numeric port to start the range")]
    [InlineData("""{"podSelector":{},"ingress":[{"ports":[{"protocol":"ICMP"}]}]}""", "p.spec.ingress[0].ports[0].protocol",
        "'ICMP' is not TCP, UDP or SCTP")]
    [InlineData("""{"podSelector":{},"egress":[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["11.0.0.0/8"]}}]}]}""",
        "p.spec.egress[0].to[0].ipBlock.except[0]", "11.0.0.0/8 is not inside the block's cidr 10.0.0.0/8")]
    [InlineData("""{"podSelector":{},"egress":[{"to":[{"ipBlock":{"cidr":"ten/8"}}]}]}""", "p.spec.egress[0].to[0].ipBlock.cidr",
        "'ten/8' is not an IPv4 CIDR")]
    [InlineData("""{"podSelector":{"matchExpressions":[{"key":"a","operator":"In"}]}}""", "p.spec.podSelector.matchExpressions[0].values",
        "In needs at least one value")]
    [InlineData("""{"podSelector":{},"policyTypes":["Both"]}""", "p.spec.policyTypes[0]", "'Both' is neither Ingress nor Egress")]
    [InlineData("""{"podSelector":{},"ingress":[{"from":[{}]}]}""", "p.spec.ingress[0].from[0]",
        "a peer needs podSelector, namespaceSelector or ipBlock")]
    public void A_malformed_policy_names_the_field_and_the_value(string spec, string field, string problem)
    {
        var error = Assert.Throws<PolicyFormatException>(() => NetworkPolicyJson.Parse(Policy("x", spec), "p"));
        Assert.Equal((field, $"{field}: {problem}"), (error.Field, error.Message));
    }

    [Fact]
    public void A_case_file_with_a_bad_field_names_the_file_and_the_field()
    {
        var file = Path.Combine(Path.GetTempPath(), $"romana-case-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(file, """
                {"name":"bad","pods":["x/a"],"policies":[],"probes":[{"port":80,"protocol":"ICMP","deny":[],"allow":[]}]}
                """);
            var error = Assert.Throws<PolicyFormatException>(() => PolicyCase.Load(file));
            Assert.Equal($"{file}: probes[0].protocol: 'ICMP' is not TCP, UDP or SCTP", error.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
