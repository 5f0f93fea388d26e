using System.Collections.Immutable;

namespace Romana.Actors.Audit;

/// <summary>An event read by tag, with its place in the journal: the ordering column, global and increasing.</summary>
public sealed record TaggedEvent(string Tag, long Ordering, IRomanaEvent Event);

/// <summary>
/// A read model kept from the journal: derived data that can be deleted and rebuilt from the events alone. It stores, with
/// what it derived, the last ordering it applied of each tag it reads, in the same transaction, so a crash mid-write
/// leaves the previous state and its offsets, and the runner resumes from there.
/// </summary>
public interface IAuditProjection
{
    /// <summary>A short name for logs and metrics: "checkpoints", "address-index".</summary>
    string Name { get; }

    ImmutableArray<string> Tags { get; }

    /// <summary>The last ordering applied of each tag; a tag missing is read from the start.</summary>
    Task<ImmutableDictionary<string, long>> OffsetsAsync(CancellationToken cancel);

    /// <summary>Folds a batch, in journal order within each tag, and stores it with the new offsets as one transaction.</summary>
    Task ApplyAsync(IReadOnlyList<TaggedEvent> batch, CancellationToken cancel);

    /// <summary>
    /// As <see cref="ApplyAsync(IReadOnlyList{TaggedEvent}, CancellationToken)"/>, knowing more: every event of its tags up to
    /// <paramref name="readThrough"/> is in this batch or was in an earlier one (the runner and rebuilds read the journal in
    /// order), so a tag with no event lately is nonetheless known up to there. A projection may store that as its offsets.
    /// </summary>
    Task ApplyAsync(IReadOnlyList<TaggedEvent> batch, long readThrough, CancellationToken cancel) => ApplyAsync(batch, cancel);

    /// <summary>Drops everything derived and the offsets: the next batches rebuild from the start (`romana audit rebuild`).</summary>
    Task ResetAsync(CancellationToken cancel);
}
