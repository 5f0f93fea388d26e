using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>
/// What a route adds: the pods, and then the blocks, that it turns from forwarded into direct. Pods come first; blocks
/// decide between equal pods, so that a block without pods yet also gets its route when the budget has room for it.
/// </summary>
internal readonly record struct RouteGain(long Pods, long Blocks) : IComparable<RouteGain>
{
    public bool IsPositive => Pods > 0 || (Pods == 0 && Blocks > 0);
    public int CompareTo(RouteGain other) => Pods != other.Pods ? Pods.CompareTo(other.Pods) : Blocks.CompareTo(other.Blocks);
    public static bool operator >(RouteGain a, RouteGain b) => a.CompareTo(b) > 0;
    public static bool operator <(RouteGain a, RouteGain b) => a.CompareTo(b) < 0;
    public static bool operator >=(RouteGain a, RouteGain b) => a.CompareTo(b) >= 0;
    public static bool operator <=(RouteGain a, RouteGain b) => a.CompareTo(b) <= 0;
}

/// <summary>
/// For one subnet, the sequence of routes more specific than the subnet's own that pay off most, greedily: each step
/// adds the prefix that turns the most pods (then blocks) from forwarded into direct. A route's target is fixed by its
/// prefix: the owner when one node owns every block under it, otherwise a rendezvous choice among the owners. Every step
/// gains something (a route to where its covering route already leads never does), and a step that puts a route above
/// earlier ones with its own target takes those out (they would gain nothing any more): its cost is one route minus
/// the routes it takes out. The sequence is computed lazily, as far as the table with the largest budget needs.
/// </summary>
internal sealed class SubnetRefiner
{
    private readonly PlanBlock[] _blocks;
    private readonly List<Candidate> _candidates = new();  // the Patricia trie's nodes in preorder: a node's subtree follows it
    private readonly List<int> _parent = new();            // the enclosing candidate; -1: the subnet route
    private readonly List<int> _subtreeEnd = new();        // one past the last candidate of the subtree
    private readonly int[] _effective;                     // the most specific chosen candidate per block; -1: the subnet route
    private readonly List<Step> _steps = new();
    private readonly bool[] _taken = [];
    // Each candidate's gain, kept between steps: a step changes only the blocks under the chosen prefix, so only the
    // gains of its subtree and its ancestors are computed again (a full rescan per step was the planner's hotspot).
    private readonly RouteGain[] _gains = [];
    private readonly bool[] _gainKnown = [];
    private bool _exhausted;

    public SubnetRefiner(PlanSubnet subnet, IEnumerable<PlanBlock> blocks)
    {
        Subnet = subnet;
        _blocks = [.. blocks.OrderBy(b => b.Block)];
        _effective = Enumerable.Repeat(-1, _blocks.Length).ToArray();
        Root = CandidateOf(subnet.PodPrefix, 0, _blocks.Length);
        if (_blocks.Length > 0) AddCandidates(0, _blocks.Length, -1);
        _taken = new bool[_candidates.Count];
        _gains = new RouteGain[_candidates.Count];
        _gainKnown = new bool[_candidates.Count];
    }

    public PlanSubnet Subnet { get; }
    public Candidate Root { get; }

    /// <summary>The gain of the refinement at <paramref name="step"/>, or null when no refinement that far pays off.</summary>
    public RouteGain? Gain(int step)
    {
        while (_steps.Count <= step && !_exhausted) ChooseNext();
        return step < _steps.Count ? _steps[step].Gain : null;
    }

    /// <summary>How many routes the step at <paramref name="step"/> adds: one, minus the routes it makes useless.</summary>
    public int Cost(int step) => Gain(step) is null ? 1 : 1 - _steps[step].Removed.Length;

    /// <summary>The subnet route and what the first <paramref name="steps"/> refinements leave, with their pod counts.</summary>
    public IEnumerable<LayoutRoute> Routes(int steps)
    {
        var inPlan = new bool[_candidates.Count];
        foreach (var step in _steps.Take(steps))
        {
            inPlan[step.Candidate] = true;
            foreach (var removed in step.Removed) inPlan[removed] = false;
        }
        var chosen = new List<Candidate> { Root };
        chosen.AddRange(_candidates.Where((_, c) => inPlan[c]));
        // Which blocks each route is the most specific for, then their pods per owner.
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

    private Candidate Effective(int block) => _effective[block] < 0 ? Root : _candidates[_effective[block]];

    private void ChooseNext()
    {
        var best = -1;
        var bestGain = default(RouteGain);
        for (var c = 0; c < _candidates.Count; c++)
        {
            if (_taken[c]) continue;
            var candidate = _candidates[c];
            var gain = GainOf(c);
            // Larger gain first; on a tie the shorter prefix, then the lower address: deterministic.
            if (gain.IsPositive && (gain > bestGain
                || (gain == bestGain && best >= 0 && candidate.Prefix.PrefixLength < _candidates[best].Prefix.PrefixLength)))
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
        _taken[best] = true;
        // Routes under the new one that it now covers directly and that lead where it leads gain nothing any more: out.
        var removed = new List<int>();
        for (var c = best + 1; c < _subtreeEnd[best]; c++)
        {
            if (!_taken[c] || _candidates[c].Target != chosen.Target) continue;
            var above = _parent[c];
            while (above >= 0 && !_taken[above]) above = _parent[above];
            if (above == best) removed.Add(c);
        }
        foreach (var c in removed) _taken[c] = false;
        for (var b = chosen.Lo; b < chosen.Hi; b++)
            if (Effective(b).Prefix.PrefixLength < chosen.Prefix.PrefixLength || removed.Contains(_effective[b])) _effective[b] = best;
        _steps.Add(new Step(best, bestGain, [.. removed]));
        for (var c = best; c < _subtreeEnd[best]; c++) _gainKnown[c] = false;
        for (var above = _parent[best]; above >= 0; above = _parent[above]) _gainKnown[above] = false;
    }

    private RouteGain GainOf(int c)
    {
        if (_gainKnown[c]) return _gains[c];
        var candidate = _candidates[c];
        long pods = 0, blocks = 0;
        for (var b = candidate.Lo; b < candidate.Hi; b++)
        {
            var current = Effective(b);
            if (current.Prefix.PrefixLength >= candidate.Prefix.PrefixLength) continue; // a more specific route already decides
            var owner = _blocks[b].Owner;
            var turned = (owner == candidate.Target ? 1 : 0) - (owner == current.Target ? 1 : 0);
            pods += turned * _blocks[b].Pods;
            blocks += turned;
        }
        _gainKnown[c] = true;
        return _gains[c] = new RouteGain(pods, blocks);
    }

    /// <summary>
    /// The nodes of a Patricia trie over the sorted blocks, in preorder: each the longest prefix common to a run of blocks.
    /// </summary>
    private void AddCandidates(int lo, int hi, int parent)
    {
        var prefix = CommonPrefix(_blocks[lo].Block, _blocks[hi - 1].Block);
        var self = parent;
        if (prefix != Subnet.PodPrefix)
        {
            self = _candidates.Count;
            _candidates.Add(CandidateOf(prefix, lo, hi));
            _parent.Add(parent);
            _subtreeEnd.Add(-1);
        }
        if (hi - lo > 1)
        {
            var bit = 31 - prefix.PrefixLength;
            var mid = lo;
            while (mid < hi && ((_blocks[mid].Block.Network.Value >> bit) & 1) == 0) mid++;
            AddCandidates(lo, mid, self);
            AddCandidates(mid, hi, self);
        }
        if (self != parent) _subtreeEnd[self] = _candidates.Count;
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

    /// <summary>A chosen candidate, its gain, and the earlier choices it took out.</summary>
    private sealed record Step(int Candidate, RouteGain Gain, int[] Removed);
}
