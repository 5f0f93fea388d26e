using System.Collections.Immutable;
using Romana.Actors.Audit;

namespace Romana.Host.Audit;

/// <summary>
/// One read of the journal shared by every projection: each batch the live query hands over is given to each projection,
/// which takes the events of its tags after its own offsets (<see cref="ProjectionCatchUp.Of"/>). Every event is thus read
/// and deserialized once, however many projections there are. A projection that fails is left out for a backoff that
/// doubles from <see cref="ProjectionSettings.MinBackoff"/> to <see cref="ProjectionSettings.MaxBackoff"/> while the others
/// go on; then it reads its stored offsets again and catches up alone (the journal's current events, up to where the shared
/// read is) before it takes the shared batches again. Without Akka: the runner drives it from the live query, tests from lists.
/// </summary>
public sealed class ProjectionFanOut
{
    /// <summary>The journal's events after an ordering, in its order, until <c>each</c> returns false (a current query).</summary>
    public delegate Task CurrentRead(long afterOrdering, Func<long, IRomanaEvent?, bool> each, CancellationToken cancel);

    private readonly IReadOnlyList<Lane> _lanes;
    private readonly ProjectionSettings _settings;
    private readonly CurrentRead _readCurrent;
    private readonly Func<DateTimeOffset> _now;
    private readonly Action<string> _warn;

    /// <summary>How far the shared read has handed events over: where it started, then each batch's last ordering.</summary>
    private long _readThrough;

    public ProjectionFanOut(IReadOnlyList<IAuditProjection> projections, ProjectionSettings settings, CurrentRead readCurrent,
        Func<DateTimeOffset> now, Action<string> warn)
    {
        _lanes = [.. projections.Select(p => new Lane(p, settings.MinBackoff))];
        _settings = settings;
        _readCurrent = readCurrent;
        _now = now;
        _warn = warn;
    }

    /// <summary>How a projection's stored offsets are read (the runner: checked against the journal's marks).</summary>
    public Func<IAuditProjection, CancellationToken, Task<ImmutableDictionary<string, long>>> OffsetsOf { get; init; } =
        (projection, cancel) => projection.OffsetsAsync(cancel);

    /// <summary>What follows a batch a projection stored, up to an ordering (the runner: marks the journal it read).</summary>
    public Func<IAuditProjection, long, CancellationToken, Task> Stored { get; init; } = (_, _, _) => Task.CompletedTask;

    /// <summary>The last ordering the shared read handed over.</summary>
    public long ReadThrough => _readThrough;

    /// <summary>How far each projection has been handed the journal (its lowest tag offset); 0 before it read its offsets.</summary>
    public ImmutableDictionary<string, long> Progress() =>
        _lanes.ToImmutableDictionary(l => l.Projection.Name, l => Volatile.Read(ref l.Position));

    /// <summary>
    /// Before the shared read starts, or starts again after it failed: each projection without offsets reads them (those
    /// that kept theirs keep their state); the read starts at the lowest of them. Fails when no projection has offsets.
    /// </summary>
    public async Task<long> StartAsync(CancellationToken cancel)
    {
        foreach (var lane in _lanes.Where(l => l.Offsets is null && l.RetryAt <= _now()))
            await GuardedAsync(lane, "reading its offsets", () => LoadAsync(lane, cancel), cancel);
        var ready = _lanes.Where(l => l.Offsets is not null).ToList();
        if (ready.Count == 0) throw new InvalidOperationException("no projection could read its offsets");
        _readThrough = ready.Min(l => l.Position);
        return _readThrough;
    }

    /// <summary>
    /// One batch of the shared read, in journal order (empty: nothing new, a moment for a projection that failed to try
    /// again). Returns the events the projections applied.
    /// </summary>
    public async Task<int> ApplyAsync(IReadOnlyList<(long Ordering, IRomanaEvent? Event)> read, CancellationToken cancel)
    {
        var through = read.Count == 0 ? _readThrough : Math.Max(_readThrough, read[^1].Ordering);
        var applied = 0;
        foreach (var lane in _lanes)
        {
            if (lane.RetryAt > _now()) continue;
            await GuardedAsync(lane, "applying a batch", async () =>
            {
                if (lane.Offsets is null) await LoadAsync(lane, cancel);
                if (lane.Position < _readThrough) applied += await CatchUpAloneAsync(lane, _readThrough, cancel);
                if (read.Count > 0) applied += await ApplyToAsync(lane, read, through, cancel);
            }, cancel);
        }
        _readThrough = through;
        return applied;
    }

    private async Task LoadAsync(Lane lane, CancellationToken cancel)
    {
        var offsets = await OffsetsOf(lane.Projection, cancel);
        // Every tag the projection reads: a tag it has no offset for is read from the start.
        lane.Offsets = lane.Projection.Tags.ToImmutableDictionary(t => t, t => offsets.GetValueOrDefault(t));
        Volatile.Write(ref lane.Position, lane.Offsets.Values.Min());
    }

    /// <summary>The events of <paramref name="read"/> the projection has not applied, stored with how far the read went.</summary>
    private async Task<int> ApplyToAsync(Lane lane, IEnumerable<(long Ordering, IRomanaEvent? Event)> read, long through,
        CancellationToken cancel)
    {
        var offsets = lane.Offsets!;
        var (events, _) = ProjectionCatchUp.Of(lane.Projection, offsets, read);
        await lane.Projection.ApplyAsync(events, through, cancel);
        await Stored(lane.Projection, through, cancel);
        // Every event of its tags up to here was handed over: the offsets move on even for a tag that had none.
        lane.Offsets = offsets.ToImmutableDictionary(o => o.Key, o => Math.Max(o.Value, through));
        Volatile.Write(ref lane.Position, lane.Offsets.Values.Min());
        return events.Count;
    }

    /// <summary>
    /// A projection behind the shared read (it failed, or started later) reads the journal's current events from its own
    /// position up to <paramref name="upTo"/>, in windows of a batch, before it takes the shared batches again.
    /// </summary>
    private async Task<int> CatchUpAloneAsync(Lane lane, long upTo, CancellationToken cancel)
    {
        var applied = 0;
        while (lane.Position < upTo)
        {
            var window = new List<(long Ordering, IRomanaEvent? Event)>();
            await _readCurrent(lane.Position, (ordering, e) =>
            {
                if (ordering > upTo) return false;
                window.Add((ordering, e));
                return window.Count < _settings.BatchEvents;
            }, cancel);
            // The shared read handed these orderings over, so the journal has them: a read that ends short is a failure.
            if (window.Count == 0)
                throw new InvalidOperationException($"the journal's current events ended at {lane.Position}, before {upTo}");
            // A window that stopped before upTo without filling up read everything there is up to upTo.
            var through = window.Count < _settings.BatchEvents ? upTo : window[^1].Ordering;
            applied += await ApplyToAsync(lane, window, through, cancel);
        }
        return applied;
    }

    /// <summary>A step of one projection: a failure leaves it out for its backoff, then it reads its stored offsets again.</summary>
    private async Task GuardedAsync(Lane lane, string what, Func<Task> step, CancellationToken cancel)
    {
        try
        {
            await step();
            lane.Backoff = _settings.MinBackoff;
        }
        catch (Exception e) when (!cancel.IsCancellationRequested)
        {
            lane.Offsets = null;
            lane.RetryAt = _now() + lane.Backoff;
            _warn($"projection {lane.Projection.Name}: failed {what} ({e.GetType().Name}: {e.Message}); it starts again from its " +
                $"stored offsets in {lane.Backoff.TotalSeconds:0.###} s, the other projections go on");
            lane.Backoff = TimeSpan.FromTicks(Math.Min(lane.Backoff.Ticks * 2, _settings.MaxBackoff.Ticks));
        }
    }

    private sealed class Lane(IAuditProjection projection, TimeSpan backoff)
    {
        public IAuditProjection Projection { get; } = projection;

        /// <summary>Each tag's last ordering handed over (applied and stored, or held in the projection's memory); null: to read.</summary>
        public ImmutableDictionary<string, long>? Offsets { get; set; }

        /// <summary>The lowest of <see cref="Offsets"/>, read by the runner's progress from another thread.</summary>
        public long Position;

        public DateTimeOffset RetryAt { get; set; } = DateTimeOffset.MinValue;
        public TimeSpan Backoff { get; set; } = backoff;
    }
}
