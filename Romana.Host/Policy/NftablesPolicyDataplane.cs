using System.Diagnostics;
using System.Text.Json;
using Romana.Actors.Policy;

namespace Romana.Host.Policy;

/// <summary>
/// NetworkPolicy enforced by nftables in one network namespace (the node's: the daemon's own, or a named one in tests and the
/// dataplane check). The first apply, and any apply after a failed one, replaces Romana's table whole; later ones send the
/// smallest transaction from the last applied ruleset to the new one. Each is one atomic transaction: when nft refuses it,
/// the kernel keeps the previous ruleset whole. Only `table inet romana_policy` is ever touched.
/// </summary>
public sealed class NftablesPolicyDataplane : IPolicyDataplane, IDisposable
{
    private readonly INftables _nft;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly NftIncrementalCompiler _compiler = new();
    private NftRuleset? _applied;
    private int _generation;

    /// <param name="nft">nft in the node's namespace.</param>
    /// <param name="generation">The generation before the first apply; random unless given (tests compare with it).</param>
    public NftablesPolicyDataplane(INftables nft, int? generation = null)
    {
        _nft = nft;
        // A daemon that restarts must not take flows its predecessor admitted for admitted by its own first rules.
        _generation = generation ?? Random.Shared.Next(1, NftCompiler.MaxGeneration + 1);
    }

    /// <summary>The adapter for <paramref name="netns"/>: null (this process's namespace), a name, or a path.</summary>
    public NftablesPolicyDataplane(string? netns, NftablesBackend backend = NftablesBackend.Helper)
        : this(Nftables.Open(netns, backend))
    {
    }

    /// <summary>The nft this adapter applies through (to read the table back).</summary>
    public INftables Nft => _nft;

    /// <summary>The ruleset the kernel holds now, as this adapter last applied it (null before the first or after a failure).</summary>
    public NftRuleset? Applied => _applied;

    public async Task<PolicyApplied> ApplyAsync(PolicyWorld world, IReadOnlySet<string> localPods, CancellationToken cancellation)
    {
        await _gate.WaitAsync(cancellation);
        try
        {
            var clock = Stopwatch.StartNew();
            var generation = NftCompiler.NextGeneration(_generation);
            var next = _compiler.Compile(world, localPods, generation);
            var previous = _applied;
            var transaction = previous is null ? NftCompiler.Full(next) : NftCompiler.Update(previous, next);
            var compiled = clock.Elapsed;
            if (transaction.IsEmpty) return new PolicyApplied(false, 0, compiled, TimeSpan.Zero);
            _applied = null;
            try
            {
                await _nft.RunAsync(transaction.Text, false, cancellation);
            }
            catch (NftablesException) when (previous is not null)
            {
                // The kernel's table is not what this adapter thinks (changed behind its back): replace it whole.
                transaction = NftCompiler.Full(next);
                await _nft.RunAsync(transaction.Text, false, cancellation);
            }
            _applied = next;
            _generation = generation;
            return new PolicyApplied(previous is null || transaction.Text.StartsWith("add table", StringComparison.Ordinal),
                transaction.Statements, compiled, clock.Elapsed - compiled);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task<IReadOnlyList<PolicyDrops>> DropsAsync(CancellationToken cancellation)
    {
        await _gate.WaitAsync(cancellation);
        try
        {
            if (_applied is not { } applied || applied.Chains.IsEmpty) return [];
            var json = await _nft.RunAsync($"list counters table {NftCompiler.TableRef}", true, cancellation);
            return ReadCounters(json)
                .Where(c => applied.Chains.ContainsKey(c.Name))
                .Select(c => new PolicyDrops(applied.Chains[c.Name].Pod, applied.Chains[c.Name].Direction, c.Packets, c.Bytes))
                .OrderBy(d => d.Pod, StringComparer.Ordinal).ThenBy(d => d.Direction)
                .ToList();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The named counters in `nft -j list counters` output.</summary>
    public static IEnumerable<(string Name, long Packets, long Bytes)> ReadCounters(string json)
    {
        using var document = JsonDocument.Parse(json);
        var counters = new List<(string, long, long)>();
        foreach (var item in document.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (!item.TryGetProperty("counter", out var counter)) continue;
            counters.Add((counter.GetProperty("name").GetString() ?? "", counter.GetProperty("packets").GetInt64(),
                counter.GetProperty("bytes").GetInt64()));
        }
        return counters;
    }

    public async Task RemoveAsync(CancellationToken cancellation)
    {
        await _gate.WaitAsync(cancellation);
        try
        {
            await _nft.RunAsync(NftCompiler.Remove().Text, false, cancellation);
            _applied = null;
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _nft.Dispose();
        _gate.Dispose();
    }
}
