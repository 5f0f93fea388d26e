using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>
/// For one subnet, the sequence of routes more specific than the subnet's own that pay off most, greedily: each step
/// adds the prefix that turns the most pods from forwarded into direct. A route's target is fixed by its prefix: the
/// owner when one node owns every block under it, otherwise a rendezvous choice among the owners. The sequence is
/// computed lazily, as far as the table with the largest budget needs.
/// </summary>
internal sealed class SubnetRefiner
{
    private readonly PlanBlock[] _blocks;
    private readonly List<Candidate> _candidates = new();
    private readonly int[] _effective;          // index of the most specific chosen candidate per block; -1: the subnet route
    private readonly List<(int Candidate, int Gain)> _steps = new();
    private readonly bool[] _taken = [];
    private bool _exhausted;

    public SubnetRefiner(PlanSubnet subnet, IEnumerable<PlanBlock> blocks)
    {
        Subnet = subnet;
        _blocks = [.. blocks.OrderBy(b => b.Block)];
        _effective = Enumerable.Repeat(-1, _blocks.Length).ToArray();
        Root = CandidateOf(subnet.PodPrefix, 0, _blocks.Length);
        if (_blocks.Length > 0) AddCandidates(0, _blocks.Length);
        _taken = new bool[_candidates.Count];
    }

    public PlanSubnet Subnet { get; }
    public Candidate Root { get; }

    /// <summary>The gain of the refinement at <paramref name="step"/>, or null when no refinement that far pays off.</summary>
    public int? Gain(int step)
    {
        while (_steps.Count <= step && !_exhausted) ChooseNext();
        return step < _steps.Count ? _steps[step].Gain : null;
    }

    /// <summary>The subnet route and the first <paramref name="steps"/> refinements, as routes with their pod counts.</summary>
    public IEnumerable<LayoutRoute> Routes(int steps)
    {
        var chosen = new List<Candidate> { Root };
        chosen.AddRange(_steps.Take(steps).Select(s => _candidates[s.Candidate]));
        // Replay the steps to learn which blocks each route is the most specific for, then sum their pods per owner.
        var effective = new int[_blocks.Length];
        for (var c = 1; c < chosen.Count; c++)
            for (var b = chosen[c].Lo; b < chosen[c].Hi; b++)
                if (chosen[effective[b]].Prefix.PrefixLength < chosen[c].Prefix.PrefixLength) effective[b] = c;
        var pods = chosen.Select(_ => new SortedDictionary<NodeName, int>()).ToList();
        for (var b = 0; b < _blocks.Length; b++)
        {
            var owners = pods[effective[b]];
            owners[_blocks[b].Owner] = owners.GetValueOrDefault(_blocks[b].Owner) + _blocks[b].Pods;
        }
        for (var c = 0; c < chosen.Count; c++)
            yield return new LayoutRoute(chosen[c].Prefix, Subnet.Id, chosen[c].Target, [.. pods[c].Keys], pods[c].ToImmutableDictionary(),
                pods[c].Values.Sum());
    }

    private void ChooseNext()
    {
        var best = -1;
        var bestGain = 0;
        for (var c = 0; c < _candidates.Count; c++)
        {
            var candidate = _candidates[c];
            if (_taken[c]) continue;
            var gain = 0;
            for (var b = candidate.Lo; b < candidate.Hi; b++)
            {
                var current = _effective[b] < 0 ? Root : _candidates[_effective[b]];
                if (current.Prefix.PrefixLength >= candidate.Prefix.PrefixLength) continue; // a more specific route already decides
                var owner = _blocks[b].Owner;
                gain += _blocks[b].Pods * ((owner == candidate.Target ? 1 : 0) - (owner == current.Target ? 1 : 0));
            }
            // Larger gain first; on a tie the shorter prefix, then the lower address: deterministic.
            if (gain > bestGain
                || (gain == bestGain && gain > 0 && best >= 0 && candidate.Prefix.PrefixLength < _candidates[best].Prefix.PrefixLength))
            {
                best = c;
                bestGain = gain;
            }
        }
        if (best < 0)
        {
            _exhausted = true;
            return;
        }
        var chosen = _candidates[best];
        for (var b = chosen.Lo; b < chosen.Hi; b++)
        {
            var current = _effective[b] < 0 ? Root : _candidates[_effective[b]];
            if (current.Prefix.PrefixLength < chosen.Prefix.PrefixLength) _effective[b] = best;
        }
        _taken[best] = true;
        _steps.Add((best, bestGain));
    }

    /// <summary>The nodes of a Patricia trie over the sorted blocks: each the longest prefix common to a run of blocks.</summary>
    private void AddCandidates(int lo, int hi)
    {
        var prefix = CommonPrefix(_blocks[lo].Block, _blocks[hi - 1].Block);
        if (prefix != Subnet.PodPrefix) _candidates.Add(CandidateOf(prefix, lo, hi));
        if (hi - lo == 1) return;
        var bit = 31 - prefix.PrefixLength;
        var mid = lo;
        while (mid < hi && ((_blocks[mid].Block.Network.Value >> bit) & 1) == 0) mid++;
        AddCandidates(lo, mid);
        AddCandidates(mid, hi);
    }

    private static Ipv4Cidr CommonPrefix(Ipv4Cidr first, Ipv4Cidr last)
    {
        if (first == last) return first;
        var length = Math.Min(System.Numerics.BitOperations.LeadingZeroCount(first.Network.Value ^ last.Network.Value), first.PrefixLength);
        return Ipv4Cidr.Containing(first.Network, length);
    }

    /// <summary>A candidate route and its fixed target: the owner of all its blocks, or a rendezvous choice among their owners.</summary>
    private Candidate CandidateOf(Ipv4Cidr prefix, int lo, int hi)
    {
        if (hi == lo) return new Candidate(prefix, lo, hi, default);
        var first = _blocks[lo].Owner;
        var single = true;
        for (var b = lo + 1; b < hi && single; b++) single = _blocks[b].Owner == first;
        return new Candidate(prefix, lo, hi, single ? first : Rendezvous.Choose(prefix, _blocks[lo..hi].Select(b => b.Owner).Distinct()));
    }

    internal sealed record Candidate(Ipv4Cidr Prefix, int Lo, int Hi, NodeName Target);
}
