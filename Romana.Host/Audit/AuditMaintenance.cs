using System.Collections.Immutable;
using System.Data.Common;
using System.Diagnostics;
using Romana.Actors.Audit;
using Romana.Host.Composition;
using Romana.Host.Persistence;

namespace Romana.Host.Audit;

/// <summary>What a replay started from: a checkpoint (null: the journal's start) and the events read after it.</summary>
public sealed record ReplaySource(CheckpointRow? Checkpoint, long TailRead, string Note);

/// <summary>One projection brought to the journal's end: the events it applied, the checkpoints it wrote, how long it took.</summary>
public sealed record ProjectionRun(string Projection, long Events, int Checkpoints, double Seconds, long LastPayloadBytes);

/// <summary>Replays from checkpoints, and the runs that bring the projections to the journal's end (rebuild, simulate).</summary>
public static class AuditMaintenance
{
    /// <summary>
    /// The state at <paramref name="until"/> (null: the end): from the newest checkpoint of the current format that covers
    /// nothing later than <paramref name="until"/>, then the tail after its offsets. Every event such a checkpoint applied
    /// is at or before <paramref name="until"/>, so it is exactly where a full replay would be after those events, and the
    /// tail is read and applied as a full replay reads it. No store, no such checkpoint: the full replay.
    /// </summary>
    public static async Task<(JournalReplay Replay, ReplaySource Source)> ReplayAsync(AuditJournal journal, AuditStore? store,
        DateTimeOffset? until, TimeSpan lateWrites, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var notes = new List<string>();
        (CheckpointRow Row, byte[] Payload)? checkpoint = null;
        var untrusted = false;
        if (store is null) notes.Add("no audit store beside the journal");
        else
            try
            {
                checkpoint = await CheckpointStore.NewestAsync(store, CheckpointProjection.Format, until, cancel);
                if (checkpoint is { } candidate && await new JournalMarks(store).MismatchAsync(
                        CheckpointProjection.ProjectionName, candidate.Row.Offsets.Values.DefaultIfEmpty().Max(), cancel) is { } mismatch)
                {
                    notes.Add($"{mismatch}; its checkpoints are not used (`romana audit rebuild` makes them again)");
                    checkpoint = null;
                    untrusted = true;
                }
                var others = await CheckpointStore.OtherFormatsAsync(store, CheckpointProjection.Format, cancel);
                if (others > 0) notes.Add($"{others} checkpoints of another format than {CheckpointProjection.Format} ignored");
                if (checkpoint is null && !untrusted)
                    notes.Add(until is null ? "no checkpoint yet" : "no checkpoint at or before that time");
            }
            catch (DbException e)
            {
                // A store without the checkpoints table (the index made it, or it is from another build): no checkpoint.
                notes.Add($"no checkpoints in {store.Describe} ({e.Message.Split('\n')[0]})");
            }
        if (checkpoint is not { } found)
        {
            var (full, read) = await AuditQueries.ReplayFromAsync(journal, new JournalReplay(until),
                ImmutableDictionary<string, long>.Empty, until, lateWrites).WaitAsync(cancel);
            notes.Add($"replayed the journal from its start: {read:N0} events read in {clock.Elapsed.TotalSeconds:0.000} s");
            return (full, new ReplaySource(null, read, string.Join("; ", notes)));
        }
        var start = JournalReplay.FromCheckpoint(ReplayCheckpoint.Decode(found.Payload), until);
        var (replay, tail) = await AuditQueries.ReplayFromAsync(journal, start, found.Row.Offsets, until, lateWrites).WaitAsync(cancel);
        notes.Add($"from the checkpoint of {found.Row.Events:N0} events covering until " +
            $"{found.Row.CoversUntil.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}, then {tail:N0} events read after it, in " +
            $"{clock.Elapsed.TotalSeconds:0.000} s");
        return (replay, new ReplaySource(found.Row, tail, string.Join("; ", notes)));
    }

    /// <summary>
    /// Every registered projection on <paramref name="journal"/>'s audit store (created if missing), brought to the journal's
    /// current end; with <paramref name="reset"/> dropped first and made again from the start (`romana audit rebuild`). The
    /// journal is opened read-only: only the audit store is written.
    /// </summary>
    public static async Task<ImmutableArray<ProjectionRun>> CatchUpAsync(JournalSettings journal, AuditSettings settings, bool reset,
        Action<string, long>? progress, CancellationToken cancel, Action<string>? log = null)
    {
        await using var audit = await RomanaHost.StartAuditAsync(journal, oneShot: false);
        var store = AuditStore.For(journal, readOnly: false)
            ?? throw new ArgumentException("a journal in memory has no audit store", nameof(journal));
        var marks = new JournalMarks(store);
        var runs = ImmutableArray.CreateBuilder<ProjectionRun>();
        foreach (var projection in ProjectionCatchUp.Registered(store, settings, null))
        {
            var clock = Stopwatch.StartNew();
            if (reset)
            {
                await projection.ResetAsync(cancel);
                await marks.ForgetAsync(projection.Name, cancel);
            }
            // Windows as long as a checkpoint's stretch: one checkpoint a window, and few queries.
            var events = await ProjectionCatchUp.RunAsync(audit.Audit, projection, marks,
                Math.Max(settings.Checkpoints.EveryEvents, settings.Projections.BatchEvents),
                applied => progress?.Invoke(projection.Name, applied), cancel, log);
            var checkpoints = projection as CheckpointProjection;
            runs.Add(new ProjectionRun(projection.Name, events, checkpoints?.Written ?? 0, clock.Elapsed.TotalSeconds,
                checkpoints?.LastPayloadBytes ?? 0));
        }
        return runs.ToImmutable();
    }
}
