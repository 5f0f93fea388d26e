using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Tests.Support;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>Random operation sequences against the real actors on a real SQLite journal.</summary>
public class IpamPropertyTests
{
    private abstract record Op;
    private sealed record AddNodeOp(int Node, int Subnet) : Op;
    private sealed record RemoveNodeOp(int Node) : Op;
    private sealed record AllocateOp(int Node, int Key) : Op;
    private sealed record ReleaseOp(int Key) : Op;
    private sealed record ReserveOp(int Offset, int Prefix, bool Lift) : Op;

    private static readonly string[] Subnets = ["s1", "s2", "s3"];

    private static readonly Gen<Op> Ops = Gen.Frequency(
        (2, Gen.Select(Gen.Int[0, 4], Gen.Int[0, 2], (n, s) => (Op)new AddNodeOp(n, s))),
        (1, Gen.Int[0, 4].Select(n => (Op)new RemoveNodeOp(n))),
        (8, Gen.Select(Gen.Int[0, 4], Gen.Int[0, 60], (n, k) => (Op)new AllocateOp(n, k))),
        (4, Gen.Int[0, 60].Select(k => (Op)new ReleaseOp(k))),
        (1, Gen.Select(Gen.Int[0, 255], Gen.Int[29, 32], Gen.Bool, (o, p, l) => (Op)new ReserveOp(o, p, l))));

    [Fact]
    public async Task Random_sequences_never_hand_out_an_address_twice_and_recover_to_the_same_state()
    {
        // 10.0.0.0/24 with /29 blocks: s1 and s2 get a /26 each (8 blocks), s3 a /25, so blocks run out and are reclaimed.
        var topology = Topologies.TwoZones();
        await Ops.List[10, 60].SampleAsync(async ops =>
        {
            using var journal = new TempJournal();
            var ipam = await journal.StartAsync(topology);
            var holder = new Dictionary<Ipv4, AllocationKey>();
            try
            {
                foreach (var op in ops)
                {
                    var reply = await ipam.AskAsync(op switch
                    {
                        AddNodeOp a => new AddNode(new NodeName($"n{a.Node}"), new SubnetId(Subnets[a.Subnet]),
                            $"192.168.{a.Subnet}.{a.Node + 1}"),
                        RemoveNodeOp r => new RemoveNode(new NodeName($"n{r.Node}")),
                        AllocateOp a => new Allocate(new NodeName($"n{a.Node}"), new AllocationKey($"k{a.Key}")),
                        ReleaseOp r => new Release(new AllocationKey($"k{r.Key}"), null),
                        ReserveOp r => r.Lift ? new Unreserve(Cidr(r)) : new Reserve(Cidr(r)),
                        _ => throw new InvalidOperationException(),
                    });
                    Assert.False(reply is Failed { Error.Code: Romana.Actors.Ipam.IpamErrorCode.Unavailable }, $"{op}: {reply}");
                    switch (op, reply)
                    {
                        case (AllocateOp a, AddressAssigned assigned):
                            Assert.True(!holder.TryGetValue(assigned.Address, out var other) || other == assigned.Key,
                                $"{assigned.Address} handed to {assigned.Key} while {other} holds it");
                            holder[assigned.Address] = assigned.Key;
                            break;
                        case (ReleaseOp r, Succeeded):
                            holder.Remove(holder.Single(h => h.Value.Value == $"k{r.Key}").Key);
                            break;
                        case (RemoveNodeOp, NodeRemoved):
                            var state = (IpamStateView)await ipam.AskAsync(new GetIpamState());
                            var still = state.Nodes.SelectMany(n => n.Allocations).Select(a => a.Address).ToHashSet();
                            foreach (var gone in holder.Keys.Where(a => !still.Contains(a)).ToList()) holder.Remove(gone);
                            break;
                    }
                }
                var before = (IpamStateView)await ipam.AskAsync(new GetIpamState());
                IpamInvariants.Check(before);
                Assert.Equal(holder.Count, before.Nodes.Sum(n => n.Allocations.Length));
                await ipam.DisposeAsync();
                ipam = await journal.StartAsync(topology);
                var after = (IpamStateView)await ipam.AskAsync(new GetIpamState());
                Assert.Equal(IpamInvariants.Json(before), IpamInvariants.Json(after));
            }
            finally
            {
                await ipam.DisposeAsync();
            }
        }, iter: 25, threads: 1);
    }

    private static string Cidr(ReserveOp r) => Ipv4Cidr.Containing(new Ipv4(0x0A000000u + (uint)r.Offset), r.Prefix).ToString();
}
