using System.Collections.Immutable;
using Akka;
using Akka.Actor;
using Akka.Event;
using Akka.Streams;
using Akka.Streams.Dsl;
using Romana.Actors.Audit;
using Romana.Host.Persistence;

namespace Romana.Host.Audit;

/// <summary>
/// Runs every registered projection live: from its stored offsets, each of its tags read with EventsByTag (the live query,
/// which goes on with what is written later), merged, in batches of <see cref="ProjectionSettings.BatchEvents"/> events or
/// <see cref="ProjectionSettings.BatchTime"/>, each batch stored by the projection with its offsets as one transaction. A
/// failure (the database away, a transaction refused) starts that projection again from its stored offsets after a
/// backoff that doubles up to <see cref="ProjectionSettings.MaxBackoff"/>. One per journal: in a cluster, a singleton.
/// </summary>
public sealed class ProjectionRunner : ReceiveActor
{
    private readonly IReadOnlyList<IAuditProjection> _projections;
    private readonly ProjectionSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<UniqueKillSwitch> _streams = new();

    public ProjectionRunner(IReadOnlyList<IAuditProjection> projections, ProjectionSettings settings)
    {
        _projections = projections;
        _settings = settings;
        Receive<Applied>(applied => _log.Debug("projection {0}: stored a batch of {1} events", applied.Projection, applied.Events));
    }

    public static Props Props(IReadOnlyList<IAuditProjection> projections, ProjectionSettings settings) =>
        Akka.Actor.Props.Create(() => new ProjectionRunner(projections, settings));

    private sealed record Applied(string Projection, int Events);

    protected override void PreStart()
    {
        var journal = new AuditJournal(Context.System, PersistenceHosting.ReadJournalId);
        var materializer = Context.Materializer();
        var self = Self;
        foreach (var projection in _projections)
        {
            _log.Info("projection {0}: running live on tags {1}", projection.Name, string.Join(", ", projection.Tags));
            var restart = RestartSettings.Create(_settings.MinBackoff, _settings.MaxBackoff, 0.2);
            var (stream, _) = RestartSource.OnFailuresWithBackoff(() => Run(journal, projection), restart)
                .ViaMaterialized(KillSwitches.Single<int>(), Keep.Right)
                .ToMaterialized(Sink.ForEach<int>(n => self.Tell(new Applied(projection.Name, n))), Keep.Both)
                .Run(materializer);
            _streams.Add(stream);
        }
    }

    /// <summary>One run of a projection: its offsets, then its tags live and merged, in batches, each stored.</summary>
    private Source<int, NotUsed> Run(AuditJournal journal, IAuditProjection projection) =>
        Source.FromTask(Logged(projection, "reading its offsets", () => projection.OffsetsAsync(_stop.Token)))
            .ConcatMany(offsets => Source.From(projection.Tags)
                .MergeMany(projection.Tags.Length, tag => journal.LiveByTag(tag, offsets.GetValueOrDefault(tag))))
            .GroupedWithin(_settings.BatchEvents, _settings.BatchTime)
            .SelectAsync(1, async batch =>
            {
                var events = batch.ToList();
                await Logged(projection, $"storing a batch of {events.Count} events", async () =>
                {
                    await projection.ApplyAsync(events, _stop.Token);
                    return 0;
                });
                return events.Count;
            });

    private async Task<T> Logged<T>(IAuditProjection projection, string what, Func<Task<T>> step)
    {
        try
        {
            return await step();
        }
        catch (Exception e) when (!_stop.IsCancellationRequested)
        {
            _log.Warning("projection {0}: failed {1} ({2}: {3}); it starts again from its stored offsets after a backoff of " +
                "{4} to {5}", projection.Name, what, e.GetType().Name, e.Message, _settings.MinBackoff, _settings.MaxBackoff);
            throw;
        }
    }

    protected override void PostStop()
    {
        _stop.Cancel();
        foreach (var stream in _streams) stream.Shutdown();
        _stop.Dispose();
        _log.Info("projection runner stopped");
    }
}

/// <summary>
/// A projection brought to the journal's current end without the live query (a rebuild, the end of a simulation, a
/// test): its tags are read in windows of the journal's ordering, each window's events of every tag applied as one batch
/// in journal order, so the tags move forward together and the checkpoints cover the same stretch of every tag.
/// </summary>
public static class ProjectionCatchUp
{
    /// <returns>The events applied.</returns>
    public static async Task<long> RunAsync(AuditJournal journal, IAuditProjection projection, long window, Action<long>? progress,
        CancellationToken cancel)
    {
        var offsets = await projection.OffsetsAsync(cancel);
        var position = projection.Tags.ToDictionary(t => t, t => offsets.GetValueOrDefault(t));
        // The ordering of the next event of a tag when it is known (past a window), so a sparse tag is not read again until
        // the windows reach it; a tag whose read ended within a window is at the journal's end.
        var next = new Dictionary<string, long>();
        var ended = new HashSet<string>();
        long applied = 0;
        while (ended.Count < projection.Tags.Length)
        {
            cancel.ThrowIfCancellationRequested();
            var from = projection.Tags.Where(t => !ended.Contains(t)).Min(t => next.TryGetValue(t, out var n) ? n - 1 : position[t]);
            var to = from + window;
            var batch = new List<TaggedEvent>();
            foreach (var tag in projection.Tags.Where(t => !ended.Contains(t) && (!next.TryGetValue(t, out var n) || n <= to)))
            {
                var beyond = false;
                await journal.ByTagAfterAsync(tag, position[tag], e =>
                {
                    if (e.Ordering > to)
                    {
                        next[tag] = e.Ordering;
                        beyond = true;
                        return false;
                    }
                    batch.Add(e);
                    position[tag] = e.Ordering;
                    return true;
                }).WaitAsync(cancel);
                if (!beyond) ended.Add(tag);
            }
            batch.Sort((a, b) => a.Ordering.CompareTo(b.Ordering));
            if (batch.Count > 0) await projection.ApplyAsync(batch, cancel);
            applied += batch.Count;
            progress?.Invoke(applied);
        }
        if (projection is CheckpointProjection checkpoints) await checkpoints.FlushAsync(cancel);
        return applied;
    }

    /// <summary>The projections the build registers, on <paramref name="store"/>: the runner and `audit rebuild` run these.</summary>
    public static ImmutableArray<IAuditProjection> Registered(AuditStore store, AuditSettings settings, Action<string>? log) =>
    [
        new CheckpointProjection(store, settings.Checkpoints, log),
    ];
}
