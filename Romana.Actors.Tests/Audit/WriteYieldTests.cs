using Romana.Host.Audit;

namespace Romana.Actors.Tests.Audit;

/// <summary>The runner's yielding to bursts of writes, on a journal end the test scripts and a clock that only counts.</summary>
public class WriteYieldTests
{
    private static readonly YieldSettings Settings = new(MaxBehindEvents: 2_000, BusyEventsPerSecond: 100, TimeSpan.FromMilliseconds(100));
    private const int BatchEvents = 100;

    private long _end;
    private long _growth;
    private int _checks;

    /// <summary>Each check of the journal's end finds it <see cref="_growth"/> further on.</summary>
    private WriteYield Yield(YieldSettings? settings = null) => new(settings ?? Settings, BatchEvents, _ => Task.FromResult(_end), (_, _) =>
    {
        _checks++;
        _end += _growth;
        return Task.CompletedTask;
    });

    [Fact]
    public async Task An_empty_batch_never_waits_nor_asks_the_journal()
    {
        var journalAsked = false;
        var yield = new WriteYield(Settings, BatchEvents, _ => { journalAsked = true; return Task.FromResult(0L); },
            (_, _) => Task.CompletedTask);
        Assert.False(await yield.BeforeBatchAsync(0, 100, default));
        Assert.False(journalAsked);
    }

    [Fact]
    public async Task While_writes_go_on_it_waits_until_the_bound_then_reads_on_without_waiting_until_it_reached_the_end()
    {
        var yield = Yield();
        _end = 1_000;
        _growth = 300; // 3,000 events a second: a burst
        Assert.True(await yield.BeforeBatchAsync(50, 1_000, default));
        // It stopped waiting at the first check that found the journal the bound or more past what it read.
        Assert.Equal(7, _checks);
        Assert.InRange(_end - 1_000, Settings.MaxBehindEvents, Settings.MaxBehindEvents + _growth - 1);
        Assert.Equal(1, yield.Waited.Waits);

        // Catching up: the writes still going, and no wait however far behind, until within a batch of the end.
        for (var read = 1_100L; read < _end - BatchEvents; read += 100) Assert.False(await yield.BeforeBatchAsync(100, read, default));
        Assert.Equal(7, _checks);
        // Within a batch of the end, the burst that goes on is waited for again.
        Assert.True(await yield.BeforeBatchAsync(100, _end - 50, default));
        Assert.Equal(14, _checks);
        Assert.Equal(2, yield.Waited.Waits);
    }

    [Fact]
    public async Task When_the_writes_are_slow_it_reads_on_after_one_check()
    {
        var yield = Yield();
        _end = 5_000;
        _growth = 9; // 90 events a second: no burst
        Assert.False(await yield.BeforeBatchAsync(20, 4_990, default));
        Assert.False(await yield.BeforeBatchAsync(9, 5_009, default));
        Assert.Equal(2, _checks);
        Assert.Equal(0, yield.Waited.Waits);
    }

    [Fact]
    public async Task Already_the_bound_behind_or_turned_off_it_never_waits()
    {
        _growth = 1_000;
        _end = 10_000;
        Assert.False(await Yield().BeforeBatchAsync(100, 8_000, default));
        Assert.False(await Yield(YieldSettings.Off).BeforeBatchAsync(100, 9_999, default));
        Assert.Equal(0, _checks);
    }
}
