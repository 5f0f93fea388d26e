namespace Romana.Actors.Audit;

/// <summary>A holding as the index stores it: released or not, and the ordering of the event that released it.</summary>
public sealed record HoldingRow(HoldingId Id, AddressHolding Holding, long? Closed);

/// <summary>
/// A batch's index changes as the rows that store them, without I/O: a holding opened in the batch is inserted once, as
/// the batch leaves it (released already, or not inserted at all when dropped in it); only holdings of earlier batches
/// are updated (released) or deleted (dropped). So a batch is a few set-wise statements (a binary COPY, one UPDATE, one
/// DELETE) instead of a statement per change, and the stored index ends as applying the changes one by one leaves it.
/// </summary>
public sealed record IndexRows(
    IReadOnlyList<HoldingRow> Inserted,
    IReadOnlyList<HoldingClosed> Closed,
    IReadOnlyList<HoldingId> Dropped,
    IReadOnlyList<NodeChanged> NodeChanges)
{
    /// <param name="changes">A batch's changes, in the order <see cref="AddressIndexFold"/> made them.</param>
    public static IndexRows Of(IEnumerable<IndexChange> changes)
    {
        // Insertion order kept (a dropped holding leaves a hole), so the statements follow the journal.
        var inserted = new List<HoldingRow?>();
        var openedHere = new Dictionary<HoldingId, int>();
        var closed = new List<HoldingClosed>();
        var dropped = new List<HoldingId>();
        var nodeChanges = new List<NodeChanged>();
        foreach (var change in changes)
            switch (change)
            {
                case HoldingOpened opened:
                    openedHere[opened.Id] = inserted.Count;
                    inserted.Add(new HoldingRow(opened.Id, opened.Holding, null));
                    break;
                case HoldingClosed release when openedHere.TryGetValue(release.Id, out var at):
                    var row = inserted[at]!;
                    inserted[at] = row with
                    {
                        Holding = row.Holding with { To = release.To, ReleaseReason = release.Reason },
                        Closed = release.Ordering,
                    };
                    break;
                case HoldingClosed release:
                    closed.Add(release);
                    break;
                case HoldingDropped drop when openedHere.Remove(drop.Id, out var at):
                    inserted[at] = null;
                    break;
                case HoldingDropped drop:
                    dropped.Add(drop.Id);
                    break;
                case NodeChanged node:
                    nodeChanges.Add(node);
                    break;
            }
        return new IndexRows(inserted.OfType<HoldingRow>().ToList(), closed, dropped, nodeChanges);
    }

    /// <summary>These rows applied to stored rows held in memory, as the database applies them (a test's model of the store).</summary>
    public void ApplyTo(List<HoldingRow> rows)
    {
        var drop = Dropped.ToHashSet();
        rows.RemoveAll(r => drop.Contains(r.Id));
        var close = Closed.ToDictionary(c => c.Id);
        for (var i = 0; i < rows.Count; i++)
            if (close.TryGetValue(rows[i].Id, out var c))
                rows[i] = rows[i] with { Holding = rows[i].Holding with { To = c.To, ReleaseReason = c.Reason }, Closed = c.Ordering };
        rows.AddRange(Inserted);
    }
}
