using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Host.Audit;
using ForwarderFailed = Romana.Actors.Health.HealthMessages.ForwarderFailed;
using NodeJoined = Romana.Actors.Ipam.SubnetMessages.NodeJoined;

namespace Romana.Actors.Tests.Audit;

/// <summary>
/// The shared read of the projections, without Akka or a database: a journal as a list, projections that store what they
/// are handed as a transaction would (all of a batch or nothing), a clock the test moves.
/// </summary>
public class ProjectionFanOutTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly ProjectionSettings Settings =
        new(true, BatchEvents: 4, TimeSpan.FromSeconds(1), MinBackoff: TimeSpan.FromSeconds(1), MaxBackoff: TimeSpan.FromSeconds(4));

    /// <summary>
    /// Orderings 1 to 40 with holes (10, 20 and 33 missing, as rolled-back writes leave them), every third event health's,
    /// ordering 15 not Romana's; the reason names the ordering.
    /// </summary>
    private static readonly ImmutableArray<(long Ordering, IRomanaEvent? Event)> Journal =
    [
        .. Enumerable.Range(1, 40).Where(o => o is not (10 or 20 or 33)).Select(o => ((long)o, o == 15 ? null : o % 3 == 0
            ? (IRomanaEvent)new ForwarderFailed(new SubnetId("s1"), new NodeName("n"), Start.AddSeconds(o), $"e{o}")
            : new NodeJoined(new SubnetId("s1"), new NodeName($"n{o}"), Ipv4.Parse("10.0.0.1"), Start.AddSeconds(o), $"e{o}"))),
    ];

    private static IEnumerable<long> OrderingsOf(params string[] tags) => Journal
        .Where(j => j.Event is { } e && tags.Contains(EventTagger.TagOf(e)!)).Select(j => j.Ordering);

    private DateTimeOffset _now = Start;
    private readonly List<string> _warnings = new();

    private ProjectionFanOut FanOut(params Recording[] projections) => new(projections, Settings, ReadCurrentAsync, () => _now,
        _warnings.Add);

    private static Task ReadCurrentAsync(long after, Func<long, IRomanaEvent?, bool> each, CancellationToken cancel)
    {
        foreach (var (ordering, e) in Journal.Where(j => j.Ordering > after))
            if (!each(ordering, e)) break;
        return Task.CompletedTask;
    }

    /// <summary>The shared read from <paramref name="from"/>, in batches of <paramref name="size"/> events, up to an ordering.</summary>
    private static IEnumerable<IReadOnlyList<(long, IRomanaEvent?)>> Batches(long from, int size, long upTo = long.MaxValue) =>
        Journal.Where(j => j.Ordering > from && j.Ordering <= upTo).Chunk(size).Select(c => (IReadOnlyList<(long, IRomanaEvent?)>)c);

    [Fact]
    public async Task One_read_gives_each_projection_the_events_of_its_tags_after_its_own_offsets_each_once_in_order()
    {
        var all = new Recording("all", [EventTags.Ipam, EventTags.Health]);
        var ipam = new Recording("ipam", [EventTags.Ipam], stored: new() { [EventTags.Ipam] = 12 });
        var fanOut = FanOut(all, ipam);

        Assert.Equal(0, await fanOut.StartAsync(default));
        foreach (var batch in Batches(0, 5)) await fanOut.ApplyAsync(batch, default);
        await fanOut.ApplyAsync([], default);

        Assert.Equal(OrderingsOf(EventTags.Ipam, EventTags.Health), all.Applied);
        Assert.Equal(OrderingsOf(EventTags.Ipam).Where(o => o > 12), ipam.Applied);
        // Each is stored as handed over up to the end of the read, whichever tag the last event had.
        Assert.All([all, ipam], p => Assert.All(p.Tags, t => Assert.Equal(40, p.Stored[t])));
        Assert.Equal(40, fanOut.Progress()["ipam"]);
        Assert.Empty(_warnings);
    }

    [Fact]
    public async Task A_read_that_starts_again_starts_at_the_lowest_offset_and_repeats_nothing()
    {
        var all = new Recording("all", [EventTags.Ipam, EventTags.Health], stored: new() { [EventTags.Ipam] = 7, [EventTags.Health] = 9 });
        var ipam = new Recording("ipam", [EventTags.Ipam], stored: new() { [EventTags.Ipam] = 21 });
        var fanOut = FanOut(all, ipam);

        Assert.Equal(7, await fanOut.StartAsync(default));
        foreach (var batch in Batches(7, 3, upTo: 26)) await fanOut.ApplyAsync(batch, default);
        // The live query failed: the read starts again from the lowest position the projections hold, which they kept; a
        // query that hands over again what was read (from 17) repeats nothing.
        Assert.Equal(26, await fanOut.StartAsync(default));
        foreach (var batch in Batches(17, 6)) await fanOut.ApplyAsync(batch, default);

        Assert.Equal(Journal.Where(j => j.Event is { } e && j.Ordering > (EventTagger.TagOf(e) == EventTags.Health ? 9 : 7))
            .Select(j => j.Ordering), all.Applied);
        Assert.Equal(OrderingsOf(EventTags.Ipam).Where(o => o > 21), ipam.Applied);
    }

    [Fact]
    public async Task A_projection_that_fails_is_left_out_for_a_doubling_backoff_then_catches_up_alone_losing_and_repeating_nothing()
    {
        var failing = new Recording("failing", [EventTags.Ipam, EventTags.Health]);
        var steady = new Recording("steady", [EventTags.Ipam]);
        var fanOut = FanOut(failing, steady);
        var batches = Batches(0, 4).ToList();
        await fanOut.StartAsync(default);

        await fanOut.ApplyAsync(batches[0], default);
        failing.FailApplies = 1;
        await fanOut.ApplyAsync(batches[1], default); // refused, nothing of it stored
        Assert.Single(_warnings);
        var storedAtFailure = failing.Applied.Count;
        failing.FailOffsets = 1;
        await fanOut.ApplyAsync(batches[2], default); // within its backoff: left out
        Assert.Equal(storedAtFailure, failing.Applied.Count);
        _now += TimeSpan.FromSeconds(1);
        await fanOut.ApplyAsync(batches[3], default); // reading its offsets fails: the backoff doubles
        Assert.Equal(2, _warnings.Count);
        Assert.Contains("in 2 s", _warnings[1]);
        _now += TimeSpan.FromSeconds(1.5);
        await fanOut.ApplyAsync(batches[4], default); // still within the doubled backoff
        Assert.Equal(storedAtFailure, failing.Applied.Count);
        // The other projection was handed every batch meanwhile.
        Assert.Equal(OrderingsOf(EventTags.Ipam).Where(o => o <= batches[4][^1].Item1), steady.Applied);

        _now += TimeSpan.FromSeconds(1);
        await fanOut.ApplyAsync(batches[5], default); // catches up alone from its stored offsets, then takes the batch
        Assert.Equal(OrderingsOf(EventTags.Ipam, EventTags.Health).Where(o => o <= batches[5][^1].Item1), failing.Applied);
        foreach (var batch in batches.Skip(6)) await fanOut.ApplyAsync(batch, default);
        Assert.Equal(OrderingsOf(EventTags.Ipam, EventTags.Health), failing.Applied);
        Assert.Equal(OrderingsOf(EventTags.Ipam), steady.Applied);
        Assert.Equal(2, _warnings.Count);
    }

    [Fact]
    public async Task A_projection_that_failed_catches_up_when_nothing_new_is_written()
    {
        var failing = new Recording("failing", [EventTags.Ipam]);
        var fanOut = FanOut(failing, new Recording("steady", [EventTags.Health]));
        await fanOut.StartAsync(default);
        failing.FailApplies = 1;
        foreach (var batch in Batches(0, 100)) await fanOut.ApplyAsync(batch, default);
        Assert.Empty(failing.Applied);

        _now += TimeSpan.FromSeconds(1);
        await fanOut.ApplyAsync([], default); // the runner's idle tick
        Assert.Equal(OrderingsOf(EventTags.Ipam), failing.Applied);
        Assert.Equal(40, failing.Stored[EventTags.Ipam]);
    }

    /// <summary>A projection that stores what it is handed, a batch at a time, and can be told to fail.</summary>
    private sealed class Recording(string name, ImmutableArray<string> tags, Dictionary<string, long>? stored = null) : IAuditProjection
    {
        public Dictionary<string, long> Stored { get; } = stored ?? new();
        public List<long> Applied { get; } = new();
        public int FailApplies { get; set; }
        public int FailOffsets { get; set; }

        public string Name => name;
        public ImmutableArray<string> Tags => tags;

        public Task<ImmutableDictionary<string, long>> OffsetsAsync(CancellationToken cancel)
        {
            if (FailOffsets-- > 0) throw new InvalidOperationException("store away (test)");
            return Task.FromResult(Stored.ToImmutableDictionary());
        }

        public Task ApplyAsync(IReadOnlyList<TaggedEvent> batch, CancellationToken cancel) => ApplyAsync(batch, 0, cancel);

        public Task ApplyAsync(IReadOnlyList<TaggedEvent> batch, long readThrough, CancellationToken cancel)
        {
            if (FailApplies-- > 0) throw new InvalidOperationException("disk full (test)");
            foreach (var e in batch)
            {
                Assert.Contains(e.Tag, tags);
                Assert.True(e.Ordering > Stored.GetValueOrDefault(e.Tag), $"{name}: ordering {e.Ordering} of {e.Tag} handed again");
                Assert.Equal($"e{e.Ordering}", e.Event.Reason);
                Applied.Add(e.Ordering);
                Stored[e.Tag] = e.Ordering;
            }
            foreach (var tag in tags) Stored[tag] = Math.Max(Stored.GetValueOrDefault(tag), readThrough);
            return Task.CompletedTask;
        }

        public Task ResetAsync(CancellationToken cancel) => throw new NotSupportedException();
    }
}
