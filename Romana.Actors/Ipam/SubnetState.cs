using System.Collections.Immutable;
using Romana.Actors.Addressing;
using static Romana.Actors.Ipam.SubnetMessages;

namespace Romana.Actors.Ipam;

/// <summary>What a subnet must do for a node that asked for a block.</summary>
public abstract record BlockDecision
{
    /// <summary>The node owns this block but did not know it (its adoption was cut short): grant it again.</summary>
    public sealed record Regrant(Ipv4Cidr Block) : BlockDecision;
    public sealed record Assign(Ipv4Cidr Block, BlockAssigned Event) : BlockDecision;
    /// <summary>Ask these owners, lowest block first, to give up an empty block.</summary>
    public sealed record Reclaim(ImmutableArray<(Ipv4Cidr Block, NodeName Owner)> Candidates) : BlockDecision;
    public sealed record Exhausted(string Why) : BlockDecision;
    public sealed record Refuse(IpamError Error) : BlockDecision;
}

/// <summary>
/// One VPC subnet's share of the pod network, as an immutable value: its member nodes, which node owns which block,
/// and the reserved ranges (a reservation that spans subnets is recorded whole by each subnet it touches). Decide
/// functions are pure; <see cref="Apply"/> folds an event. <see cref="Holds"/> are ranges held for a reservation the
/// ledger is deciding: kept from grants like reservations, never persisted (a subnet that restarts forgets them, and the
/// ledger's record phase fences again).
/// </summary>
public sealed record SubnetState(
    SubnetId Subnet,
    Ipv4Cidr PodPrefix,
    int BlockPrefixLength,
    ImmutableSortedDictionary<NodeName, NodeEndpoint> Members,
    ImmutableSortedDictionary<Ipv4, NodeName> Owners,
    ImmutableSortedSet<Ipv4Cidr> Reservations) : Persistence.IHasSnapshot
{
    public static SubnetState Empty(SubnetId subnet, Ipv4Cidr podPrefix, int blockPrefixLength) => new(subnet, podPrefix,
        blockPrefixLength, ImmutableSortedDictionary<NodeName, NodeEndpoint>.Empty, ImmutableSortedDictionary<Ipv4, NodeName>.Empty,
        ImmutableSortedSet<Ipv4Cidr>.Empty);

    /// <summary>Ranges held for a reservation being decided across subnets (in memory only).</summary>
    public ImmutableSortedSet<Ipv4Cidr> Holds { get; init; } = ImmutableSortedSet<Ipv4Cidr>.Empty;

    private ulong BlockSize => 1UL << (32 - BlockPrefixLength);

    public IEnumerable<Ipv4Cidr> BlocksOf(NodeName node) =>
        Owners.Where(o => o.Value == node).Select(o => new Ipv4Cidr(o.Key, BlockPrefixLength));

    /// <summary>Everything kept from allocation, reservations and holds, none inside another.</summary>
    public ImmutableArray<Ipv4Cidr> Blocked
    {
        get
        {
            if (Holds.IsEmpty) return [.. Reservations]; // recorded reservations never nest: a larger one absorbs the smaller
            var all = Reservations.Union(Holds);
            return [.. all.Where(r => !all.Any(o => o != r && o.Contains(r)))];
        }
    }

    /// <summary>What a node given <paramref name="block"/> must fence: the blocked ranges that touch it.</summary>
    public ImmutableArray<Ipv4Cidr> ReservationsIn(Ipv4Cidr block) => [.. Blocked.Where(r => r.Overlaps(block))];

    /// <summary>What a recovering node's fences must match (<see cref="NodeState.DecideSyncFences"/>).</summary>
    public ImmutableArray<Ipv4Cidr> FenceList => [.. Reservations.Union(Holds)];

    public SubnetState WithHold(Ipv4Cidr range) => this with { Holds = Holds.Add(range) };
    public SubnetState WithoutHold(Ipv4Cidr range) => this with { Holds = Holds.Remove(range) };

    /// <summary>What a node fencing <paramref name="range"/> keeps when that fence is lifted: the blocked ranges inside it.</summary>
    public ImmutableArray<Ipv4Cidr> KeptInside(Ipv4Cidr range) =>
        [.. Reservations.Union(Holds).Where(r => r != range && range.Contains(r))];

    // ---- decisions -------------------------------------------------------------------------------------------

    /// <summary>
    /// Adding the same node as it is known again is a no-op (null), unless it brings an ENI or instance not known yet (a
    /// NodeJoined with the completed endpoint: the Kubernetes Node watch joins without the ENI, the node's daemon with it);
    /// with another IP, ENI or instance it is a conflict.
    /// </summary>
    public (NodeJoined? Event, IpamError? Error) DecideAddNode(NodeName node, NodeEndpoint endpoint, DateTimeOffset now,
        string reason = "node added")
    {
        if (Members.TryGetValue(node, out var known))
            return !known.AgreesWith(endpoint)
                ? (null, IpamError.Conflict($"node {node} is already in subnet {Subnet} as {known}, not {endpoint}"))
                : known.CompletedBy(endpoint) is { } completed
                    ? (new NodeJoined(Subnet, node, completed.Ip, now, $"{reason}: ENI {completed.Eni ?? "unknown"}, instance " +
                        $"{completed.InstanceId ?? "unknown"} learned", completed.Eni, completed.InstanceId), null)
                    : (null, null);
        var clash = Members.FirstOrDefault(m => m.Value.Ip == endpoint.Ip);
        if (clash.Key.Value is not null)
            return (null, IpamError.Conflict($"IP {endpoint.Ip} already belongs to node {clash.Key} in subnet {Subnet}"));
        return (new NodeJoined(Subnet, node, endpoint.Ip, now, reason, endpoint.Eni, endpoint.InstanceId), null);
    }

    /// <summary>Once the node has released its addresses and returned its blocks, the subnet takes them back.</summary>
    public ImmutableArray<object> DecideNodeLeft(NodeName node, string reason, DateTimeOffset now) =>
    [
        .. BlocksOf(node).Select(b => (object)new BlockReclaimed(Subnet, b, node, now, reason)),
        new NodeLeft(Subnet, node, now, reason),
    ];

    /// <summary>
    /// The lowest unowned block that has a usable address; if none, the owned blocks of other nodes (lowest first)
    /// that have one, to be reclaimed if empty; if none, exhausted.
    /// </summary>
    public BlockDecision DecideBlockFor(NodeName node, ImmutableArray<Ipv4Cidr> held, DateTimeOffset now)
    {
        if (!Members.ContainsKey(node))
            return new BlockDecision.Refuse(IpamError.NotFound($"node {node} is not a member of subnet {Subnet}"));
        var heldSet = held.ToHashSet();
        var forgotten = BlocksOf(node).Where(b => !heldSet.Contains(b)).Select(b => (Ipv4Cidr?)b).FirstOrDefault();
        if (forgotten is { } regrant) return new BlockDecision.Regrant(regrant);

        if (LowestFreeBlock() is { } free)
            return new BlockDecision.Assign(free, new BlockAssigned(Subnet, free, node, now, "node out of addresses"));

        var blocked = Blocked;
        var candidates = Owners.Where(o => o.Value != node)
            .Select(o => (Block: new Ipv4Cidr(o.Key, BlockPrefixLength), Owner: o.Value))
            .Where(c => HasUsableAddress(c.Block, blocked)).ToImmutableArray();
        return candidates.IsEmpty
            ? new BlockDecision.Exhausted($"subnet {Subnet} ({PodPrefix}) has no free block and no other node's block to reclaim")
            : new BlockDecision.Reclaim(candidates);
    }

    public ImmutableArray<object> DecideReclaimed(Ipv4Cidr block, NodeName from, NodeName to, DateTimeOffset now) =>
    [
        new BlockReclaimed(Subnet, block, from, now, $"empty block reclaimed for node {to}"),
        new BlockAssigned(Subnet, block, to, now, $"reclaimed from node {from}"),
    ];

    /// <summary>
    /// A range already covered by a recorded reservation is a no-op; otherwise the nodes whose blocks it touches must fence
    /// it. The range may reach beyond the prefix (a reservation that spans subnets); one that misses it is invalid.
    /// </summary>
    public (ImmutableArray<NodeName> MustFence, IpamError? Error, bool AlreadyReserved) DecideReserve(Ipv4Cidr range)
    {
        if (!PodPrefix.Overlaps(range))
            return ([], IpamError.Invalid($"cidr: {range} does not touch subnet {Subnet}'s pod prefix {PodPrefix}"), false);
        if (Reservations.Any(r => r.Contains(range))) return ([], null, true);
        var owners = Owners.Where(o => range.Overlaps(new Ipv4Cidr(o.Key, BlockPrefixLength))).Select(o => o.Value).Distinct();
        return ([.. owners], null, false);
    }

    public RangeReserved Reserved(Ipv4Cidr range, DateTimeOffset now, string reason = "reserved by operator") =>
        new(Subnet, range, [.. Reservations.Where(range.Contains)], now, reason);

    // ---- events ----------------------------------------------------------------------------------------------

    public SubnetState Apply(object e) => e switch
    {
        NodeJoined joined => this with { Members = Members.SetItem(joined.Node, joined.Endpoint) },
        NodeLeft left => this with { Members = Members.Remove(left.Node) },
        BlockAssigned assigned => this with { Owners = Owners.SetItem(assigned.Block.Network, assigned.Node) },
        BlockReclaimed reclaimed => this with { Owners = Owners.Remove(reclaimed.Block.Network) },
        RangeReserved reserved => this with
        {
            Reservations = Reservations.Except(reserved.Absorbed).Add(reserved.Range),
            Holds = Holds.Remove(reserved.Range),
        },
        RangeUnreserved unreserved => this with { Reservations = Reservations.Remove(unreserved.Range) },
        _ => throw new ArgumentException($"not a subnet event: {e.GetType().Name}", nameof(e)),
    };

    // ---- blocks ----------------------------------------------------------------------------------------------

    /// <summary>Walks the prefix in block steps, skipping owned blocks and jumping over reservations that cover a block.</summary>
    private Ipv4Cidr? LowestFreeBlock()
    {
        var cursor = (ulong)PodPrefix.First.Value;
        var end = (ulong)PodPrefix.Last.Value + 1;
        var blocked = Blocked;
        while (cursor < end)
        {
            var block = new Ipv4Cidr(new Ipv4((uint)cursor), BlockPrefixLength);
            if (blocked.Where(r => r.Contains(block)).Select(r => (Ipv4Cidr?)r).FirstOrDefault() is { } covering)
            {
                cursor = Math.Min(end, (ulong)covering.Last.Value + 1);
                continue;
            }
            if (!Owners.ContainsKey(block.Network) && HasUsableAddress(block, blocked)) return block;
            cursor += BlockSize;
        }
        return null;
    }

    private static bool HasUsableAddress(Ipv4Cidr block, ImmutableArray<Ipv4Cidr> blocked)
    {
        ulong reserved = 0;
        foreach (var r in blocked)
            if (r.Overlaps(block)) reserved += r.Contains(block) ? block.Size : r.Size;
        return reserved < block.Size;
    }

    // ---- snapshots -------------------------------------------------------------------------------------------

    public Persistence.IRomanaSnapshot ToSnapshotRecord() => ToSnapshot();

    public SubnetSnapshot ToSnapshot() => new(Subnet, PodPrefix, BlockPrefixLength,
        [.. Members.Select(m => new SubnetMemberSnapshot(m.Key, m.Value.Ip, m.Value.Eni, m.Value.InstanceId))],
        [.. Owners.Select(o => new BlockOwnerSnapshot(new Ipv4Cidr(o.Key, BlockPrefixLength), o.Value))],
        [.. Reservations]);

    public static SubnetState FromSnapshot(SubnetSnapshot s) => Empty(s.Subnet, s.PodPrefix, s.BlockPrefixLength) with
    {
        Members = s.Members.ToImmutableSortedDictionary(m => m.Node, m => new NodeEndpoint(m.Ip, m.Eni, m.InstanceId)),
        Owners = s.Owners.ToImmutableSortedDictionary(o => o.Block.Network, o => o.Node),
        Reservations = [.. s.Reservations],
    };
}

public sealed record SubnetMemberSnapshot(NodeName Node, Ipv4 Ip, string? Eni = null, string? InstanceId = null);
public sealed record BlockOwnerSnapshot(Ipv4Cidr Block, NodeName Node);
public sealed record SubnetSnapshot(SubnetId Subnet, Ipv4Cidr PodPrefix, int BlockPrefixLength,
    ImmutableArray<SubnetMemberSnapshot> Members, ImmutableArray<BlockOwnerSnapshot> Owners,
    ImmutableArray<Ipv4Cidr> Reservations) : Persistence.IRomanaSnapshot;
