using System.Collections.Immutable;
using System.Data.Common;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Host.Persistence;

namespace Romana.Host.Audit;

/// <summary>
/// The address and node questions answered from the address index: its rows, then the ipam events the journal has after
/// the index's offset, folded for that address or node only, so an index a little behind still answers exactly. When
/// there is no index, one of another format, or the index is too far behind, the answer is null and the note says why;
/// the caller then asks the journal (<see cref="AuditQueries"/>).
/// </summary>
public static class IndexedAudit
{
    /// <summary>An answer (null: ask the journal) and where it came from, or why the index could not give it.</summary>
    public sealed record Answer<T>(T? Value, string Note);

    public static async Task<Answer<ImmutableArray<AddressHolding>?>> AddressAsync(JournalSettings settings, AuditJournal journal,
        Ipv4 address, int maxTail, CancellationToken cancel)
    {
        var read = await ReadAsync(settings, journal, (connection, transaction) =>
            AddressIndex.HoldingsAsync(connection, transaction, "address", (long)address.Value, cancel), cancel);
        if (!read.Found) return new(null, read.Note);
        var rows = read.Rows!;
        var tail = await TailAsync(journal, read.Offset, maxTail, new AddressIndexFold(AddressIndexFold.OpenAmong(rows), address: address));
        if (tail is not var (events, changes)) return new(null, TooFar(read.Where, maxTail));
        AddressIndexFold.ApplyTo(rows, changes);
        return new([.. AddressIndexFold.Ordered(rows)], From(read, events));
    }

    public static async Task<Answer<NodeHistory>> NodeAsync(JournalSettings settings, AuditJournal journal, NodeName node, int maxTail,
        CancellationToken cancel)
    {
        var read = await ReadAsync(settings, journal, async (connection, transaction) =>
            (Holdings: await AddressIndex.HoldingsAsync(connection, transaction, "node", node.Value, cancel),
                Changes: await AddressIndex.NodeChangesAsync(connection, transaction, node, cancel)), cancel);
        if (!read.Found) return new(null, read.Note);
        var (holdings, changes) = read.Rows!;
        var tail = await TailAsync(journal, read.Offset, maxTail, new AddressIndexFold(AddressIndexFold.OpenAmong(holdings), node: node));
        if (tail is not var (events, newer)) return new(null, TooFar(read.Where, maxTail));
        AddressIndexFold.ApplyTo(holdings, newer);
        changes.AddRange(newer.OfType<NodeChanged>().Select(c => new IndexedNodeChange(c.Ordering, c.Subnet, c.Change)));
        var subnet = changes.Where(c => c.Change.What == "joined").MaxBy(c => c.Ordering)?.Subnet;
        // At the same time, membership and blocks before health, as the journal's answer has them.
        List<NodeChange> all = [.. AddressIndexFold.Ordered(changes).Select(c => c.Change)];
        if (subnet is { } s) all.AddRange(await AuditQueries.HealthChangesAsync(journal, s, node));
        return new(new NodeHistory(node, subnet, [.. all.OrderBy(c => c.At)], [.. AddressIndexFold.Ordered(holdings)]),
            From(read, events));
    }

    private sealed record Read<T>(T? Rows, long Offset, string Where, string Note)
    {
        public bool Found { get; init; }
    }

    /// <summary>The offset and the rows, read in one snapshot of the index; rows null when there is no index to read.</summary>
    private static async Task<Read<T>> ReadAsync<T>(JournalSettings settings, AuditJournal journal,
        Func<DbConnection, DbTransaction, Task<T>> rows, CancellationToken cancel)
    {
        var store = AuditStore.For(settings, readOnly: true);
        if (store is null) return new(default, 0, "", $"no address index: {Path.GetFullPath(settings.SqliteAuditPath)} does not exist");
        try
        {
            await using var connection = await store.OpenAsync(cancel);
            if (!await AddressIndex.HasOffsetsAsync(connection, store, cancel)) return new(default, 0, store.Describe, NoIndex(store));
            await using var transaction = await AddressIndex.SnapshotAsync(connection, cancel);
            switch (await AddressIndex.OffsetAsync(connection, cancel, transaction))
            {
                case null:
                    return new(default, 0, store.Describe, NoIndex(store));
                case { Format: not AddressIndexProjection.Format } other:
                    return new(default, 0, store.Describe, $"the address index in {store.Describe} is of format {other.Format}, "
                        + $"this romana reads format {AddressIndexProjection.Format} (the projection rebuilds it)");
                case var offset:
                    var found = await rows(connection, transaction);
                    if (await new JournalMarks(store).MismatchAsync(AddressIndexProjection.ProjectionName, offset.Ordering, cancel)
                        is { } mismatch)
                        return new(default, 0, store.Describe, $"{mismatch} (`romana audit rebuild` makes it again)");
                    return new(found, offset.Ordering, store.Describe, "") { Found = true };
            }
        }
        catch (DbException e)
        {
            return new(default, 0, store.Describe,
                $"the address index in {store.Describe} cannot be read ({Romana.Actors.Quoting.Bounded(e.Message)})");
        }
    }

    private static string NoIndex(AuditStore store) => $"no address index in {store.Describe} yet";

    private static string TooFar(string where, int maxTail) =>
        $"the address index in {where} is more than {maxTail:N0} events behind the journal (romana.audit.index.max-tail-events)";

    private static string From<T>(Read<T> read, int tail) =>
        $"answered from the address index in {read.Where} (up to journal ordering {read.Offset:N0}) and the {tail:N0} ipam events "
            + "after it";

    /// <summary>The ipam events after the offset and their changes; null when there are more than <paramref name="maxTail"/>.</summary>
    private static async Task<(int Events, List<IndexChange> Changes)?> TailAsync(AuditJournal journal, long offset, int maxTail,
        AddressIndexFold fold)
    {
        var changes = new List<IndexChange>();
        var read = 0;
        await journal.ByTagAfterAsync(EventTags.Ipam, offset, e =>
        {
            if (++read > maxTail) return false;
            fold.Apply(e, changes);
            return true;
        });
        return read > maxTail ? null : (read, changes);
    }
}
