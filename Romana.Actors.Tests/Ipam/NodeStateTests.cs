using System.Collections.Immutable;
using System.Text.Json;
using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Persistence;
using static Romana.Actors.Ipam.NodeMessages;

namespace Romana.Actors.Tests.Ipam;

public class NodeStateTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;
    private static readonly NodeName Node = new("n1");

    private static NodeState WithBlocks(params string[] blocks) => blocks.Aggregate(NodeState.Empty(Node, 30),
        (s, b) => s.Apply(new BlockAdopted(Node, Ipv4Cidr.Parse(b), [], Now, "test")));

    private static (NodeState State, Ipv4 Address) Allocate(NodeState state, string key)
    {
        var record = Assert.IsType<NodeDecision.Record>(state.DecideAllocate(new AllocationKey(key), null, Now));
        var next = state.Apply(record.Events[0]);
        return (next, next.ByKey[new AllocationKey(key)].Address);
    }

    private static NodeState Apply(NodeState state, NodeDecision decision) =>
        Assert.IsType<NodeDecision.Record>(decision).Events.Aggregate(state, (s, e) => s.Apply(e));

    [Fact]
    public void Allocation_takes_the_lowest_free_address_of_the_lowest_block_with_room()
    {
        var state = WithBlocks("10.0.0.4/30", "10.0.0.0/30");
        (state, var first) = Allocate(state, "a");
        (state, var second) = Allocate(state, "b");
        Assert.Equal("10.0.0.0", first.ToString());
        Assert.Equal("10.0.0.1", second.ToString());
        state = Apply(state, state.DecideRelease(new("a"), "test", Now));
        (_, var reused) = Allocate(state, "c");
        Assert.Equal("10.0.0.0", reused.ToString());
    }

    [Fact]
    public void The_same_key_again_is_already_held_and_a_full_node_needs_a_block()
    {
        var state = WithBlocks("10.0.0.0/30");
        for (var i = 0; i < 4; i++) (state, _) = Allocate(state, $"k{i}");
        Assert.IsType<NodeDecision.AlreadyHeld>(state.DecideAllocate(new("k2"), null, Now));
        Assert.IsType<NodeDecision.NeedBlock>(state.DecideAllocate(new("k9"), null, Now));
    }

    [Fact]
    public void Releasing_an_unknown_key_is_not_found()
    {
        var refuse = Assert.IsType<NodeDecision.Refuse>(WithBlocks("10.0.0.0/30").DecideRelease(new("nope"), "test", Now));
        Assert.Equal(IpamErrorCode.NotFound, refuse.Error.Code);
    }

    [Fact]
    public void Only_an_empty_block_is_surrendered_and_a_block_not_held_is_already_surrendered()
    {
        var state = WithBlocks("10.0.0.0/30", "10.0.0.4/30");
        (state, _) = Allocate(state, "a");
        Assert.Equal(IpamErrorCode.Conflict,
            Assert.IsType<NodeDecision.Refuse>(state.DecideSurrender(Ipv4Cidr.Parse("10.0.0.0/30"), new("n2"), Now)).Error.Code);
        state = Apply(state, state.DecideSurrender(Ipv4Cidr.Parse("10.0.0.4/30"), new("n2"), Now));
        Assert.Equal(["10.0.0.0/30"], state.BlockList.Select(b => b.ToString()));
        Assert.IsType<NodeDecision.Unchanged>(state.DecideSurrender(Ipv4Cidr.Parse("10.0.0.4/30"), new("n2"), Now));
    }

    [Fact]
    public void A_fence_over_a_held_address_is_a_conflict_naming_the_key()
    {
        var (state, _) = Allocate(WithBlocks("10.0.0.0/30"), "pod-a");
        var refuse = Assert.IsType<NodeDecision.Refuse>(state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/31"), Now));
        Assert.Contains("held by key 'pod-a'", refuse.Error.Message);
    }

    [Fact]
    public void Fences_keep_addresses_out_and_a_larger_fence_absorbs_smaller_ones()
    {
        var state = WithBlocks("10.0.0.0/30");
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/32"), Now));
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/31"), Now));
        Assert.Equal(["10.0.0.0/31"], state.Fences.Select(f => f.ToString()));
        (state, var address) = Allocate(state, "a");
        Assert.Equal("10.0.0.2", address.ToString());
        state = Apply(state, state.DecideUnfence(Ipv4Cidr.Parse("10.0.0.0/31"), [], Now));
        (_, address) = Allocate(state, "b");
        Assert.Equal("10.0.0.0", address.ToString());
    }

    [Fact]
    public void Lifting_an_aborted_fence_restores_the_smaller_reservations_it_had_absorbed()
    {
        var state = WithBlocks("10.0.0.0/30");
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/32"), Now));
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/30"), Now));
        state = Apply(state, state.DecideUnfence(Ipv4Cidr.Parse("10.0.0.0/30"), [Ipv4Cidr.Parse("10.0.0.0/32")], Now));
        Assert.Equal(["10.0.0.0/32"], state.Fences.Select(f => f.ToString()));
        (_, var address) = Allocate(state, "a");
        Assert.Equal("10.0.0.1", address.ToString());
    }

    [Fact]
    public void A_fence_larger_than_the_nodes_blocks_keeps_every_address_of_them_and_of_blocks_adopted_later()
    {
        // A reservation that spans subnets covers whole blocks, and more than the node holds.
        var (state, address) = Allocate(WithBlocks("10.0.0.0/30", "10.0.0.4/30"), "a");
        var refuse = Assert.IsType<NodeDecision.Refuse>(state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/24"), Now));
        Assert.Equal($"reservation 10.0.0.0/24 would cover {address}, held by key 'a' on node n1", refuse.Error.Message);
        state = Apply(state, state.DecideRelease(new("a"), "test", Now));
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/24"), Now));
        Assert.IsType<NodeDecision.NeedBlock>(state.DecideAllocate(new("b"), null, Now));
        state = state.Apply(new BlockAdopted(Node, Ipv4Cidr.Parse("10.0.0.8/30"), [], Now, "test"));
        Assert.IsType<NodeDecision.NeedBlock>(state.DecideAllocate(new("b"), null, Now));
        Assert.IsType<NodeDecision.Record>(state.DecideSyncFences([], Now));
        Assert.IsType<NodeDecision.Unchanged>(state.DecideSyncFences([Ipv4Cidr.Parse("10.0.0.0/24")], Now));
    }

    [Fact]
    public void Stale_fences_are_lifted_when_their_reservation_is_gone()
    {
        var state = WithBlocks("10.0.0.0/30");
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/31"), Now));
        state = Apply(state, state.DecideSyncFences([], Now));
        Assert.Empty(state.Fences);
        Assert.IsType<NodeDecision.Unchanged>(state.DecideSyncFences([], Now));
    }

    /// <summary>
    /// Found by the subnet-level property test (seeds 6n5-8mu8Ygm6, dl8-5oKmVbJ4): a node fenced a reservation in a block,
    /// gave the block back to a neighbour, and the reservation was lifted on the new owner only. The old fence stayed, and
    /// a restart dropped it, so the state differed across recovery.
    /// </summary>
    [Fact]
    public void A_returned_block_takes_its_fences_and_a_fence_over_no_block_is_not_kept()
    {
        var state = WithBlocks("10.0.0.0/30", "10.0.0.4/30");
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.4/32"), Now));
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/29"), Now)); // spans both blocks
        state = Apply(state, state.DecideUnfence(Ipv4Cidr.Parse("10.0.0.0/29"), [Ipv4Cidr.Parse("10.0.0.4/32")], Now));
        state = Apply(state, state.DecideSurrender(Ipv4Cidr.Parse("10.0.0.4/30"), new("n2"), Now));
        Assert.Empty(state.Fences);
        Assert.IsType<NodeDecision.Unchanged>(state.DecideFence(Ipv4Cidr.Parse("10.0.0.4/32"), Now));
        state = Apply(state, state.DecideFence(Ipv4Cidr.Parse("10.0.0.0/29"), Now));
        state = Apply(state, state.DecideUnfence(Ipv4Cidr.Parse("10.0.0.0/29"), // the second kept range is the neighbour's
            [Ipv4Cidr.Parse("10.0.0.2/31"), Ipv4Cidr.Parse("10.0.0.4/32")], Now));
        Assert.Equal([Ipv4Cidr.Parse("10.0.0.2/31")], state.Fences);
        state = Apply(state, state.DecideSurrender(Ipv4Cidr.Parse("10.0.0.0/30"), new("n2"), Now));
        Assert.Empty(state.Fences);
        Assert.IsType<NodeDecision.Unchanged>(state.DecideSyncFences([], Now)); // nothing left for recovery to change
    }

    // ---- properties over random operation sequences --------------------------------------------------------------

    private abstract record Op;
    private sealed record AdoptOp(int Block) : Op;
    private sealed record AllocateOp(int Key) : Op;
    private sealed record ReleaseOp(int Key) : Op;
    private sealed record FenceOp(int Offset, int Prefix) : Op;
    private sealed record UnfenceOp(int Index, int KeptOffset) : Op;
    private sealed record SurrenderOp(int Block) : Op;

    private static readonly Gen<Op> Ops = Gen.Frequency(
        (2, Gen.Int[0, 7].Select(b => (Op)new AdoptOp(b))),
        (6, Gen.Int[0, 40].Select(k => (Op)new AllocateOp(k))),
        (3, Gen.Int[0, 40].Select(k => (Op)new ReleaseOp(k))),
        (1, Gen.Select(Gen.Int[0, 31], Gen.Int[29, 32], (o, p) => (Op)new FenceOp(o, p))),
        (1, Gen.Select(Gen.Int[0, 5], Gen.Int[0, 31], (i, k) => (Op)new UnfenceOp(i, k))),
        (1, Gen.Int[0, 7].Select(b => (Op)new SurrenderOp(b))));

    /// <summary>One address of the lifted fence, as a smaller reservation it had absorbed (maybe in another node's block).</summary>
    private static Ipv4Cidr KeptInside(Ipv4Cidr fence, int offset) =>
        new(new Ipv4(fence.Network.Value + (uint)(offset % (1 << (32 - fence.PrefixLength)))), 32);

    private static Ipv4Cidr Block(int index) => new(new Ipv4(0x0A000000u + (uint)index * 4), 30);

    [Fact]
    public void Random_sequences_keep_every_invariant_and_replay_to_the_same_state()
    {
        Ops.List[1, 80].Sample(ops =>
        {
            var state = NodeState.Empty(Node, 30);
            var events = new List<NodeEvent>();
            foreach (var op in ops)
            {
                var decision = op switch
                {
                    AdoptOp a => state.DecideAdopt(Block(a.Block), [], Now),
                    AllocateOp a => state.DecideAllocate(new AllocationKey($"k{a.Key}"), null, Now),
                    ReleaseOp r => state.DecideRelease(new AllocationKey($"k{r.Key}"), "test", Now),
                    FenceOp f => state.DecideFence(Ipv4Cidr.Containing(new Ipv4(0x0A000000u + (uint)f.Offset), f.Prefix), Now),
                    UnfenceOp u => state.Fences.Count > u.Index
                        ? state.DecideUnfence(state.Fences[u.Index], [KeptInside(state.Fences[u.Index], u.KeptOffset)], Now)
                        : NodeDecision.Nothing,
                    SurrenderOp s => state.DecideSurrender(Block(s.Block), new("other"), Now),
                    _ => throw new InvalidOperationException(),
                };
                if (decision is not NodeDecision.Record record) continue;
                foreach (var e in record.Events)
                {
                    state = state.Apply(e);
                    events.Add(e);
                }
                AssertInvariants(state);
            }
            var replayed = events.Aggregate(NodeState.Empty(Node, 30), (s, e) => s.Apply(e));
            Assert.Equal(Json(state), Json(replayed));
            Assert.Equal(Json(state), Json(NodeState.FromSnapshot(state.ToSnapshot())));
        }, iter: 300);
    }

    /// <summary>
    /// The namespace an address was handed to is part of the allocation: the same key from there is the same address
    /// again, from another namespace a conflict that changes nothing; a snapshot keeps it.
    /// </summary>
    [Fact]
    public void A_key_held_for_one_namespace_is_the_same_again_from_it_and_a_conflict_from_another()
    {
        var state = WithBlocks("10.0.0.0/30");
        state = Apply(state, state.DecideAllocate(new("c1/eth0"), "default/a", Now, "0:4:4026532301"));
        var held = Assert.IsType<NodeDecision.AlreadyHeld>(state.DecideAllocate(new("c1/eth0"), "default/a", Now, "0:4:4026532301"));
        Assert.Equal("0:4:4026532301", held.Allocation.Netns);
        var refused = Assert.IsType<NodeDecision.Refuse>(state.DecideAllocate(new("c1/eth0"), "default/b", Now, "0:4:4026532999"));
        Assert.Equal(IpamErrorCode.Conflict, refused.Error.Code);
        Assert.Contains("0:4:4026532301", refused.Error.Message);
        Assert.IsType<NodeDecision.Refuse>(state.DecideAllocate(new("c1/eth0"), null, Now));
        Assert.Equal("0:4:4026532301", NodeState.FromSnapshot(state.ToSnapshot()).ByKey[new("c1/eth0")].Netns);
    }

    /// <summary>An allocation without a namespace (a journal from before issue 11) cannot be told apart: the same key again.</summary>
    [Fact]
    public void An_allocation_recorded_without_a_namespace_is_the_same_key_again_from_any()
    {
        var state = WithBlocks("10.0.0.0/30");
        state = Apply(state, state.DecideAllocate(new("c1/eth0"), null, Now));
        Assert.IsType<NodeDecision.AlreadyHeld>(state.DecideAllocate(new("c1/eth0"), null, Now, "0:4:4026532301"));
    }

    /// <summary>
    /// An address found in use on the node moves to its set-aside key; the key holds nothing, the next address is another.
    /// </summary>
    [Fact]
    public void An_address_set_aside_is_kept_under_its_in_use_key_and_the_next_allocation_takes_another()
    {
        var state = WithBlocks("10.0.0.0/30");
        (state, var first) = Allocate(state, "c1/eth0");
        var decision = Assert.IsType<NodeDecision.Record>(state.DecideSetAside(new("c1/eth0"), first, "route still there", Now));
        Assert.Equal(2, decision.Events.Length);
        state = Apply(state, decision);
        Assert.False(state.ByKey.ContainsKey(new("c1/eth0")));
        Assert.Equal(first, state.ByKey[IpamMessages.SetAside.KeyOf(first)].Address);
        (state, var second) = Allocate(state, "c1/eth0");
        Assert.NotEqual(first, second);
        Assert.Equal(IpamErrorCode.NotFound,
            Assert.IsType<NodeDecision.Refuse>(state.DecideSetAside(new("c1/eth0"), first, "not its address", Now)).Error.Code);
        AssertInvariants(state);
    }

    private static void AssertInvariants(NodeState state)
    {
        var addresses = state.ByKey.Values.Select(a => a.Address).ToList();
        Assert.Equal(addresses.Count, addresses.Distinct().Count()); // no address held twice
        foreach (var address in addresses)
        {
            Assert.Contains(state.BlockList, b => b.Contains(address)); // inside the node's blocks
            Assert.DoesNotContain(state.Fences, f => f.Contains(address)); // never inside a reservation
        }
        foreach (var usage in state.Blocks.Values)
        {
            Assert.Equal(30, usage.Block.PrefixLength);
            Assert.Equal(addresses.Count(usage.Block.Contains), usage.Allocated);
            Assert.Equal(usage.LowestFree() is not null, state.BlocksWithRoom.Contains(usage.Block.Network));
        }
        foreach (var fence in state.Fences) Assert.Contains(state.BlockList, fence.Overlaps); // no fence outside the blocks
    }

    private static string Json(NodeState state) => JsonSerializer.Serialize(state.ToSnapshot(), RomanaSerializer.Options);
}
