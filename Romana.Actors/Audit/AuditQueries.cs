using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using static Romana.Actors.Health.HealthMessages;
using static Romana.Actors.Ipam.NodeMessages;
using static Romana.Actors.Ipam.SubnetMessages;
using static Romana.Actors.Routing.RouteManagerMessages;
using static Romana.Actors.Topology.ZoneMessages;

namespace Romana.Actors.Audit;

/// <summary>Who held an address, from when until when, and why it was let go.</summary>
public sealed record AddressHolding(Ipv4 Address, AllocationKey Key, string? Pod, NodeName Node, DateTimeOffset From, DateTimeOffset? To,
    string? ReleaseReason);

/// <summary>One change in a node's life: joined, left, a block adopted or returned, health judged.</summary>
public sealed record NodeChange(DateTimeOffset At, string What, string Detail, string Reason);

public sealed record NodeHistory(NodeName Node, SubnetId? Subnet, ImmutableArray<NodeChange> Changes,
    ImmutableArray<AddressHolding> Addresses);

/// <summary>A route created, replaced or deleted, with why.</summary>
public sealed record RouteChange(DateTimeOffset At, string Table, Ipv4Cidr Cidr, string Change, NodeName? From, NodeName? To,
    string Reason);

/// <summary>
/// Answers from the journal alone. Questions about one address or node read only the streams they concern, by
/// persistence id (an index seek): the zone streams to find the subnet, that subnet's stream to find the block's
/// owners, those nodes' streams; route history is the route manager's stream. A replay reads by tag, in journal order.
/// </summary>
public static class AuditQueries
{
    public static async Task<ImmutableArray<AddressHolding>> AddressAsync(AuditJournal journal, Ipv4 address)
    {
        var subnet = await SubnetContainingAsync(journal, address);
        if (subnet is null) return [];
        var owners = (await journal.ByPersistenceIdAsync($"subnet-{subnet.Value.Value}"))
            .OfType<BlockAssigned>().Where(b => b.Block.Contains(address)).Select(b => b.Node).Distinct().ToList();
        var holdings = new List<AddressHolding>();
        foreach (var owner in owners)
            holdings.AddRange(Holdings(owner, await journal.ByPersistenceIdAsync($"node-{owner.Value}"), address));
        return [.. holdings.OrderBy(h => h.From)];
    }

    public static async Task<NodeHistory> NodeAsync(AuditJournal journal, NodeName node)
    {
        SubnetId? subnet = null;
        var changes = new List<NodeChange>();
        foreach (var id in (await journal.PersistenceIdsAsync()).Where(p => p.StartsWith("subnet-", StringComparison.Ordinal)))
            foreach (var e in await journal.ByPersistenceIdAsync(id))
                switch (e)
                {
                    case NodeJoined joined when joined.Node == node:
                        subnet = joined.Subnet;
                        changes.Add(AddressIndexFold.ChangeOf(e)!);
                        break;
                    case NodeLeft left when left.Node == node:
                        changes.Add(AddressIndexFold.ChangeOf(e)!);
                        break;
                }
        var events = await journal.ByPersistenceIdAsync($"node-{node.Value}");
        changes.AddRange(events.Where(e => e is BlockAdopted or BlockReturned).Select(e => AddressIndexFold.ChangeOf(e)!));
        if (subnet is { } s) changes.AddRange(await HealthChangesAsync(journal, s, node));
        return new NodeHistory(node, subnet, [.. changes.OrderBy(c => c.At)], [.. Holdings(node, events, null).OrderBy(h => h.From)]);
    }

    /// <summary>The health judgements of a node by its subnet's supervisor (the subnet's health stream, an index seek).</summary>
    public static async Task<List<NodeChange>> HealthChangesAsync(AuditJournal journal, SubnetId subnet, NodeName node)
    {
        var changes = new List<NodeChange>();
        foreach (var e in await journal.ByPersistenceIdAsync($"health-{subnet.Value}"))
            switch (e)
            {
                case ForwarderFailed failed when failed.Node == node:
                    changes.Add(new NodeChange(e.At, "judged failed", "", e.Reason));
                    break;
                case ForwarderRecovered recovered when recovered.Node == node:
                    changes.Add(new NodeChange(e.At, "judged recovered", "", e.Reason));
                    break;
                case ForwarderRoutesMovedByStandby moved when moved.Node == node || moved.To == node:
                    changes.Add(new NodeChange(e.At,
                        moved.Node == node ? "routes moved away by standby" : "routes moved here by standby",
                        $"{moved.Routes.Length} routes from {moved.Node} to {moved.To}: "
                            + string.Join(", ", moved.Routes.Select(r => $"{r.Cidr} in {r.Table}")), e.Reason));
                    break;
            }
        return changes;
    }

    /// <summary>
    /// The route manager's changes, and the routes the subnets' supervisors moved while it was away, in time order. The
    /// supervisors' streams are those of the subnets the manager's tables served (its budgets record them): index seeks,
    /// not a scan of the journal.
    /// </summary>
    public static async Task<ImmutableArray<RouteChange>> RoutesAsync(AuditJournal journal, string? table, DateTimeOffset? since)
    {
        var changes = new List<RouteChange>();
        var subnets = new SortedSet<SubnetId>();
        foreach (var e in await journal.ByPersistenceIdAsync(VpcRouteActor.Id))
        {
            if (e is RouteBudgetsObserved { Serves: { } serves }) subnets.UnionWith(serves.Values.SelectMany(s => s));
            if (since is { } from && e.At < from) continue;
            RouteChange? change = e switch
            {
                RouteCreated c => new RouteChange(c.At, c.Table, c.Cidr, "created", null, c.Target, c.Reason),
                RouteReplaced r => new RouteChange(r.At, r.Table, r.Cidr, "replaced", r.PreviousTarget, r.Target, r.Reason),
                RouteDeleted d => new RouteChange(d.At, d.Table, d.Cidr, "deleted", d.Target, null, d.Reason),
                RouteClaimDropped d => new RouteChange(d.At, d.Table, d.Cidr, "left alone", null, null, d.Reason),
                _ => null,
            };
            if (change is not null && (table is null || change.Table == table)) changes.Add(change);
        }
        foreach (var subnet in subnets)
            foreach (var moved in (await journal.ByPersistenceIdAsync($"health-{subnet.Value}")).OfType<ForwarderRoutesMovedByStandby>())
                if (since is not { } after || moved.At >= after)
                    changes.AddRange(moved.Routes.Where(r => table is null || r.Table == table).Select(r =>
                        new RouteChange(moved.At, r.Table, r.Cidr, "replaced by standby", moved.Node, moved.To, moved.Reason)));
        return [.. changes.OrderBy(c => c.At)]; // stable: the manager's changes keep their journal order
    }

    /// <summary>
    /// The state at <paramref name="until"/>, from the ipam, routes and health tags, each read in journal order; the three
    /// fold into separate parts of the replay, so they are read at once. A read stops at the first event more than
    /// <paramref name="lateWrites"/> past <paramref name="until"/>: the journal's order is the order of writing, and an
    /// event is written within moments of its time, so nothing earlier can follow it.
    /// </summary>
    public static async Task<JournalReplay> ReplayAsync(AuditJournal journal, DateTimeOffset? until, TimeSpan? lateWrites = null) =>
        (await ReplayFromAsync(journal, new JournalReplay(until), ImmutableDictionary<string, long>.Empty, until, lateWrites)).Replay;

    /// <summary>
    /// Goes on with <paramref name="replay"/> (a checkpoint's, or a new one) from <paramref name="offsets"/>, the ordering up
    /// to which it holds each tag, up to <paramref name="until"/>; with how many events of the replay's tags it read after
    /// the offsets (applied or not). The journal is read once in its order from the lowest offset (a tag with few events
    /// would make a read by tag go on to the journal's end), and the read stops at the first event of those tags more than
    /// <paramref name="lateWrites"/> past <paramref name="until"/>, as a read by tag does.
    /// </summary>
    public static async Task<(JournalReplay Replay, long TailRead)> ReplayFromAsync(AuditJournal journal, JournalReplay replay,
        IReadOnlyDictionary<string, long> offsets, DateTimeOffset? until, TimeSpan? lateWrites = null)
    {
        long read = 0;
        var stopAfter = until + (lateWrites ?? DefaultLateWrites);
        await journal.AllAfterAsync(ReplayTags.Min(t => offsets.GetValueOrDefault(t)), (ordering, e) =>
        {
            if (e is null || EventTagger.TagOf(e) is not { } tag || !ReplayTags.Contains(tag)) return true;
            if (e.At > stopAfter) return false;
            if (ordering <= offsets.GetValueOrDefault(tag)) return true;
            read++;
            replay.Apply(e);
            return true;
        });
        return (replay, read);
    }

    /// <summary>The tags a replay reads: each folds into its own part of the state.</summary>
    public static readonly ImmutableArray<string> ReplayTags = [EventTags.Ipam, EventTags.Routes, EventTags.Health];

    /// <summary>
    /// How much later than its time an event may reach the journal
    /// (a persist waits at most for its batch and its retries).
    /// </summary>
    public static readonly TimeSpan DefaultLateWrites = TimeSpan.FromMinutes(1);

    private static async Task<SubnetId?> SubnetContainingAsync(AuditJournal journal, Ipv4 address)
    {
        foreach (var id in (await journal.PersistenceIdsAsync()).Where(p => p.StartsWith("zone-", StringComparison.Ordinal)))
            foreach (var e in (await journal.ByPersistenceIdAsync(id)).OfType<SubnetPrefixAssigned>())
                if (e.PodPrefix.Contains(address)) return e.Subnet;
        return null;
    }

    /// <summary>The holdings in a node's stream, of one address or of all.</summary>
    private static IEnumerable<AddressHolding> Holdings(NodeName node, IEnumerable<IRomanaEvent> events, Ipv4? only)
    {
        var open = new Dictionary<Ipv4, AddressHolding>();
        foreach (var e in events)
            switch (e)
            {
                case AddressesAllocated allocated:
                    foreach (var a in allocated.Addresses.Where(a => only is null || a.Address == only))
                        open[a.Address] = new AddressHolding(a.Address, a.Key, a.Pod, node, allocated.At, null, null);
                    break;
                case AddressesReleased released:
                    foreach (var a in released.Addresses.Where(a => open.ContainsKey(a.Address)))
                    {
                        yield return open[a.Address] with { To = released.At, ReleaseReason = a.Reason };
                        open.Remove(a.Address);
                    }
                    break;
            }
        foreach (var holding in open.Values) yield return holding;
    }
}
