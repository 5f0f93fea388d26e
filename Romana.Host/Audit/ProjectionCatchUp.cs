using Romana.Actors.Audit;

namespace Romana.Host.Audit;

/// <summary>
/// Runs a projection to the journal's current end: each of its tags from its stored offset, read with
/// <see cref="AuditJournal.ByTagAfterAsync"/> in batches handed to <see cref="IAuditProjection.ApplyAsync"/>. What a
/// rebuild does after a reset, and what the tests drive a projection with.
/// </summary>
public static class ProjectionCatchUp
{
    /// <returns>The events applied.</returns>
    public static async Task<long> RunAsync(AuditJournal journal, IAuditProjection projection, int batchSize, CancellationToken cancel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var offsets = await projection.OffsetsAsync(cancel);
        long applied = 0;
        foreach (var tag in projection.Tags)
        {
            var after = offsets.GetValueOrDefault(tag);
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                var batch = new List<TaggedEvent>(batchSize);
                await journal.ByTagAfterAsync(tag, after, e =>
                {
                    batch.Add(e);
                    return batch.Count < batchSize;
                });
                if (batch.Count == 0) break;
                await projection.ApplyAsync(batch, cancel);
                applied += batch.Count;
                after = batch[^1].Ordering;
                if (batch.Count < batchSize) break;
            }
        }
        return applied;
    }
}
