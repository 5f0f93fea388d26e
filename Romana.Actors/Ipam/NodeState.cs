using System.Collections.Immutable;
using Romana.Actors.Addressing;
using static Romana.Actors.Ipam.NodeMessages;

namespace Romana.Actors.Ipam;

/// <summary>What a decide function of a node concludes: events to persist, or an answer without any.</summary>
public abstract record NodeDecision
{
    public sealed record Record(ImmutableArray<NodeEvent> Events) : NodeDecision;
    /// <summary>Already so: nothing to persist.</summary>
    public sealed record Unchanged : NodeDecision;
    public sealed record AlreadyHeld(Allocation Allocation) : NodeDecision;
    /// <summary>No free address in the node's blocks: the subnet must grant one.</summary>
    public sealed record NeedBlock : NodeDecision;
    public sealed record Refuse(IpamError Error) : NodeDecision;

    public static readonly NodeDecision Nothing = new Unchanged();
    public static NodeDecision Of(params NodeEvent[] events) => new Record([.. events]);
}

/// <summary>
/// The pod addresses of one node, as an immutable value: its blocks, who holds which address, and the fences that
/// reservations put on its blocks. Decide functions are pure; <see cref="Apply"/> folds an event.
/// </summary>
public sealed record NodeState(
    NodeName Node,
    int BlockPrefixLength,
    ImmutableSortedDictionary<Ipv4, BlockUsage> Blocks,
    ImmutableSortedSet<Ipv4> BlocksWithRoom,
    ImmutableDictionary<AllocationKey, Allocation> ByKey,
    ImmutableSortedSet<Ipv4Cidr> Fences) : Persistence.IHasSnapshot
{
    public static NodeState Empty(NodeName node, int blockPrefixLength) => new(node, blockPrefixLength,
        ImmutableSortedDictionary<Ipv4, BlockUsage>.Empty, ImmutableSortedSet<Ipv4>.Empty,
        ImmutableDictionary<AllocationKey, Allocation>.Empty, ImmutableSortedSet<Ipv4Cidr>.Empty);

    public ImmutableArray<Ipv4Cidr> BlockList => [.. Blocks.Values.Select(b => b.Block)];

    /// <summary>What the metrics show of this node: blocks, addresses allocated, addresses neither allocated nor fenced.</summary>
    public Observability.Observed.NodeUsage Usage() => new(Node, Blocks.Count, Blocks.Values.Sum(b => b.Allocated),
        Blocks.Values.Sum(b => b.Capacity - b.Allocated - b.Fenced), Blocks.IsEmpty ? null : Blocks.Values.First().Block);

    // ---- decisions -------------------------------------------------------------------------------------------

    /// <summary>
    /// The same key again gets the same address (CNI runtimes retry ADD); otherwise the lowest free one. A key held for a
    /// pod in one network namespace is a conflict for a caller in another (<paramref name="netns"/>: the same container id
    /// reused in another pod), and changes nothing. An allocation recorded without a namespace (before issue 11, or by a
    /// caller that gave none) cannot be told apart, and is the same key again.
    /// </summary>
    public NodeDecision DecideAllocate(AllocationKey key, string? pod, DateTimeOffset now, string? netns = null, string? podUid = null)
    {
        if (ByKey.TryGetValue(key, out var held))
            return held.Netns is { } holder && holder != netns
                ? new NodeDecision.Refuse(IpamError.Conflict(
                    $"key '{key}' holds {held.Address} on node {Node} for {held.Pod ?? "a pod"} in network namespace {holder}, " +
                    $"not {netns ?? "an unnamed one"}: the same container id and interface in another pod; nothing was changed"))
                : new NodeDecision.AlreadyHeld(held);
        if (BlocksWithRoom.IsEmpty) return new NodeDecision.NeedBlock();
        var address = Blocks[BlocksWithRoom.Min].LowestFree()!.Value;
        return NodeDecision.Of(new AddressesAllocated(Node, [new AllocatedAddress(key, address, pod, netns, podUid)], now, "allocated"));
    }

    /// <summary>
    /// The address <paramref name="key"/> holds is in use on the node after all (a route or veth of a pod that still has
    /// it): the key gives it up, and the node keeps it under its set-aside key until a GC finds it unused, so the lowest
    /// free address is another one. Two events, each saying why.
    /// </summary>
    public NodeDecision DecideSetAside(AllocationKey key, Ipv4 address, string reason, DateTimeOffset now)
    {
        if (!ByKey.TryGetValue(key, out var held) || held.Address != address)
            return new NodeDecision.Refuse(IpamError.NotFound($"key '{key}' does not hold {address} on node {Node}"));
        return NodeDecision.Of(
            new AddressesReleased(Node, [new ReleasedAddress(key, address, reason)], now, reason),
            new AddressesAllocated(Node, [new AllocatedAddress(IpamMessages.SetAside.KeyOf(address), address, held.Pod)], now, reason));
    }

    public NodeDecision DecideRelease(AllocationKey key, string reason, DateTimeOffset now) =>
        ByKey.TryGetValue(key, out var held)
            ? NodeDecision.Of(new AddressesReleased(Node, [new ReleasedAddress(key, held.Address, reason)], now, "released"))
            : new NodeDecision.Refuse(IpamError.NotFound($"key '{key}' holds no address on node {Node}"));

    public NodeDecision DecideAdopt(Ipv4Cidr block, ImmutableArray<Ipv4Cidr> reserved, DateTimeOffset now)
    {
        if (block.PrefixLength != BlockPrefixLength)
            return new NodeDecision.Refuse(IpamError.Invalid($"block {block} is not a /{BlockPrefixLength} block"));
        return Blocks.ContainsKey(block.Network)
            ? NodeDecision.Nothing
            : NodeDecision.Of(new BlockAdopted(Node, block, reserved, now, "granted by subnet"));
    }

    /// <summary>The node's half of reclaiming: only an empty block is given up, and once given up it is never used again.</summary>
    public NodeDecision DecideSurrender(Ipv4Cidr block, NodeName forNode, DateTimeOffset now)
    {
        if (!Blocks.TryGetValue(block.Network, out var usage)) return NodeDecision.Nothing;
        if (usage.Allocated > 0)
            return new NodeDecision.Refuse(IpamError.Conflict($"block {block} of node {Node} holds {usage.Allocated} addresses"));
        return NodeDecision.Of(new BlockReturned(Node, block, now, $"reclaimed for node {forNode}"));
    }

    public NodeDecision DecideFence(Ipv4Cidr range, DateTimeOffset now)
    {
        // A fence only withholds addresses of the node's blocks; one over none of them would be left behind by the lift,
        // which asks only the owners of the range.
        if (Fences.Any(f => f.Contains(range)) || !Blocks.Values.Any(b => b.Block.Overlaps(range))) return NodeDecision.Nothing;
        foreach (var usage in Blocks.Values)
        {
            var held = usage.AllocatedIn(range).Select(a => (Ipv4?)a).FirstOrDefault();
            if (held is { } address)
                return new NodeDecision.Refuse(IpamError.Conflict(
                    $"reservation {range} would cover {address}, " +
                    $"held by key '{ByKey.Values.First(a => a.Address == address).Key}' on node {Node}"));
        }
        return NodeDecision.Of(new RangeFenced(Node, range, now, "reservation"));
    }

    public NodeDecision DecideUnfence(Ipv4Cidr range, ImmutableArray<Ipv4Cidr> restore, DateTimeOffset now)
    {
        if (!Fences.Contains(range)) return NodeDecision.Nothing;
        var events = new List<NodeEvent> { new RangeUnfenced(Node, range, now, "reservation lifted") };
        // The subnet sends every range kept inside the lifted one; this node keeps those over its own blocks.
        events.AddRange(restore.Where(r => Blocks.Values.Any(b => b.Block.Overlaps(r)))
            .Select(r => new RangeFenced(Node, r, now, "reservation kept")));
        return new NodeDecision.Record([.. events]);
    }

    /// <summary>After recovery: fences whose reservation no longer exists (an unreserve cut short) are lifted.</summary>
    public NodeDecision DecideSyncFences(ImmutableArray<Ipv4Cidr> reservations, DateTimeOffset now)
    {
        var stale = Fences.Where(f => !reservations.Contains(f)).ToList();
        return stale.Count == 0
            ? NodeDecision.Nothing
            : new NodeDecision.Record([.. stale.Select(f => (NodeEvent)new RangeUnfenced(Node, f, now, "reservation no longer exists"))]);
    }

    public NodeDecision DecideRetire(string reason, DateTimeOffset now)
    {
        var events = new List<NodeEvent>();
        if (!ByKey.IsEmpty)
            events.Add(new AddressesReleased(Node,
                [.. ByKey.Values.OrderBy(a => a.Address).Select(a => new ReleasedAddress(a.Key, a.Address, reason))], now, reason));
        events.AddRange(Blocks.Values.Select(b => new BlockReturned(Node, b.Block, now, reason)));
        return events.Count == 0 ? NodeDecision.Nothing : new NodeDecision.Record([.. events]);
    }

    // ---- events ----------------------------------------------------------------------------------------------

    public NodeState Apply(NodeEvent e) => e switch
    {
        BlockAdopted adopted => AdoptBlock(adopted.Block, adopted.Reserved),
        AddressesAllocated allocated => allocated.Addresses.Aggregate(this, (state, a) => state.Allocate(a, allocated.At)),
        AddressesReleased released => released.Addresses.Aggregate(this, (state, a) =>
            state.WithUsage(state.UsageOf(a.Address).WithAllocated(a.Address, false)) with { ByKey = state.ByKey.Remove(a.Key) }),
        BlockReturned returned => ReturnBlock(returned.Block),
        RangeFenced fenced => WithFences(Fences.Where(f => !fenced.Range.Contains(f)).Append(fenced.Range), fenced.Range),
        RangeUnfenced unfenced => WithFences(Fences.Remove(unfenced.Range), unfenced.Range),
        _ => throw new ArgumentException($"not a node event: {e.GetType().Name}", nameof(e)),
    };

    private NodeState AdoptBlock(Ipv4Cidr block, ImmutableArray<Ipv4Cidr> reserved)
    {
        if (Blocks.ContainsKey(block.Network)) return this;
        var state = this;
        foreach (var range in reserved.Where(r => !Fences.Any(f => f.Contains(r))))
            state = state with { Fences = state.Fences.Where(f => !range.Contains(f)).ToImmutableSortedSet().Add(range) };
        return state.WithUsage(BlockUsage.Empty(block).WithFences(state.Fences));
    }

    /// <summary>
    /// The block leaves with the fences that touch no block still held: the subnet lifts a reservation only on the owners
    /// of its range, so a fence kept here would withhold addresses of a block adopted later, and recovery would drop it
    /// (the state would differ across a restart).
    /// </summary>
    private NodeState ReturnBlock(Ipv4Cidr block)
    {
        var blocks = Blocks.Remove(block.Network);
        return this with
        {
            Blocks = blocks,
            BlocksWithRoom = BlocksWithRoom.Remove(block.Network),
            Fences = Fences.Where(f => blocks.Values.Any(b => b.Block.Overlaps(f))).ToImmutableSortedSet(),
        };
    }

    private NodeState Allocate(AllocatedAddress a, DateTimeOffset at) => WithUsage(UsageOf(a.Address).WithAllocated(a.Address, true)) with
    {
        ByKey = ByKey.SetItem(a.Key, new Allocation(a.Key, a.Address, a.Pod, at, a.Netns, a.PodUid)),
    };

    private BlockUsage UsageOf(Ipv4 address) => Blocks[Ipv4Cidr.Containing(address, BlockPrefixLength).Network];

    private NodeState WithUsage(BlockUsage usage) => this with
    {
        Blocks = Blocks.SetItem(usage.Block.Network, usage),
        BlocksWithRoom = usage.HasRoom ? BlocksWithRoom.Add(usage.Block.Network) : BlocksWithRoom.Remove(usage.Block.Network),
    };

    private NodeState WithFences(IEnumerable<Ipv4Cidr> fences, Ipv4Cidr changed)
    {
        var state = this with { Fences = fences.ToImmutableSortedSet() };
        foreach (var usage in Blocks.Values.Where(b => b.Block.Overlaps(changed)))
            state = state.WithUsage(usage.WithFences(state.Fences));
        return state;
    }

    // ---- snapshots -------------------------------------------------------------------------------------------

    public Persistence.IRomanaSnapshot ToSnapshotRecord() => ToSnapshot();

    public NodeSnapshot ToSnapshot() => new(Node, BlockPrefixLength, BlockList,
        [.. ByKey.Values.OrderBy(a => a.Address)], [.. Fences]);

    public static NodeState FromSnapshot(NodeSnapshot snapshot)
    {
        var state = Empty(snapshot.Node, snapshot.BlockPrefixLength) with { Fences = [.. snapshot.Fences] };
        foreach (var block in snapshot.Blocks) state = state.WithUsage(BlockUsage.Empty(block).WithFences(state.Fences));
        return snapshot.Allocations.Aggregate(state,
            (s, a) => s.Allocate(new AllocatedAddress(a.Key, a.Address, a.Pod, a.Netns, a.PodUid), a.Since));
    }
}

public sealed record NodeSnapshot(NodeName Node, int BlockPrefixLength, ImmutableArray<Ipv4Cidr> Blocks,
    ImmutableArray<Allocation> Allocations, ImmutableArray<Ipv4Cidr> Fences) : Persistence.IRomanaSnapshot;
