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
/// Runs every registered projection live: from its stored offsets, the journal read with AllEvents (the live query, which
/// goes on with what is written later) and filed by tag as the tagging adapter tags, in batches of
/// <see cref="ProjectionSettings.BatchEvents"/> events or <see cref="ProjectionSettings.BatchTime"/>, each batch stored by the
/// projection with its offsets as one transaction. A failure (the database away, a transaction refused) starts that
/// projection again from its stored offsets after a backoff that doubles up to <see cref="ProjectionSettings.MaxBackoff"/>.
/// One per journal: in a cluster, a singleton.
/// </summary>
public sealed class ProjectionRunner : ReceiveActor
{
    private readonly IReadOnlyList<IAuditProjection> _projections;
    private readonly JournalMarks _marks;
    private readonly ProjectionSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<UniqueKillSwitch> _streams = new();

    public ProjectionRunner(IReadOnlyList<IAuditProjection> projections, JournalMarks marks, ProjectionSettings settings)
    {
        _projections = projections;
        _marks = marks;
        _settings = settings;
        Receive<Applied>(applied => _log.Debug("projection {0}: stored a batch of {1} events", applied.Projection, applied.Events));
    }

    /// <param name="marks">Where the runner notes which journal the projections were made from, and checks it.</param>
    public static Props Props(IReadOnlyList<IAuditProjection> projections, JournalMarks marks, ProjectionSettings settings) =>
        Akka.Actor.Props.Create(() => new ProjectionRunner(projections, marks, settings));

    private sealed record Applied(string Projection, int Events) : INoSerializationVerificationNeeded;

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

    /// <summary>
    /// One run of a projection: its offsets, then the journal live in its order from the lowest of them (one query, not one
    /// per tag: a tag with few events would keep a read by tag polling far behind), its tags' events in batches, each
    /// stored with how far the journal was read.
    /// </summary>
    private Source<int, NotUsed> Run(AuditJournal journal, IAuditProjection projection) =>
        Source.FromTask(Logged(projection, "reading its offsets",
                () => ProjectionCatchUp.TrustedOffsetsAsync(journal, projection, _marks, message => _log.Warning(message), _stop.Token)))
            .ConcatMany(offsets => journal.LiveAll(projection.Tags.Min(t => offsets.GetValueOrDefault(t)))
                .GroupedWithin(_settings.BatchEvents, _settings.BatchTime)
                .SelectAsync(1, async read =>
                {
                    var (events, through) = ProjectionCatchUp.Of(projection, offsets, read);
                    await Logged(projection, $"storing a batch of {events.Count} events", async () =>
                    {
                        await projection.ApplyAsync(events, through, _stop.Token);
                        await _marks.MarkAsync(journal, projection.Name, through, _stop.Token);
                        return 0;
                    });
                    return events.Count;
                }));

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
/// test): the journal read in its order from the projection's lowest offset, in windows of events, each window's events
/// of its tags applied as one batch with how far the window went, so the tags move forward together.
/// </summary>
public static class ProjectionCatchUp
{
    /// <returns>The events applied.</returns>
    public static async Task<long> RunAsync(AuditJournal journal, IAuditProjection projection, JournalMarks marks, int window,
        Action<long>? progress, CancellationToken cancel, Action<string>? log = null)
    {
        var offsets = await TrustedOffsetsAsync(journal, projection, marks, log, cancel);
        var position = projection.Tags.Min(t => offsets.GetValueOrDefault(t));
        long applied = 0;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            var read = new List<(long Ordering, IRomanaEvent? Event)>();
            var full = false;
            await journal.AllAfterAsync(position, (ordering, e) =>
            {
                read.Add((ordering, e));
                full = read.Count >= window;
                return !full;
            }).WaitAsync(cancel);
            if (read.Count == 0) break;
            var (events, through) = Of(projection, offsets, read);
            await projection.ApplyAsync(events, through, cancel);
            await marks.MarkAsync(journal, projection.Name, through, cancel);
            applied += events.Count;
            position = through;
            progress?.Invoke(applied);
            if (!full) break;
        }
        if (projection is CheckpointProjection checkpoints) await checkpoints.FlushAsync(cancel);
        return applied;
    }

    /// <summary>
    /// The projection's stored offsets, when what it derived comes from this journal (<see cref="JournalMarks"/>); otherwise
    /// (a journal replaced by hand beside its old store) it is reset, with one line saying why, and goes from the start.
    /// </summary>
    public static async Task<ImmutableDictionary<string, long>> TrustedOffsetsAsync(AuditJournal journal, IAuditProjection projection,
        JournalMarks marks, Action<string>? log, CancellationToken cancel)
    {
        var offsets = await projection.OffsetsAsync(cancel);
        if (offsets.IsEmpty
            || await marks.MismatchAsync(journal, projection.Name, offsets.Values.Max(), cancel) is not { } mismatch)
            return offsets;
        log?.Invoke($"{mismatch}: it is made again from the journal's start");
        await projection.ResetAsync(cancel);
        await marks.ForgetAsync(projection.Name, cancel);
        return await projection.OffsetsAsync(cancel);
    }

    /// <summary>Of what was read in the journal's order, the projection's events it has not applied, and how far it goes.</summary>
    public static (List<TaggedEvent> Events, long ReadThrough) Of(IAuditProjection projection, IReadOnlyDictionary<string, long> offsets,
        IEnumerable<(long Ordering, IRomanaEvent? Event)> read)
    {
        var events = new List<TaggedEvent>();
        long through = 0;
        foreach (var (ordering, e) in read)
        {
            through = Math.Max(through, ordering);
            if (e is not null && EventTagger.TagOf(e) is { } tag && projection.Tags.Contains(tag)
                && ordering > offsets.GetValueOrDefault(tag))
                events.Add(new TaggedEvent(tag, ordering, e));
        }
        return (events, through);
    }

    /// <summary>The projections the build registers, on <paramref name="store"/>: the runner and `audit rebuild` run these.</summary>
    public static ImmutableArray<IAuditProjection> Registered(AuditStore store, AuditSettings settings, Action<string>? log) =>
    [
        new CheckpointProjection(store, settings.Checkpoints, log),
        new AddressIndexProjection(store, log),
    ];
}
