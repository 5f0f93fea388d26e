using System.Collections.Immutable;
using Romana.Actors.Audit;

namespace Romana.Host.Audit;

/// <summary>
/// The replayed cluster state (<see cref="JournalReplay"/>, with no time limit) kept as checkpoints: it folds the ipam,
/// routes and health tags and writes a checkpoint, with its offsets in the same transaction, every
/// <see cref="CheckpointSettings.EveryEvents"/> events or <see cref="CheckpointSettings.Every"/> (the first batch end past
/// either). Its stored offsets are its newest checkpoint's: a runner that starts (or starts again after a failure) goes on
/// from that checkpoint's state, so what was folded and not yet written is folded again, never lost or counted twice.
/// </summary>
public sealed class CheckpointProjection(AuditStore store, CheckpointSettings settings, Action<string>? log = null) : IAuditProjection
{
    /// <summary>
    /// The checkpoint format: <see cref="ReplayCheckpoint"/> as Brotli-compressed JSON. A change of what the replay holds or of
    /// its encoding takes a new number; checkpoints of another number are never read (a rebuild drops them).
    /// </summary>
    public const int Format = 1;

    public const string ProjectionName = "checkpoints";

    private JournalReplay _replay = new();
    private ImmutableDictionary<string, long> _offsets = ImmutableDictionary<string, long>.Empty;
    private DateTimeOffset _coversUntil = DateTimeOffset.MinValue;
    private long _unwritten;
    private DateTimeOffset _lastWritten = DateTimeOffset.UtcNow;
    private bool _created;

    public string Name => ProjectionName;

    public ImmutableArray<string> Tags => AuditQueries.ReplayTags;

    /// <summary>The checkpoints written since this projection was made (rebuild's summary).</summary>
    public int Written { get; private set; }

    /// <summary>The size of the last checkpoint written, compressed.</summary>
    public long LastPayloadBytes { get; private set; }

    public async Task<ImmutableDictionary<string, long>> OffsetsAsync(CancellationToken cancel)
    {
        await EnsureCreatedAsync(cancel);
        var others = await CheckpointStore.OtherFormatsAsync(store, Format, cancel);
        if (others > 0) log?.Invoke($"checkpoints: {others} checkpoints of another format than {Format} are ignored");
        _unwritten = 0;
        _lastWritten = DateTimeOffset.UtcNow;
        if (await CheckpointStore.NewestAsync(store, Format, null, cancel) is not { } newest)
        {
            _replay = new JournalReplay();
            _offsets = ImmutableDictionary<string, long>.Empty;
            _coversUntil = DateTimeOffset.MinValue;
            log?.Invoke("checkpoints: no checkpoint yet, folding the journal from its start");
            return _offsets;
        }
        _replay = JournalReplay.FromCheckpoint(ReplayCheckpoint.Decode(newest.Payload));
        _offsets = newest.Row.Offsets;
        _coversUntil = newest.Row.CoversUntil;
        log?.Invoke($"checkpoints: going on from the checkpoint of {newest.Row.Events:N0} events ({Describe(_offsets)})");
        return _offsets;
    }

    public Task ApplyAsync(IReadOnlyList<TaggedEvent> batch, CancellationToken cancel) => ApplyAsync(batch, 0, cancel);

    /// <summary>
    /// Also moves every tag's offset to <paramref name="readThrough"/>: a tag with few events (health, often routes) then
    /// does not hold a checkpoint's tail back to its last event, and a replay from it reads from there.
    /// </summary>
    public async Task ApplyAsync(IReadOnlyList<TaggedEvent> batch, long readThrough, CancellationToken cancel)
    {
        foreach (var e in batch)
        {
            // A batch may repeat what was applied (a live query that started again): each tag's offset says.
            if (e.Ordering <= _offsets.GetValueOrDefault(e.Tag)) continue;
            _replay.Apply(e.Event);
            _offsets = _offsets.SetItem(e.Tag, e.Ordering);
            if (e.Event.At > _coversUntil) _coversUntil = e.Event.At;
            _unwritten++;
        }
        if (readThrough > 0)
            foreach (var tag in Tags.Where(t => _offsets.GetValueOrDefault(t) < readThrough))
                _offsets = _offsets.SetItem(tag, readThrough);
        if (_unwritten >= settings.EveryEvents || (_unwritten > 0 && DateTimeOffset.UtcNow - _lastWritten >= settings.Every))
            await WriteAsync(cancel);
    }

    /// <summary>Writes a checkpoint of what is folded, if anything is not in one yet (the end of a rebuild).</summary>
    public async Task FlushAsync(CancellationToken cancel)
    {
        if (_unwritten > 0) await WriteAsync(cancel);
    }

    public async Task ResetAsync(CancellationToken cancel)
    {
        await EnsureCreatedAsync(cancel);
        await CheckpointStore.ResetAsync(store, ProjectionName, cancel);
        _replay = new JournalReplay();
        _offsets = ImmutableDictionary<string, long>.Empty;
        _coversUntil = DateTimeOffset.MinValue;
        _unwritten = 0;
    }

    private async Task WriteAsync(CancellationToken cancel)
    {
        var payload = _replay.ToCheckpoint().Encode();
        var row = new CheckpointRow(Format, _replay.Applied, _offsets, _coversUntil, DateTimeOffset.UtcNow, payload.LongLength);
        await CheckpointStore.WriteAsync(store, ProjectionName, row, payload, cancel);
        _unwritten = 0;
        _lastWritten = row.Written;
        Written++;
        LastPayloadBytes = payload.LongLength;
        log?.Invoke($"checkpoints: wrote the checkpoint of {row.Events:N0} events, {payload.Length / 1024.0:0.#} KiB, covering until " +
            $"{row.CoversUntil.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ} ({Describe(_offsets)})");
    }

    private async Task EnsureCreatedAsync(CancellationToken cancel)
    {
        if (_created) return;
        await CheckpointStore.CreateAsync(store, cancel);
        _created = true;
    }

    private static string Describe(ImmutableDictionary<string, long> offsets) =>
        string.Join(", ", offsets.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} after {o.Value}"));
}
