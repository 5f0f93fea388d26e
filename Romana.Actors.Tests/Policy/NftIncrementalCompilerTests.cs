using CsCheck;
using Romana.Actors.Policy;

namespace Romana.Actors.Tests.Policy;

/// <summary>The incremental compile (pure): after any sequence of changes it gives exactly what a fresh whole compile gives.</summary>
public sealed class NftIncrementalCompilerTests
{
    /// <summary>
    /// Random worlds and random sequences of changes (pod labels, pods and policies coming and going, namespace labels),
    /// each world rebuilt from its description as the agent would receive it: after every change the incremental
    /// compiler's table, as nft text, equals a fresh compile's, for every node's share. Pod changes take the incremental
    /// path (checked: most steps do), the others compile everything again.
    /// </summary>
    [Fact]
    public void After_random_changes_the_incremental_compile_equals_a_fresh_whole_compile()
    {
        var (steps, incremental, partial) = (0, 0, 0);
        var cases = Gen.Select(PolicyWorlds.Worlds, PolicyWorlds.Changes.Array[1, 12], Gen.Int[0, PolicyWorlds.Nodes - 1]);
        cases.Sample((start, changes, node) =>
        {
            var compiler = new NftIncrementalCompiler();
            var spec = start;
            var world = PolicyWorlds.Build(spec);
            compiler.Compile(world, NftPolicyPropertyTests.LocalPods(world, node), 1);
            var generation = 1;
            foreach (var change in changes)
            {
                spec = PolicyWorlds.Apply(spec, change);
                world = PolicyWorlds.Build(spec);
                var local = NftPolicyPropertyTests.LocalPods(world, node);
                generation++;
                var cached = compiler.Compile(world, local, generation);
                var fresh = NftCompiler.Compile(world, local, generation);
                Assert.True(NftCompiler.Full(fresh).Text == NftCompiler.Full(cached).Text,
                    $"after {change}:\nfresh:\n{NftCompiler.Full(fresh).Text}\nincremental:\n{NftCompiler.Full(cached).Text}");
                Assert.True(NftCompiler.Update(fresh, cached).IsEmpty);
                steps++;
                if (compiler.LastWasIncremental) incremental++;
                if (compiler.LastWasIncremental && compiler.LastCompiledChains < 2 * local.Count) partial++;
            }
        }, iter: 300, print: c => $"\nnode {c.Item3}; changes: {string.Join("; ", c.Item2.Select(x => x.ToString()))}\nstart:\n"
            + PolicyWorlds.Describe(PolicyWorlds.Build(c.Item1)));
        // Pod changes are about half of all changes: the cache was used, and then only some chains were compiled again
        Assert.True(incremental > steps / 3 && partial > incremental / 2, $"{steps} steps, {incremental} incremental, {partial} partial");
    }

    [Fact]
    public void One_pods_label_change_compiles_only_that_pods_chains_and_touches_only_the_sets_it_enters_or_leaves()
    {
        var world = Romana.Host.Benchmarks.PolicyBenchmark.World(200, 2_000);
        var local = world.Pods.Take(40).Select(p => p.Key).ToHashSet();
        var compiler = new NftIncrementalCompiler();
        var before = compiler.Compile(world, local, 1);
        var changed = Romana.Host.Benchmarks.PolicyBenchmark.Relabel(world, 0);

        var after = compiler.Compile(changed, local, 2);

        Assert.True(compiler.LastWasIncremental);
        Assert.Equal(2, compiler.LastCompiledChains);
        Assert.Equal(NftCompiler.Full(NftCompiler.Compile(changed, local, 2)).Text, NftCompiler.Full(after).Text);
        var update = NftCompiler.Update(before, after).Text.TrimEnd().Split('\n');
        // The pod's own chains (its ingress and egress, their segments and port maps) and the forward chain; no other chain
        var pod = world.Pods[0];
        var own = new[] { NftCompiler.ChainName(pod, PolicyDirections.Ingress), NftCompiler.ChainName(pod, PolicyDirections.Egress) };
        Assert.All(update.Where(l => l.Contains(" chain ", StringComparison.Ordinal) && !l.EndsWith(" forward", StringComparison.Ordinal)),
            l => Assert.Contains(l.Split(' ')[^1], after.Segments.Values.Where(s => own.Contains(s.PodChain)).Select(s => s.Name)
                .Concat(before.Segments.Values.Where(s => own.Contains(s.PodChain)).Select(s => s.Name)).Concat(own)));
    }
}
