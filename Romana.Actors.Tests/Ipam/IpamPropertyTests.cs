using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
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
                        ReserveOp r => r.Lift ? new Unreserve(Cidr(r).ToString()) : new Reserve(Cidr(r).ToString()),
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

    private static Ipv4Cidr Cidr(ReserveOp r) => Ipv4Cidr.Containing(new Ipv4(0x0A000000u + (uint)r.Offset), r.Prefix);

    // ---- reservations across subnets and zones, in padding slots ------------------------------------------------------

    /// <summary>
    /// Two nodes in each of s1 and s2 (10.0.0.0/28, .16/28), one in s3 (.32/28) and in s4 (.64/26): <see cref="Topologies.Padded"/>.
    /// </summary>
    private static readonly (string Node, string Subnet)[] ReservationNodes =
        [("a1", "s1"), ("a2", "s1"), ("b1", "s2"), ("b2", "s2"), ("c", "s3"), ("d", "s4")];

    /// <summary>
    /// Prefixes 23 to 32 inside (and around) 10.0.0.0/24: outside, the whole pod CIDR, across zones, across subnets, one
    /// subnet, padding slots.
    /// </summary>
    private static readonly Gen<Op> ReservationOps = Gen.Frequency(
        (8, Gen.Select(Gen.Int[0, ReservationNodes.Length - 1], Gen.Int[0, 40], (n, k) => (Op)new AllocateOp(n, k))),
        (4, Gen.Int[0, 40].Select(k => (Op)new ReleaseOp(k))),
        (5, Gen.Select(Gen.Int[0, 255], Gen.Int[23, 32], Gen.Int[0, 4], (o, p, l) => (Op)new ReserveOp(o, p, l == 0))));

    /// <summary>
    /// Random reserve, unreserve, allocate and release sequences checked against a model of the rules: any range strictly
    /// inside the pod CIDR may be reserved, it is refused exactly when it covers an allocated address, a larger one absorbs
    /// the smaller ones, only an exact match is unreserved, and no reserved address is ever handed out.
    /// </summary>
    [Fact]
    public async Task Random_sequences_never_hand_out_a_reserved_address_and_follow_the_rules()
    {
        var topology = Topologies.Padded();
        var pod = topology.PodCidr;
        await ReservationOps.List[20, 70].SampleAsync(async ops =>
        {
            using var journal = new TempJournal();
            var ipam = await journal.StartAsync(topology);
            var reserved = new SortedSet<Ipv4Cidr>();
            var held = new Dictionary<string, Ipv4>();
            try
            {
                for (var i = 0; i < ReservationNodes.Length; i++)
                {
                    var (node, subnet) = ReservationNodes[i];
                    Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new(node), new(subnet), $"10.1.0.{i + 1}")));
                }
                foreach (var op in ops)
                    switch (op)
                    {
                        case AllocateOp a:
                            var key = $"k{a.Key}";
                            var owner = new NodeName(ReservationNodes[a.Node].Node);
                            var reply = await ipam.AskAsync(new Allocate(owner, new AllocationKey(key)));
                            if (reply is AddressAssigned assigned)
                            {
                                Assert.DoesNotContain(reserved, r => r.Contains(assigned.Address));
                                Assert.True(!held.ContainsValue(assigned.Address) || held.GetValueOrDefault(key) == assigned.Address,
                                    $"{assigned.Address} handed to {key} while another key holds it");
                                held[key] = assigned.Address;
                            }
                            else
                                Assert.True(reply is Failed { Error.Code: IpamErrorCode.Exhausted or IpamErrorCode.Conflict },
                                    $"{op}: {reply}");
                            break;
                        case ReleaseOp r:
                            var released = await ipam.AskAsync(new Release(new AllocationKey($"k{r.Key}"), null));
                            Assert.Equal(held.Remove($"k{r.Key}") ? "ok" : "not-found", Outcome(released));
                            break;
                        case ReserveOp { Lift: false } r:
                            var range = Cidr(r);
                            var expected = !pod.Contains(range) || range == pod ? "invalid"
                                : reserved.Any(x => x.Contains(range)) ? "ok"
                                : held.Values.Any(range.Contains) ? "conflict"
                                : "ok";
                            Assert.Equal(expected, Outcome(await ipam.AskAsync(new Reserve(range.ToString()))));
                            if (expected == "ok" && !reserved.Any(x => x.Contains(range)))
                            {
                                reserved.RemoveWhere(range.Contains);
                                reserved.Add(range);
                            }
                            break;
                        case ReserveOp u:
                            // Half the time one that exists, so lifts happen.
                            var lift = u.Offset % 2 == 0 && reserved.Count > 0
                                ? reserved.ElementAt(u.Offset / 2 % reserved.Count)
                                : Cidr(u);
                            Assert.Equal(reserved.Remove(lift) ? "ok" : "not-found",
                                Outcome(await ipam.AskAsync(new Unreserve(lift.ToString()))));
                            break;
                    }
                var before = Assert.IsType<IpamStateView>(await ipam.AskAsync(new GetIpamState()));
                IpamInvariants.Check(before);
                Assert.Equal(reserved, before.Reservations);
                Assert.Equal(held.Values.Order(), before.Nodes.SelectMany(n => n.Allocations).Select(a => a.Address).Order());
                await ipam.DisposeAsync();
                ipam = await journal.StartAsync(topology);
                var after = Assert.IsType<IpamStateView>(await ipam.AskAsync(new GetIpamState()));
                Assert.Equal(IpamInvariants.Json(before), IpamInvariants.Json(after));
            }
            finally
            {
                await ipam.DisposeAsync();
            }
        }, iter: 20, threads: 1);
    }

    private static string Outcome(IpamReply reply) => reply switch
    {
        Succeeded => "ok",
        Failed failed => failed.Error.CodeText,
        _ => reply.ToString(),
    };
}

