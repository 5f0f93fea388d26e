using System.Collections.Concurrent;
using Romana.Actors.Addressing;
using Romana.Actors.Tests.Support;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>
/// Blocks are reclaimed while their owner allocates into them: four nodes share four blocks and allocate and release
/// concurrently, so the subnet keeps reclaiming empty blocks from nodes that are busy allocating.
/// </summary>
public class ReclaimRaceTests
{
    [Fact]
    public async Task Concurrent_allocations_during_reclaims_never_hand_out_an_address_twice()
    {
        using var journal = new TempJournal();
        await using var ipam = await journal.StartAsync(Topologies.OneSubnet("10.9.0.0/28", 30));
        var nodes = Enumerable.Range(1, 4).Select(i => new NodeName($"n{i}")).ToList();
        foreach (var node in nodes)
            Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(node, new SubnetId("s1"), $"192.168.0.{nodes.IndexOf(node) + 1}")));

        var holders = new ConcurrentDictionary<Ipv4, AllocationKey>();
        var violations = new ConcurrentQueue<string>();
        var granted = 0;
        // Rounds until enough blocks were reclaimed under load (how many a round reclaims depends on timing).
        for (var round = 0; round < 10 && journal.CountEvents("BlockReclaimed") <= 10; round++)
            await Task.WhenAll(nodes.Select(node => Task.Run(async () =>
            {
                // Each node fills up to a random number of addresses (often more than one block holds), then drains to
                // zero: its blocks go empty while the others are short of addresses and reclaim them.
                var random = new Random(nodes.IndexOf(node) + 10 * round);
                var mine = new List<(AllocationKey Key, Ipv4 Address)>();
                var target = random.Next(1, 8);
                var draining = false;
                for (var i = 0; i < 200; i++)
                {
                    if (draining && mine.Count == 0)
                    {
                        draining = false;
                        target = random.Next(1, 8);
                    }
                    if (draining)
                    {
                        var (key, address) = mine[random.Next(mine.Count)];
                        // before the release is sent: the address may be handed out as soon as it is stored
                        holders.TryRemove(address, out _);
                        Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(key, null)));
                        mine.Remove((key, address));
                        continue;
                    }
                    var newKey = new AllocationKey($"{node}-{round}-{i}");
                    switch (await ipam.AskAsync(new Allocate(node, newKey)))
                    {
                        case AddressAssigned assigned:
                            if (!holders.TryAdd(assigned.Address, newKey))
                                violations.Enqueue($"{assigned.Address} handed to {newKey} while {holders[assigned.Address]} holds it");
                            mine.Add((newKey, assigned.Address));
                            Interlocked.Increment(ref granted);
                            draining = mine.Count >= target;
                            break;
                        case Failed { Error.Code: Romana.Actors.Ipam.IpamErrorCode.Exhausted }:
                            draining = true; // the subnet is full: drain from here
                            break;
                        case var other:
                            violations.Enqueue($"unexpected reply {other}");
                            break;
                    }
                }
                foreach (var (key, address) in mine)
                {
                    holders.TryRemove(address, out _);
                    Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(key, null)));
                }
            })));

        Assert.Empty(violations);
        var state = (IpamStateView)await ipam.AskAsync(new GetIpamState());
        IpamInvariants.Check(state);
        Assert.True(granted > 200, $"only {granted} allocations succeeded");
        Assert.True(journal.CountEvents("BlockReclaimed") > 10, "the run reclaimed too few blocks to test the race");
    }
}
