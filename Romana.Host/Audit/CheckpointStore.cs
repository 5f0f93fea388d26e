using System.Collections.Immutable;
using System.Data.Common;
using System.Text.Json;
using Romana.Actors.Audit;

namespace Romana.Host.Audit;

/// <summary>One stored checkpoint, without its payload: what it covers and when it was written.</summary>
/// <param name="Events">The events its replay applied (<see cref="JournalReplay.Applied"/>), which also keys it.</param>
/// <param name="Offsets">The last ordering it applied of each tag: the tail starts after these.</param>
/// <param name="CoversUntil">The latest time of an event it applied: it is a prefix of any replay to this time or later.</param>
public sealed record CheckpointRow(int Format, long Events, ImmutableDictionary<string, long> Offsets, DateTimeOffset CoversUntil,
    DateTimeOffset Written, long PayloadBytes);

/// <summary>
/// The table romana_audit_checkpoints of the audit store (<see cref="AuditStore"/>): every checkpoint the checkpoint
/// projection wrote, kept (a replay to an old moment needs an old one), each row self-contained: its offsets, the time it
/// covers until and the state as a compressed payload. Rows are keyed by format and events applied; a second writer of
/// the same key (a rebuild while a daemon's projection runs) is ignored, since either row is a correct state of that prefix.
/// </summary>
public static class CheckpointStore
{
    public const string Table = """
        CREATE TABLE IF NOT EXISTS romana_audit_checkpoints (
          format INTEGER NOT NULL,
          events BIGINT NOT NULL,
          offsets VARCHAR(1000) NOT NULL,
          covers_until BIGINT NOT NULL,
          written BIGINT NOT NULL,
          payload BYTEA NOT NULL,
          PRIMARY KEY (format, events))
        """;

    private const string Index =
        "CREATE INDEX IF NOT EXISTS romana_audit_checkpoints_covers ON romana_audit_checkpoints (format, covers_until)";

    public static async Task CreateAsync(AuditStore store, CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        foreach (var ddl in new[] { AuditStore.OffsetsTable, Table, Index }) await ExecuteAsync(connection, null, ddl, cancel);
    }

    /// <summary>The checkpoint and the projection's offsets, in one transaction: both are stored, or neither.</summary>
    public static async Task WriteAsync(AuditStore store, string projection, CheckpointRow row, byte[] payload, CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        await using var transaction = await connection.BeginTransactionAsync(cancel);
        await ExecuteAsync(connection, transaction, """
            INSERT INTO romana_audit_checkpoints (format, events, offsets, covers_until, written, payload)
            VALUES (@format, @events, @offsets, @covers, @written, @payload)
            ON CONFLICT (format, events) DO NOTHING
            """, cancel, ("format", row.Format), ("events", row.Events), ("offsets", JsonSerializer.Serialize(row.Offsets)),
            ("covers", row.CoversUntil.UtcTicks), ("written", row.Written.UtcTicks), ("payload", payload));
        foreach (var (tag, ordering) in row.Offsets)
            await ExecuteAsync(connection, transaction, """
                INSERT INTO romana_audit_offsets (projection, tag, ordering, format) VALUES (@projection, @tag, @ordering, @format)
                ON CONFLICT (projection, tag) DO UPDATE SET ordering = excluded.ordering, format = excluded.format
                """, cancel, ("projection", projection), ("tag", tag), ("ordering", ordering), ("format", row.Format));
        await transaction.CommitAsync(cancel);
    }

    /// <summary>
    /// The newest checkpoint of <paramref name="format"/> (the most events applied) that covers nothing later than
    /// <paramref name="until"/> (null: any), with its payload; null when there is none.
    /// </summary>
    public static async Task<(CheckpointRow Row, byte[] Payload)?> NewestAsync(AuditStore store, int format, DateTimeOffset? until,
        CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        // The key first, then that one row: a query that sorted whole rows would carry every candidate's payload along.
        long events;
        await using (var newest = Command(connection, null, $"""
            SELECT events FROM romana_audit_checkpoints
            WHERE format = @format{(until is null ? "" : " AND covers_until <= @until")}
            ORDER BY events DESC LIMIT 1
            """, [("format", format), .. until is { } limit ? new[] { ("until", (object)limit.UtcTicks) } : []]))
        {
            if (await newest.ExecuteScalarAsync(cancel) is not { } found || found is DBNull) return null;
            events = Convert.ToInt64(found);
        }
        await using var command = Command(connection, null, """
            SELECT format, events, offsets, covers_until, written, payload FROM romana_audit_checkpoints
            WHERE format = @format AND events = @events
            """, ("format", format), ("events", events));
        await using var reader = await command.ExecuteReaderAsync(cancel);
        if (!await reader.ReadAsync(cancel)) return null;
        var payload = (byte[])reader.GetValue(5);
        return (Row(reader, payload.LongLength), payload);
    }

    /// <summary>Every checkpoint, of any format, oldest first (without payloads).</summary>
    public static async Task<ImmutableArray<CheckpointRow>> ListAsync(AuditStore store, CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        await using var command = Command(connection, null, """
            SELECT format, events, offsets, covers_until, written, length(payload) FROM romana_audit_checkpoints ORDER BY format, events
            """);
        await using var reader = await command.ExecuteReaderAsync(cancel);
        var rows = ImmutableArray.CreateBuilder<CheckpointRow>();
        while (await reader.ReadAsync(cancel)) rows.Add(Row(reader, Convert.ToInt64(reader.GetValue(5))));
        return rows.ToImmutable();
    }

    /// <summary>How many checkpoints are of another format than <paramref name="format"/> (never used; a rebuild drops them).</summary>
    public static async Task<long> OtherFormatsAsync(AuditStore store, int format, CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        await using var command = Command(connection, null, "SELECT count(*) FROM romana_audit_checkpoints WHERE format <> @format",
            ("format", format));
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancel));
    }

    /// <summary>Every checkpoint and the projection's offsets, gone (one transaction).</summary>
    public static async Task ResetAsync(AuditStore store, string projection, CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        await using var transaction = await connection.BeginTransactionAsync(cancel);
        await ExecuteAsync(connection, transaction, "DELETE FROM romana_audit_checkpoints", cancel);
        await ExecuteAsync(connection, transaction, "DELETE FROM romana_audit_offsets WHERE projection = @projection", cancel,
            ("projection", projection));
        await transaction.CommitAsync(cancel);
    }

    private static CheckpointRow Row(DbDataReader reader, long payloadBytes) => new(Convert.ToInt32(reader.GetValue(0)),
        Convert.ToInt64(reader.GetValue(1)), JsonSerializer.Deserialize<ImmutableDictionary<string, long>>(reader.GetString(2))!,
        new DateTimeOffset(Convert.ToInt64(reader.GetValue(3)), TimeSpan.Zero),
        new DateTimeOffset(Convert.ToInt64(reader.GetValue(4)), TimeSpan.Zero), payloadBytes);

    internal static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql,
        params (string Name, object Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = "@" + name;
            parameter.Value = value;
            command.Parameters.Add(parameter);
        }
        return command;
    }

    internal static async Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancel,
        params (string Name, object Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        await command.ExecuteNonQueryAsync(cancel);
    }
}
