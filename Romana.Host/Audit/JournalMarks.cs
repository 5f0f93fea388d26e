using System.Data.Common;
using Romana.Actors.Audit;
using Romana.Host.Persistence;

namespace Romana.Host.Audit;

/// <summary>
/// Which journal an audit store was made from. After each batch a projection stored, the runner marks the last journal event
/// it read (ordering, persistence id, sequence number) in romana_audit_marks. Before the store is trusted, the journal must
/// hold that very event at that ordering, and an event at the projection's offset: a journal replaced by hand (another
/// cluster's, or restored from an older backup while the store stayed) fails one of the two, and then the questions
/// answer from the journal and the runner makes the projection again from the start. One seek per check.
/// </summary>
public sealed class JournalMarks(AuditStore store)
{
    private bool _created;

    public const string Table = """
        CREATE TABLE IF NOT EXISTS romana_audit_marks (
          projection VARCHAR(64) NOT NULL PRIMARY KEY,
          ordering BIGINT NOT NULL,
          persistence_id VARCHAR(255) NOT NULL,
          sequence_nr BIGINT NOT NULL)
        """;

    /// <summary>Marks the event at <paramref name="ordering"/> as read by <paramref name="projection"/> (none there: nothing).</summary>
    public async Task MarkAsync(string projection, long ordering, CancellationToken cancel)
    {
        if (await PersistenceHosting.EventAtAsync(store.Journal, ordering, cancel) is not { } position) return;
        await using var connection = await store.OpenAsync(cancel);
        await CreateAsync(connection, cancel);
        await CheckpointStore.ExecuteAsync(connection, null, """
            INSERT INTO romana_audit_marks (projection, ordering, persistence_id, sequence_nr)
            VALUES (@projection, @ordering, @persistence_id, @sequence_nr)
            ON CONFLICT (projection) DO UPDATE SET ordering = excluded.ordering, persistence_id = excluded.persistence_id,
              sequence_nr = excluded.sequence_nr
            """, cancel, ("projection", projection), ("ordering", position.Ordering), ("persistence_id", position.PersistenceId),
            ("sequence_nr", position.SequenceNr));
    }

    /// <summary>The projection's mark gone, with its data (a reset): a projection made again marks again.</summary>
    public async Task ForgetAsync(string projection, CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        await CreateAsync(connection, cancel);
        await CheckpointStore.ExecuteAsync(connection, null, "DELETE FROM romana_audit_marks WHERE projection = @projection", cancel,
            ("projection", projection));
    }

    /// <summary>
    /// Null when what <paramref name="projection"/> derived up to <paramref name="coveredThrough"/> (its highest offset; 0:
    /// nothing yet) comes from this journal; otherwise why it cannot be trusted, for a log or a question's note.
    /// </summary>
    public async Task<string?> MismatchAsync(string projection, long coveredThrough, CancellationToken cancel)
    {
        if (coveredThrough <= 0) return null;
        JournalPosition? marked;
        await using (var connection = await store.OpenAsync(cancel))
            marked = await ReadAsync(connection, projection, cancel);
        var where = $"the {projection} in {store.Describe}";
        if (marked is null)
            return $"{where} does not say which journal it was made from (made by an older romana, or before its first batch " +
                "was marked)";
        var found = await PersistenceHosting.EventAtAsync(store.Journal, marked.Ordering, cancel);
        if (found != marked)
            return $"{where} was made from another journal: it read {marked}, this journal has " +
                (found is null ? $"no event at ordering {marked.Ordering:N0}" : $"{found.PersistenceId} #{found.SequenceNr} there");
        if (await PersistenceHosting.EventAtAsync(store.Journal, coveredThrough, cancel) is null)
            return $"{where} covers the journal up to ordering {coveredThrough:N0}, and this journal has no event there (a journal " +
                "restored from an older copy?)";
        return null;
    }

    private async Task CreateAsync(DbConnection connection, CancellationToken cancel)
    {
        if (_created) return;
        await CheckpointStore.ExecuteAsync(connection, null, Table, cancel);
        _created = true;
    }

    private async Task<JournalPosition?> ReadAsync(DbConnection connection, string projection, CancellationToken cancel)
    {
        if (!await store.HasTableAsync(connection, "romana_audit_marks", cancel)) return null;
        await using var query = CheckpointStore.Command(connection, null,
            "SELECT ordering, persistence_id, sequence_nr FROM romana_audit_marks WHERE projection = @projection",
            ("projection", projection));
        await using var reader = await query.ExecuteReaderAsync(cancel);
        return await reader.ReadAsync(cancel)
            ? new JournalPosition(Convert.ToInt64(reader.GetValue(0)), reader.GetString(1), Convert.ToInt64(reader.GetValue(2)))
            : null;
    }
}

/// <summary>An event's place in the journal (the ordering column) and who wrote it: its persistence id and sequence number.</summary>
public sealed record JournalPosition(long Ordering, string PersistenceId, long SequenceNr)
{
    public override string ToString() => $"{PersistenceId} #{SequenceNr} at ordering {Ordering:N0}";
}
