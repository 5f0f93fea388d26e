namespace Romana.Host.Audit;

/// <summary>
/// The projections give way to a burst of writes: they are derived data, a real cluster writes a few events a second, and
/// on a small machine the folding and indexing of every event takes CPU from the writes themselves. Before each batch
/// the runner checks how fast the journal grows and, while it grows by more than
/// <see cref="YieldSettings.BusyEventsPerSecond"/>, reads nothing. Bounded: once the journal is
/// <see cref="YieldSettings.MaxBehindEvents"/> past what the runner read, or when the writes slow down, the runner reads on
/// and does not wait again until it is within a batch of the journal's end. Under sustained load it is thus never further
/// behind than the bound plus what piles up while it catches up, as without yielding.
/// </summary>
public sealed class WriteYield(YieldSettings settings, int batchEvents, Func<CancellationToken, Task<long>> journalEnd,
    Func<TimeSpan, CancellationToken, Task> delay)
{
    private bool _catchingUp;
    private long _waits;
    private long _waitedTicks;

    /// <summary>How many bursts the runner waited for, and how long in all (read from another thread).</summary>
    public (long Waits, TimeSpan Waited) Waited => (Interlocked.Read(ref _waits), TimeSpan.FromTicks(Interlocked.Read(ref _waitedTicks)));

    /// <summary>
    /// Waits (or not) before a batch of <paramref name="events"/> events is applied; <paramref name="readThrough"/>: the last
    /// ordering the runner applied before it. An empty batch (nothing written) never waits.
    /// </summary>
    /// <returns>Whether it waited.</returns>
    public async Task<bool> BeforeBatchAsync(int events, long readThrough, CancellationToken cancel)
    {
        if (settings.MaxBehindEvents <= 0 || events == 0) return false;
        var previous = await journalEnd(cancel);
        if (_catchingUp)
        {
            if (previous - readThrough > batchEvents) return false;
            _catchingUp = false;
        }
        var busy = Math.Max(1, (long)(settings.BusyEventsPerSecond * settings.CheckInterval.TotalSeconds));
        var waited = false;
        while (previous - readThrough < settings.MaxBehindEvents)
        {
            await delay(settings.CheckInterval, cancel);
            Interlocked.Add(ref _waitedTicks, settings.CheckInterval.Ticks);
            var end = await journalEnd(cancel);
            if (end - previous < busy) break;
            if (!waited) Interlocked.Increment(ref _waits);
            waited = true;
            previous = end;
        }
        // Read on to the end before waiting again: a wait per batch would make the catch-up crawl.
        _catchingUp = waited || previous - readThrough >= settings.MaxBehindEvents;
        return waited;
    }
}

/// <param name="MaxBehindEvents">The most events written and not read that the runner waits for (0: it never waits).</param>
/// <param name="BusyEventsPerSecond">The journal growing faster than this is a burst of writes.</param>
/// <param name="CheckInterval">How often a waiting runner checks the journal's end.</param>
public sealed record YieldSettings(long MaxBehindEvents, double BusyEventsPerSecond, TimeSpan CheckInterval)
{
    public static readonly YieldSettings Off = new(0, 100, TimeSpan.FromMilliseconds(100));
}
