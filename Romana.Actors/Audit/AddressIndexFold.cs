using Romana.Actors.Addressing;
using static Romana.Actors.Ipam.NodeMessages;
using static Romana.Actors.Ipam.SubnetMessages;

namespace Romana.Actors.Audit;

/// <summary>A holding's identity: the ordering of the event that opened it and the address's place in that event.</summary>
public readonly record struct HoldingId(long Opened, int Position);

/// <summary>A change to the address index, from the ipam event at <paramref name="Ordering"/>.</summary>
public abstract record IndexChange(long Ordering);

/// <summary>A key began to hold an address on a node.</summary>
public sealed record HoldingOpened(HoldingId Id, AddressHolding Holding) : IndexChange(Id.Opened);

/// <summary>The open holding <paramref name="Id"/> ended: released at <paramref name="To"/>, for <paramref name="Reason"/>.</summary>
public sealed record HoldingClosed(long Ordering, HoldingId Id, DateTimeOffset To, string Reason) : IndexChange(Ordering);

/// <summary>
/// An allocation found the address still open on the same node: the open holding is forgotten, as the journal's own
/// reading (<see cref="AuditQueries"/>) forgets it. The node actor never writes this (it releases first), but an index
/// must answer what the journal answers.
/// </summary>
public sealed record HoldingDropped(long Ordering, HoldingId Id) : IndexChange(Ordering);

/// <summary>
/// A node joined or left a subnet (<paramref name="Subnet"/> set: the subnet's stream) or adopted or returned a block (the
/// node's stream).
/// </summary>
public sealed record NodeChanged(long Ordering, NodeName Node, SubnetId? Subnet, NodeChange Change) : IndexChange(Ordering);

/// <summary>A holding as the index keeps it: with its identity, so a later release can close it.</summary>
public sealed record IndexedHolding(HoldingId Id, AddressHolding Holding);

/// <summary>A node's change as the index keeps it: from a subnet's stream (joined, left) or from the node's own.</summary>
public sealed record IndexedNodeChange(long Ordering, SubnetId? Subnet, NodeChange Change);

/// <summary>
/// The address index's fold, without I/O: ipam events in journal order in, index changes out. It keeps only the open
/// holdings (node and address to the holding's identity), so that a release closes the holding it ends and nothing else;
/// everything else is in the changes. The same fold builds the stored index (every address) and answers a question from
/// the index plus the events after it (one address, or one node).
/// </summary>
public sealed class AddressIndexFold
{
    private readonly Dictionary<(NodeName Node, Ipv4 Address), HoldingId> _open;
    private readonly Ipv4? _address;
    private readonly NodeName? _node;

    /// <param name="open">The open holdings the stored index has (none: from the start of the journal).</param>
    /// <param name="address">Only this address's holdings (and no node changes).</param>
    /// <param name="node">Only this node's holdings and changes.</param>
    public AddressIndexFold(IEnumerable<KeyValuePair<(NodeName Node, Ipv4 Address), HoldingId>>? open = null, Ipv4? address = null,
        NodeName? node = null)
    {
        _open = open is null ? new() : new(open);
        _address = address;
        _node = node;
    }

    public IReadOnlyDictionary<(NodeName Node, Ipv4 Address), HoldingId> Open => _open;

    /// <summary>The open holdings among <paramref name="rows"/> (as the index stores them): where a fold of the tail starts.</summary>
    public static IEnumerable<KeyValuePair<(NodeName Node, Ipv4 Address), HoldingId>> OpenAmong(IEnumerable<IndexedHolding> rows) =>
        rows.Where(r => r.Holding.To is null).Select(r => KeyValuePair.Create((r.Holding.Node, r.Holding.Address), r.Id));

    public void Apply(TaggedEvent tagged, ICollection<IndexChange> changes)
    {
        var ordering = tagged.Ordering;
        switch (tagged.Event)
        {
            case AddressesAllocated allocated when Concerns(allocated.Node):
                for (var i = 0; i < allocated.Addresses.Length; i++)
                {
                    var a = allocated.Addresses[i];
                    if (_address is { } only && a.Address != only) continue;
                    var id = new HoldingId(ordering, i);
                    if (_open.Remove((allocated.Node, a.Address), out var replaced)) changes.Add(new HoldingDropped(ordering, replaced));
                    _open[(allocated.Node, a.Address)] = id;
                    changes.Add(new HoldingOpened(id,
                        new AddressHolding(a.Address, a.Key, a.Pod, allocated.Node, allocated.At, null, null)));
                }
                break;
            case AddressesReleased released when Concerns(released.Node):
                foreach (var a in released.Addresses)
                    if (_open.Remove((released.Node, a.Address), out var id))
                        changes.Add(new HoldingClosed(ordering, id, released.At, a.Reason));
                break;
            case NodeJoined or NodeLeft or BlockAdopted or BlockReturned when _address is null:
                var (node, subnet) = tagged.Event switch
                {
                    NodeJoined joined => (joined.Node, joined.Subnet),
                    NodeLeft left => (left.Node, left.Subnet),
                    _ => (((NodeEvent)tagged.Event).Node, (SubnetId?)null),
                };
                if (Concerns(node)) changes.Add(new NodeChanged(ordering, node, subnet, ChangeOf(tagged.Event)!));
                break;
        }
    }

    private bool Concerns(NodeName node) => _node is not { } only || only == node;

    /// <summary>What a node's membership or block event says, as the node question shows it.</summary>
    public static NodeChange? ChangeOf(IRomanaEvent e) => e switch
    {
        NodeJoined joined => new NodeChange(e.At, "joined",
            $"subnet {joined.Subnet}, IP {joined.Ip}{(joined.Eni is null ? "" : $", {joined.Eni}")}", e.Reason),
        NodeLeft left => new NodeChange(e.At, "left", $"subnet {left.Subnet}", e.Reason),
        BlockAdopted adopted => new NodeChange(e.At, "block adopted", adopted.Block.ToString(), e.Reason),
        BlockReturned returned => new NodeChange(e.At, "block returned", returned.Block.ToString(), e.Reason),
        _ => null,
    };

    /// <summary>Applies changes to holdings held in memory (an answer's rows, or a whole index in a test).</summary>
    public static void ApplyTo(List<IndexedHolding> rows, IEnumerable<IndexChange> changes)
    {
        foreach (var change in changes)
            switch (change)
            {
                case HoldingOpened opened: rows.Add(new IndexedHolding(opened.Id, opened.Holding)); break;
                case HoldingClosed closed:
                    var at = rows.FindIndex(r => r.Id == closed.Id);
                    if (at >= 0)
                        rows[at] = rows[at] with { Holding = rows[at].Holding with { To = closed.To, ReleaseReason = closed.Reason } };
                    break;
                case HoldingDropped dropped: rows.RemoveAll(r => r.Id == dropped.Id); break;
            }
    }

    /// <summary>The order of an answer: by the time the holding began, then in journal order.</summary>
    public static IEnumerable<AddressHolding> Ordered(IEnumerable<IndexedHolding> rows) =>
        rows.OrderBy(r => r.Holding.From).ThenBy(r => r.Id.Opened).ThenBy(r => r.Id.Position).Select(r => r.Holding);

    /// <summary>
    /// A node's changes in the order the journal's answer gives them: by time, and at the same time a subnet's events
    /// (joined, left) before the node's own (blocks), each in journal order.
    /// </summary>
    public static IEnumerable<IndexedNodeChange> Ordered(IEnumerable<IndexedNodeChange> changes) =>
        changes.OrderBy(c => c.Change.At).ThenBy(c => c.Subnet is null ? 1 : 0).ThenBy(c => c.Ordering);
}
