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
/// Runs every registered projection live from one shared read (<see cref="ProjectionFanOut"/>): from the lowest of their
/// stored offsets, the journal read with AllEvents (the live query, which goes on with what is written later) in batches of
/// <see cref="ProjectionSettings.BatchEvents"/> events or <see cref="ProjectionSettings.BatchTime"/>, each batch handed to
/// every projection, which stores its tags' events with its offsets as one transaction. A projection that fails is left out
/// for a backoff and then catches up alone; a failure of the read itself starts the read again after a backoff that
/// doubles up to <see cref="ProjectionSettings.MaxBackoff"/>. One per journal: in a cluster, a singleton.
/// </summary>
public sealed class ProjectionRunner : ReceiveActor
{
    private readonly IReadOnlyList<IAuditProjection> _projections;
    private readonly ProjectionSettings _settings;
    private readonly Func<CancellationToken, Task<long>>? _journalEnd;
    private readonly JournalMarks _marks;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CancellationTokenSource _stop = new();
    private UniqueKillSwitch? _stream;
    private ProjectionFanOut? _fanOut;
    private WriteYield? _yield;

    /// <param name="journalEnd">The journal's last ordering, for yielding to bursts of writes (null: never yield).</param>
    public ProjectionRunner(IReadOnlyList<IAuditProjection> projections, JournalMarks marks, ProjectionSettings settings,
        Func<CancellationToken, Task<long>>? journalEnd)
    {
        _marks = marks;
        _projections = projections;
        _settings = settings;
        _journalEnd = journalEnd;
        Receive<Applied>(applied => _log.Debug("projections: applied {0} events of a batch", applied.Events));
        Receive<GetProgress>(_ => Sender.Tell(new Progress(_fanOut?.Progress() ?? ImmutableDictionary<string, long>.Empty)
        {
            Yields = _yield?.Waited.Waits ?? 0,
            Yielded = _yield?.Waited.Waited ?? TimeSpan.Zero,
        }));
    }

    /// <param name="marks">Where the runner notes which journal the projections were made from, and checks it.</param>
    public static Props Props(IReadOnlyList<IAuditProjection> projections, JournalMarks marks, ProjectionSettings settings,
        Func<CancellationToken, Task<long>>? journalEnd = null) =>
        Akka.Actor.Props.Create(() => new ProjectionRunner(projections, marks, settings, journalEnd));

    /// <summary>Asks how far each projection has been handed the journal (benchmarks, tests).</summary>
    public sealed record GetProgress : INoSerializationVerificationNeeded
    {
        public static readonly GetProgress Instance = new();
    }

    /// <param name="ReadThrough">Each projection's lowest offset: every event up to it was handed to it.</param>
    public sealed record Progress(ImmutableDictionary<string, long> ReadThrough) : INoSerializationVerificationNeeded
    {
        /// <summary>The bursts of writes the runner waited for since it started, and how long it waited in all.</summary>
        public long Yields { get; init; }

        public TimeSpan Yielded { get; init; }
    }

    private sealed record Applied(int Events) : INoSerializationVerificationNeeded;

    protected override void PreStart()
    {
        var journal = new AuditJournal(Context.System, PersistenceHosting.ReadJournalId);
        var log = _log;
        var marks = _marks;
        var fanOut = _fanOut = new ProjectionFanOut(_projections, _settings,
            (after, each, cancel) => journal.AllAfterAsync(after, each).WaitAsync(cancel), () => DateTimeOffset.UtcNow,
            message => log.Warning(message))
        {
            OffsetsOf = (projection, cancel) =>
                ProjectionCatchUp.TrustedOffsetsAsync(journal, projection, marks, message => log.Warning(message), cancel),
            Stored = (projection, through, cancel) => marks.MarkAsync(projection.Name, through, cancel),
        };
        foreach (var projection in _projections)
            _log.Info("projection {0}: running live on tags {1}", projection.Name, string.Join(", ", projection.Tags));
        var self = Self;
        var stop = _stop.Token;
        var batchEvents = _settings.BatchEvents;
        var yield = _yield = _journalEnd is { } end && _settings.Yield.MaxBehindEvents > 0
            ? new WriteYield(_settings.Yield, batchEvents, end, Task.Delay)
            : null;
        // Nothing new for a while still gives a projection that failed its moment to try again.
        var idle = Source.Tick(_settings.MinBackoff, _settings.MinBackoff, (IReadOnlyList<(long, IRomanaEvent?)>)[])
            .MapMaterializedValue(_ => NotUsed.Instance);
        var restart = RestartSettings.Create(_settings.MinBackoff, _settings.MaxBackoff, 0.2);
        _stream = RestartSource.OnFailuresWithBackoff(() =>
                Source.FromTask(Logged("starting the read", () => fanOut.StartAsync(stop)))
                    .ConcatMany(from => journal.LiveAll(from)
                        .GroupedWithin(_settings.BatchEvents, _settings.BatchTime)
                        .Select(IReadOnlyList<(long, IRomanaEvent?)> (batch) => batch.ToList())
                        .Merge(idle))
                    .SelectAsync(1, async read =>
                    {
                        // Before the batch: the first batch of a burst already waits.
                        if (yield is not null) await yield.BeforeBatchAsync(read.Count, fanOut.ReadThrough, stop);
                        return await fanOut.ApplyAsync(read, stop);
                    }), restart)
            .ViaMaterialized(KillSwitches.Single<int>(), Keep.Right)
            .To(Sink.ForEach<int>(n =>
            {
                if (n > 0) self.Tell(new Applied(n));
            }))
            .Run(Context.Materializer());
    }

    private async Task<T> Logged<T>(string what, Func<Task<T>> step)
    {
        try
        {
            return await step();
        }
        catch (Exception e) when (!_stop.IsCancellationRequested)
        {
            _log.Warning("projections: failed {0} ({1}: {2}); the shared read starts again after a backoff of {3} to {4}", what,
                e.GetType().Name, e.Message, _settings.MinBackoff, _settings.MaxBackoff);
            throw;
        }
    }

    protected override void PostStop()
    {
        _stop.Cancel();
        _stream?.Shutdown();
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
            await marks.MarkAsync(projection.Name, through, cancel);
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
            || await marks.MismatchAsync(projection.Name, offsets.Values.Max(), cancel) is not { } mismatch)
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
