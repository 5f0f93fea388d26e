using System.Text;
using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;
using Romana.Actors.Tests.Support;
using Romana.Host.Policy;

namespace Romana.Actors.Tests.Policy;

/// <summary>
/// The compiled rules agree with the reference. For random worlds (<see cref="PolicyWorlds"/>), each node's pods are
/// compiled and applied through the nftables adapter into a scratch node namespace; the table is read back with
/// `nft -j list table` and the interpreter answers, for every pair of pod and outside addresses and several ports and
/// protocols, what the node's forward hook does to a new packet. That must be the part of PolicyEvaluator.Allows the node
/// enforces: its pods' egress when they send, its pods' ingress when they receive (the other end's node enforces the
/// rest). Traffic between a pod and its own node crosses input/output, not forward, and is left out. A failure prints the
/// shrunk world and the first disagreements with the rules that decided them.
/// </summary>
public sealed class NftPolicyPropertyTests
{
    [SkippableFact]
    public void Compiled_rules_read_back_from_the_kernel_agree_with_the_evaluator()
    {
        NftInterpreterTests.SkipUnlessNftInNamespaces();
        using var lab = new NetnsLab();
        var nodes = Enumerable.Range(0, PolicyWorlds.Nodes).Select(n => lab.AddNamespace($"node{n}")).ToArray();
        var (accepted, dropped) = (0, 0);
        PolicyWorlds.Worlds.Sample(spec =>
        {
            var world = PolicyWorlds.Build(spec);
            var failures = new StringBuilder();
            for (var node = 0; node < nodes.Length; node++)
            {
                using var dataplane = new NftablesPolicyDataplane(nodes[node]);
                dataplane.ApplyAsync(world, LocalPods(world, node), CancellationToken.None).GetAwaiter().GetResult();
                var ruleset = NftRuleset.Parse(NftInterpreterTests.ListTable(nodes[node]));
                failures.Append(Disagreements(world, node, ruleset, out var accepts, out var drops));
                (accepted, dropped) = (accepted + accepts, dropped + drops);
            }

            Assert.True(failures.Length == 0, failures.ToString());
        }, iter: 40, threads: 1, print: spec => "\n" + PolicyWorlds.Describe(PolicyWorlds.Build(spec)));
        // The worlds are not all open nor all closed: the agreement was tested on both answers
        Assert.True(dropped > accepted / 20 && accepted > dropped / 20, $"{accepted} packets accepted, {dropped} dropped");
    }

    /// <summary>
    /// The comparison catches a wrong table: a node given the world without one of its policies disagrees wherever that
    /// policy changes the reference's answer.
    /// </summary>
    [SkippableFact]
    public void A_table_missing_a_policy_is_caught()
    {
        NftInterpreterTests.SkipUnlessNftInNamespaces();
        using var lab = new NetnsLab();
        var netns = lab.AddNamespace("node");
        var caught = 0;
        PolicyWorlds.Worlds.Sample(spec =>
        {
            var world = PolicyWorlds.Build(spec);
            var missing = world with { Policies = world.Policies.RemoveAt(0) };
            using var dataplane = new NftablesPolicyDataplane(netns);
            dataplane.ApplyAsync(missing, LocalPods(world, 0), CancellationToken.None).GetAwaiter().GetResult();
            var ruleset = NftRuleset.Parse(NftInterpreterTests.ListTable(netns));
            var (egressOnly, ingressOnly) = (Only(world, PolicyDirections.Egress), Only(world, PolicyDirections.Ingress));
            var (missingEgress, missingIngress) = (Only(missing, PolicyDirections.Egress), Only(missing, PolicyDirections.Ingress));
            var matters = Probes(world).Any(p =>
                Expected(world, 0, p, egressOnly, ingressOnly) != Expected(missing, 0, p, missingEgress, missingIngress));
            var reported = Disagreements(world, 0, ruleset, out _, out _);
            Assert.Equal(matters, reported.Length > 0);
            if (matters) caught++;
        }, iter: 15, threads: 1, print: spec => "\n" + PolicyWorlds.Describe(PolicyWorlds.Build(spec)));
        Assert.True(caught > 0, "no generated world had a first policy that mattered");
    }

    /// <summary>
    /// A random sequence of changes (labels, pods and policies coming and going) applied one by one through one adapter
    /// reads back, after each, as the reference says, and at the end the same as a fresh apply of the last world.
    /// </summary>
    [SkippableFact]
    public void Incremental_changes_read_back_the_same_as_a_fresh_apply()
    {
        NftInterpreterTests.SkipUnlessNftInNamespaces();
        using var lab = new NetnsLab();
        var incremental = lab.AddNamespace("incremental");
        var fresh = lab.AddNamespace("fresh");
        var cases = Gen.Select(PolicyWorlds.Worlds, PolicyWorlds.Changes.Array[1, 6], Gen.Int[0, PolicyWorlds.Nodes - 1]);
        cases.Sample((start, changes, node) =>
        {
            using var dataplane = new NftablesPolicyDataplane(incremental);
            var spec = start;
            var world = PolicyWorlds.Build(spec);
            dataplane.ApplyAsync(world, LocalPods(world, node), CancellationToken.None).GetAwaiter().GetResult();
            foreach (var change in changes)
            {
                spec = PolicyWorlds.Apply(spec, change);
                world = PolicyWorlds.Build(spec);
                var applied = dataplane.ApplyAsync(world, LocalPods(world, node), CancellationToken.None).GetAwaiter().GetResult();
                var failures = Disagreements(world, node, NftRuleset.Parse(NftInterpreterTests.ListTable(incremental)), out _, out _);
                Assert.True(failures.Length == 0, $"after {change} (whole: {applied.Whole}):\n{failures}");
            }

            using var again = new NftablesPolicyDataplane(fresh);
            again.ApplyAsync(world, LocalPods(world, node), CancellationToken.None).GetAwaiter().GetResult();
            var changed = NftRuleset.Parse(NftInterpreterTests.ListTable(incremental));
            var whole = NftRuleset.Parse(NftInterpreterTests.ListTable(fresh));
            Assert.Equal(whole.Chains.Order(StringComparer.Ordinal), changed.Chains.Order(StringComparer.Ordinal));
            var differences = Probes(world).Where(p => changed.Evaluate(p).Accepted != whole.Evaluate(p).Accepted)
                .Take(10).Select(p => $"{p}: incremental {changed.Evaluate(p)}, fresh {whole.Evaluate(p)}").ToList();
            Assert.True(differences.Count == 0, string.Join('\n', differences));
        }, iter: 20, threads: 1, print: c =>
            $"\nnode {c.Item3}; changes: {string.Join("; ", c.Item2.Select(x => x.ToString()))}\nstart:\n"
            + PolicyWorlds.Describe(PolicyWorlds.Build(c.Item1)));
    }

    public static IReadOnlySet<string> LocalPods(PolicyWorld world, int node) =>
        world.Pods.Where(p => p.NodeAddress == PolicyWorlds.NodeAddress(node)).Select(p => p.Key).ToHashSet();

    /// <summary>Every packet between two of the world's pods and outside addresses, on the probe ports and protocols, but
    /// those between a pod and its own node.</summary>
    public static IEnumerable<NftPacket> Probes(PolicyWorld world)
    {
        var pods = world.Pods.ToDictionary(p => p.Address);
        var addresses = world.Pods.Select(p => p.Address).Concat(PolicyWorlds.Outside).ToList();
        foreach (var from in addresses)
            foreach (var to in addresses)
            {
                if (from == to || (!pods.ContainsKey(from) && !pods.ContainsKey(to))) continue;
                if (pods.TryGetValue(from, out var sender) && sender.NodeAddress == to) continue;
                if (pods.TryGetValue(to, out var receiver) && receiver.NodeAddress == from) continue;
                foreach (var protocol in PolicyWorlds.ProbeProtocols)
                    foreach (var port in PolicyWorlds.ProbePorts)
                        yield return new NftPacket(from, to, Number(protocol), port);
            }
    }

    /// <summary>What the node must decide: its local sender's egress, its local receiver's ingress; the rest is open.</summary>
    public static bool Expected(PolicyWorld world, int node, NftPacket packet, PolicyWorld egressOnly, PolicyWorld ingressOnly)
    {
        var here = PolicyWorlds.NodeAddress(node);
        var probe = new PolicyProbe(packet.Source, packet.Destination, packet.DestinationPort, Protocol(packet.Protocol));
        var sender = world.Pods.FirstOrDefault(p => p.Address == packet.Source);
        var receiver = world.Pods.FirstOrDefault(p => p.Address == packet.Destination);
        return (sender?.NodeAddress != here || PolicyEvaluator.Allows(egressOnly, probe))
            && (receiver?.NodeAddress != here || PolicyEvaluator.Allows(ingressOnly, probe));
    }

    /// <summary>The world with only the policies' <paramref name="direction"/> in force.</summary>
    public static PolicyWorld Only(PolicyWorld world, PolicyDirections direction) =>
        world with { Policies = [.. world.Policies.Select(p => p with { Directions = p.Directions & direction })] };

    private static string Disagreements(PolicyWorld world, int node, NftRuleset ruleset, out int accepted, out int dropped)
    {
        (accepted, dropped) = (0, 0);
        var egressOnly = Only(world, PolicyDirections.Egress);
        var ingressOnly = Only(world, PolicyDirections.Ingress);
        var wrong = new List<string>();
        var count = 0;
        foreach (var packet in Probes(world))
        {
            var verdict = ruleset.Evaluate(packet);
            var expected = Expected(world, node, packet, egressOnly, ingressOnly);
            if (expected) accepted++;
            else dropped++;
            if (verdict.Accepted == expected) continue;
            if (count++ < 8)
                wrong.Add($"  node {PolicyWorlds.NodeAddress(node)}: {packet}: expected {(expected ? "accept" : "drop")}, "
                    + $"the table says {verdict}");
        }

        return count == 0 ? "" : $"node {node}: {count} packets disagree, among them:\n{string.Join('\n', wrong)}\n";
    }

    private static int Number(PolicyProtocol protocol) => protocol switch
    {
        PolicyProtocol.Tcp => NftPacket.Tcp,
        PolicyProtocol.Udp => NftPacket.Udp,
        _ => NftPacket.Sctp,
    };

    private static PolicyProtocol Protocol(int number) => number switch
    {
        NftPacket.Tcp => PolicyProtocol.Tcp,
        NftPacket.Udp => PolicyProtocol.Udp,
        _ => PolicyProtocol.Sctp,
    };
}
