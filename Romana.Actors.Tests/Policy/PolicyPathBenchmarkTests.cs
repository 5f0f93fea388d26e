using Romana.Actors.Addressing;
using Romana.Actors.Policy;
using Romana.Actors.Tests.Support;
using Romana.Host.Benchmarks;
using Romana.Host.Policy;

namespace Romana.Actors.Tests.Policy;

/// <summary>
/// The packet-path benchmark measures what it says: in its world each of the two pods is selected by the asked number of
/// policies, the benchmark's ports are allowed between them and another port is not, and the table the adapter makes of
/// it (read back through the interpreter) says the same.
/// </summary>
public sealed class PolicyPathBenchmarkTests
{
    private static readonly Ipv4 Client = Ipv4.Parse("10.78.1.2");
    private static readonly Ipv4 Server = Ipv4.Parse("10.78.1.3");

    [SkippableFact]
    public async Task The_benchmark_world_selects_both_pods_and_allows_only_its_ports()
    {
        var (world, local) = PolicyPathBenchmark.World(new PolicyPathBenchmark.Options(1_000, 100, 1, 1, 1));
        var client = world.Pods.Single(p => p.Key == "bench/client");
        var server = world.Pods.Single(p => p.Key == "bench/server");
        Assert.Equal(100, PolicyEvaluator.Selecting(world, client, PolicyDirections.Egress).Count());
        Assert.Equal(100, PolicyEvaluator.Selecting(world, server, PolicyDirections.Ingress).Count());
        Assert.Equal(1_000, world.Policies.Length);
        foreach (var (port, allowed) in new[] { (5201, true), (5202, true), (5203, false), (1000, false) })
            Assert.Equal(allowed, PolicyEvaluator.Allows(world, new PolicyProbe(Client, Server, port, PolicyProtocol.Tcp)));

        NftInterpreterTests.SkipUnlessNftInNamespaces();
        using var lab = new NetnsLab();
        var node = lab.AddNamespace("node");
        using var dataplane = new NftablesPolicyDataplane(node);
        await dataplane.ApplyAsync(world, local, CancellationToken.None);
        var ruleset = NftRuleset.Parse(NftInterpreterTests.ListTable(node));
        foreach (var (port, allowed) in new[] { (5201, true), (5202, true), (5203, false), (1000, false) })
            Assert.Equal(allowed, ruleset.Evaluate(new NftPacket(Client, Server, NftPacket.Tcp, port)).Accepted);
        // The allowing rules come last in the policies, yet a new connection takes a few lookups, not every rule: each
        // pod chain's port map holds the segments of the 100 policies' ports, and the connection's segment goes straight
        // to the chain that looks up its peers
        var trace = ruleset.Evaluate(new NftPacket(Client, Server, NftPacket.Tcp, 5201)).Trace;
        Assert.True(ruleset.ElementsOf("v.eg.bench/client") >= 100 && ruleset.ElementsOf("v.in.bench/server") >= 100,
            $"{ruleset.ElementsOf("v.eg.bench/client")} and {ruleset.ElementsOf("v.in.bench/server")} port segments");
        Assert.True(trace.Length <= 8, string.Join('\n', trace));
        Assert.Equal(2, trace.Count(step => step.Contains(" goto s.", StringComparison.Ordinal)));
        Assert.Contains(trace, step => step.Contains("eg.bench/client", StringComparison.Ordinal));
        Assert.Contains(trace, step => step.Contains("in.bench/server", StringComparison.Ordinal));
    }
}
