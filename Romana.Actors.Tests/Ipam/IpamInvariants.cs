using System.Text.Json;
using Romana.Actors.Persistence;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Ipam;

/// <summary>
/// The invariants of DESIGN.md section 2 that hold for any IPAM state, checked on the actors' own views (taken when no
/// command is under way: the views of several actors are not taken at one instant).
/// </summary>
public static class IpamInvariants
{
    public static void Check(IpamStateView state)
    {
        var held = state.Nodes.SelectMany(n => n.Allocations.Select(a => a.Address)).ToList();
        Assert.True(held.Count == held.Distinct().Count(), "an address is held twice");
        foreach (var node in state.Nodes)
        {
            var subnet = state.Subnets.Single(s => s.Members.Any(m => m.Node == node.Node));
            foreach (var block in node.Blocks)
            {
                Assert.True(subnet.PodPrefix.Contains(block),
                    $"block {block} of {node.Node} is outside {subnet.Subnet}'s prefix {subnet.PodPrefix}");
                Assert.Equal(subnet.BlockPrefixLength, block.PrefixLength);
                Assert.Contains(subnet.Owners, o => o.Block == block && o.Node == node.Node);
            }
            foreach (var allocation in node.Allocations)
            {
                Assert.True(node.Blocks.Any(b => b.Contains(allocation.Address)),
                    $"{allocation.Address} of {node.Node} is outside its blocks");
                Assert.DoesNotContain(subnet.Reservations, r => r.Contains(allocation.Address));
                Assert.DoesNotContain(state.Reservations, r => r.Contains(allocation.Address));
            }
        }
        // Every reservation of the ledger is recorded by each subnet it touches, and a subnet records nothing else.
        foreach (var subnet in state.Subnets)
        {
            foreach (var reservation in state.Reservations.Where(r => r.Overlaps(subnet.PodPrefix)))
                Assert.True(subnet.Reservations.Any(r => r.Contains(reservation)),
                    $"reservation {reservation} is not recorded by subnet {subnet.Subnet}, which it touches");
            foreach (var recorded in subnet.Reservations)
                Assert.True(state.Reservations.Any(r => r.Contains(recorded)),
                    $"subnet {subnet.Subnet} records {recorded}, which the reservation ledger does not hold");
        }
        var owned = state.Subnets.SelectMany(s => s.Owners).ToList();
        Assert.Equal(owned.Count, owned.Select(o => o.Block).Distinct().Count());
    }

    public static string Json(IpamStateView state) => JsonSerializer.Serialize(state, RomanaSerializer.Options);
}
