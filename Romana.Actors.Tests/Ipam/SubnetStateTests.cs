using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using static Romana.Actors.Ipam.SubnetMessages;

namespace Romana.Actors.Tests.Ipam;

public class SubnetStateTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;
    private static readonly NodeName N1 = new("n1"), N2 = new("n2");

    private static SubnetState Subnet(string prefix = "10.0.0.0/28") =>
        SubnetState.Empty(new SubnetId("s1"), Ipv4Cidr.Parse(prefix), 30)
            .Apply(new NodeJoined(new("s1"), N1, Ipv4.Parse("192.168.0.1"), Now, "test"))
            .Apply(new NodeJoined(new("s1"), N2, Ipv4.Parse("192.168.0.2"), Now, "test"));

    private static SubnetState Assigned(SubnetState state, string block, NodeName node) =>
        state.Apply(new BlockAssigned(state.Subnet, Ipv4Cidr.Parse(block), node, Now, "test"));

    [Fact]
    public void The_lowest_unowned_block_is_assigned()
    {
        var state = Assigned(Subnet(), "10.0.0.0/30", N1);
        var assign = Assert.IsType<BlockDecision.Assign>(state.DecideBlockFor(N2, [], Now));
        Assert.Equal("10.0.0.4/30", assign.Block.ToString());
    }

    [Fact]
    public void Blocks_entirely_reserved_are_skipped()
    {
        var state = Subnet().Apply(new RangeReserved(new("s1"), Ipv4Cidr.Parse("10.0.0.0/29"), [], Now, "test"))
            .Apply(new RangeReserved(new("s1"), Ipv4Cidr.Parse("10.0.0.8/31"), [], Now, "test"))
            .Apply(new RangeReserved(new("s1"), Ipv4Cidr.Parse("10.0.0.10/31"), [], Now, "test"));
        var assign = Assert.IsType<BlockDecision.Assign>(state.DecideBlockFor(N1, [], Now));
        Assert.Equal("10.0.0.12/30", assign.Block.ToString());
    }

    [Fact]
    public void A_block_the_node_did_not_know_it_owns_is_granted_again()
    {
        var state = Assigned(Subnet(), "10.0.0.4/30", N1);
        var regrant = Assert.IsType<BlockDecision.Regrant>(state.DecideBlockFor(N1, [], Now));
        Assert.Equal("10.0.0.4/30", regrant.Block.ToString());
        Assert.IsType<BlockDecision.Assign>(state.DecideBlockFor(N1, [Ipv4Cidr.Parse("10.0.0.4/30")], Now));
    }

    [Fact]
    public void When_every_block_is_owned_the_other_nodes_blocks_are_candidates_lowest_first()
    {
        var state = Subnet();
        foreach (var (block, node) in new[] { ("10.0.0.8/30", N2), ("10.0.0.0/30", N2), ("10.0.0.4/30", N1), ("10.0.0.12/30", N2) })
            state = Assigned(state, block, node);
        var reclaim = Assert.IsType<BlockDecision.Reclaim>(state.DecideBlockFor(N1, [Ipv4Cidr.Parse("10.0.0.4/30")], Now));
        Assert.Equal(["10.0.0.0/30", "10.0.0.8/30", "10.0.0.12/30"], reclaim.Candidates.Select(c => c.Block.ToString()));
        Assert.All(reclaim.Candidates, c => Assert.Equal(N2, c.Owner));
    }

    [Fact]
    public void With_nothing_to_reclaim_the_subnet_is_exhausted_and_a_stranger_is_not_found()
    {
        var state = Assigned(SubnetState.Empty(new("s1"), Ipv4Cidr.Parse("10.0.0.0/30"), 30)
            .Apply(new NodeJoined(new("s1"), N1, Ipv4.Parse("192.168.0.1"), Now, "test")), "10.0.0.0/30", N1);
        Assert.IsType<BlockDecision.Exhausted>(state.DecideBlockFor(N1, [Ipv4Cidr.Parse("10.0.0.0/30")], Now));
        var refuse = Assert.IsType<BlockDecision.Refuse>(state.DecideBlockFor(new("ghost"), [], Now));
        Assert.Equal(IpamErrorCode.NotFound, refuse.Error.Code);
    }

    [Fact]
    public void Reclaiming_moves_the_block_and_leaving_returns_every_block()
    {
        var state = Assigned(Assigned(Subnet(), "10.0.0.0/30", N1), "10.0.0.4/30", N1);
        state = state.DecideReclaimed(Ipv4Cidr.Parse("10.0.0.0/30"), N1, N2, Now).Aggregate(state, (s, e) => s.Apply(e));
        Assert.Equal(N2, state.Owners[Ipv4.Parse("10.0.0.0")]);
        state = state.DecideNodeLeft(N1, "removed", Now).Aggregate(state, (s, e) => s.Apply(e));
        Assert.Empty(state.BlocksOf(N1));
        Assert.False(state.Members.ContainsKey(N1));
    }

    [Fact]
    public void A_reservation_needs_the_owners_of_the_blocks_it_touches_and_a_covered_one_is_already_reserved()
    {
        var state = Assigned(Assigned(Subnet(), "10.0.0.0/30", N1), "10.0.0.4/30", N2);
        var (mustFence, error, already) = state.DecideReserve(Ipv4Cidr.Parse("10.0.0.0/29"));
        Assert.Null(error);
        Assert.False(already);
        Assert.Equal([N1, N2], mustFence.AsEnumerable());
        state = state.Apply(state.Reserved(Ipv4Cidr.Parse("10.0.0.0/29"), Now));
        Assert.True(state.DecideReserve(Ipv4Cidr.Parse("10.0.0.2/31")).AlreadyReserved);
        Assert.Equal(IpamErrorCode.Invalid, state.DecideReserve(Ipv4Cidr.Parse("10.0.1.0/30")).Error!.Code);
    }

    [Fact]
    public void A_reservation_may_reach_beyond_the_prefix_and_one_that_misses_it_is_invalid()
    {
        // Prefix 10.0.0.0/28; 10.0.0.0/27 spans this subnet and the next: it takes every block here.
        var state = Assigned(Assigned(Subnet(), "10.0.0.0/30", N1), "10.0.0.8/30", N2);
        Assert.Equal([N1, N2], state.DecideReserve(Ipv4Cidr.Parse("10.0.0.0/27")).MustFence.AsEnumerable());
        state = state.Apply(state.Reserved(Ipv4Cidr.Parse("10.0.0.0/27"), Now, "across subnets"));
        Assert.Equal([Ipv4Cidr.Parse("10.0.0.0/27")], state.ReservationsIn(Ipv4Cidr.Parse("10.0.0.4/30")).AsEnumerable());
        Assert.IsType<BlockDecision.Exhausted>(state.DecideBlockFor(N1, [Ipv4Cidr.Parse("10.0.0.0/30")], Now));
        var missed = Subnet().DecideReserve(Ipv4Cidr.Parse("10.0.0.16/28")).Error!;
        Assert.Equal((IpamErrorCode.Invalid, "cidr: 10.0.0.16/28 does not touch subnet s1's pod prefix 10.0.0.0/28"),
            (missed.Code, missed.Message));
    }

    [Fact]
    public void A_hold_keeps_its_range_from_grants_and_ends_when_recorded_or_released()
    {
        var range = Ipv4Cidr.Parse("10.0.0.0/29");
        var held = Subnet().WithHold(range);
        Assert.Equal("10.0.0.8/30", Assert.IsType<BlockDecision.Assign>(held.DecideBlockFor(N1, [], Now)).Block.ToString());
        Assert.Equal([range], held.ReservationsIn(Ipv4Cidr.Parse("10.0.0.4/30")).AsEnumerable());
        Assert.Equal([range], held.FenceList.AsEnumerable());
        Assert.Empty(held.ToSnapshot().Reservations); // never persisted
        Assert.False(held.DecideReserve(range).AlreadyReserved); // only a recorded reservation makes a range a no-op

        var released = held.WithoutHold(range);
        Assert.Equal("10.0.0.0/30", Assert.IsType<BlockDecision.Assign>(released.DecideBlockFor(N1, [], Now)).Block.ToString());
        var recorded = held.Apply(held.Reserved(range, Now));
        Assert.Empty(recorded.Holds);
        Assert.Equal([range], recorded.Reservations.AsEnumerable());
        Assert.True(recorded.DecideReserve(Ipv4Cidr.Parse("10.0.0.4/30")).AlreadyReserved);
    }

    [Fact]
    public void Lifting_a_range_keeps_the_reservations_and_holds_inside_it()
    {
        var state = Subnet().Apply(new RangeReserved(new("s1"), Ipv4Cidr.Parse("10.0.0.0/30"), [], Now, "test"))
            .WithHold(Ipv4Cidr.Parse("10.0.0.4/31")).WithHold(Ipv4Cidr.Parse("10.0.0.0/28"));
        Assert.Equal(["10.0.0.0/30", "10.0.0.4/31"], state.KeptInside(Ipv4Cidr.Parse("10.0.0.0/28")).Select(r => r.ToString()));
        Assert.Equal(["10.0.0.0/28"], state.Blocked.Select(r => r.ToString()));
    }

    [Fact]
    public void The_same_node_again_is_a_no_op_and_another_ip_is_a_conflict()
    {
        var state = Subnet();
        Assert.Equal((null, null), state.DecideAddNode(N1, new NodeEndpoint(Ipv4.Parse("192.168.0.1")), Now));
        Assert.Equal(IpamErrorCode.Conflict, state.DecideAddNode(N1, new NodeEndpoint(Ipv4.Parse("192.168.0.9")), Now).Error!.Code);
        Assert.Contains("already belongs to node n1",
            state.DecideAddNode(new("n3"), new NodeEndpoint(Ipv4.Parse("192.168.0.1")), Now).Error!.Message);
    }
}
