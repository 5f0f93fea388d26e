using System.Collections.Immutable;
using System.Data;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;

namespace Romana.Host.Audit;

/// <summary>
/// The address index: every holding of every address (key, pod, node, from, to, why released) and every node's
/// membership and block changes, kept from the ipam tag by <see cref="AddressIndexFold"/> in the audit store. A batch's
/// rows (<see cref="IndexRows"/>: set-wise, by binary COPY on PostgreSQL, prepared commands on SQLite) and its offset are
/// one transaction. Derived data: <see cref="ResetAsync"/> drops it and the next batches rebuild it from the journal.
/// </summary>
public sealed class AddressIndexProjection(AuditStore store, Action<string>? log = null) : IAuditProjection
{
    public const string ProjectionName = "address-index";

    /// <summary>The layout of the index's tables and what they mean; rows of another format are dropped and rebuilt.</summary>
    public const int Format = 1;

    public const string HoldingsTable = "romana_audit_address_holdings";
    public const string NodeChangesTable = "romana_audit_node_changes";

    private AddressIndexFold? _fold;
    private long _applied;
    private bool _ready;

    public string Name => ProjectionName;

    public ImmutableArray<string> Tags { get; } = [EventTags.Ipam];

    private static string[] Schema(AuditStore store) =>
    [
        AuditStore.OffsetsTable,
        $"""
        CREATE TABLE IF NOT EXISTS {HoldingsTable} (
          opened BIGINT NOT NULL,
          position INTEGER NOT NULL,
          address BIGINT NOT NULL,
          node TEXT NOT NULL,
          holder TEXT NOT NULL,
          pod TEXT NULL,
          from_ticks BIGINT NOT NULL,
          to_ticks BIGINT NULL,
          reason TEXT NULL,
          closed BIGINT NULL,
          PRIMARY KEY (opened, position)){(store.IsPostgreSql ? "" : " WITHOUT ROWID")}
        """,
        $"CREATE INDEX IF NOT EXISTS {HoldingsTable}_address ON {HoldingsTable} (address)",
        $"CREATE INDEX IF NOT EXISTS {HoldingsTable}_node ON {HoldingsTable} (node)",
        $"""
        CREATE TABLE IF NOT EXISTS {NodeChangesTable} (
          ordering BIGINT NOT NULL PRIMARY KEY,
          node TEXT NOT NULL,
          subnet TEXT NULL,
          at_ticks BIGINT NOT NULL,
          what TEXT NOT NULL,
          detail TEXT NOT NULL,
          reason TEXT NOT NULL)
        """,
        $"CREATE INDEX IF NOT EXISTS {NodeChangesTable}_node ON {NodeChangesTable} (node)",
    ];

    public async Task<ImmutableDictionary<string, long>> OffsetsAsync(CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        await EnsureAsync(connection, cancel);
        var offset = await AddressIndex.OffsetAsync(connection, cancel);
        var none = ImmutableDictionary<string, long>.Empty;
        return offset is { } o ? none.Add(EventTags.Ipam, o.Ordering) : none;
    }

    public async Task ApplyAsync(IReadOnlyList<TaggedEvent> batch, CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        try
        {
            await EnsureAsync(connection, cancel);
            if (_fold is null)
            {
                _applied = (await AddressIndex.OffsetAsync(connection, cancel))?.Ordering ?? 0;
                _fold = new AddressIndexFold(await OpenHoldingsAsync(connection, cancel));
            }
            // Events already applied (a batch handed again after a failure the commit survived) change nothing.
            var events = batch.Where(e => e.Tag == EventTags.Ipam && e.Ordering > _applied).ToList();
            if (events.Count == 0) return;
            var changes = new List<IndexChange>();
            foreach (var e in events) _fold.Apply(e, changes);
            var rows = IndexRows.Of(changes);
            await using var transaction = await connection.BeginTransactionAsync(cancel);
            if (connection is NpgsqlConnection postgreSql) await WritePostgreSqlAsync(postgreSql, rows, cancel);
            else
                await using (var writer = new SqliteWriter(connection, transaction))
                    await writer.WriteAsync(rows, cancel);
            // The offset last: a batch whose rows failed to store leaves it where it was.
            await using (var offset = AddressIndex.Command(connection, """
                INSERT INTO romana_audit_offsets (projection, tag, ordering, format) VALUES (@projection, @tag, @ordering, @format)
                ON CONFLICT (projection, tag) DO UPDATE SET ordering = excluded.ordering, format = excluded.format
                """))
            {
                offset.Transaction = transaction;
                AddressIndex.Parameter(offset, "@projection", ProjectionName);
                AddressIndex.Parameter(offset, "@tag", EventTags.Ipam);
                AddressIndex.Parameter(offset, "@ordering", events[^1].Ordering);
                AddressIndex.Parameter(offset, "@format", Format);
                await offset.ExecuteNonQueryAsync(cancel);
            }
            await transaction.CommitAsync(cancel);
            _applied = events[^1].Ordering;
        }
        catch
        {
            // The fold ran ahead of what was stored: the next batch starts again from the stored open holdings.
            _fold = null;
            throw;
        }
    }

    public async Task ResetAsync(CancellationToken cancel)
    {
        await using var connection = await store.OpenAsync(cancel);
        await ResetAsync(connection, cancel);
    }

    private async Task ResetAsync(DbConnection connection, CancellationToken cancel)
    {
        _fold = null;
        _ready = false;
        await using var transaction = await connection.BeginTransactionAsync(cancel);
        foreach (var sql in new[]
            { AuditStore.OffsetsTable, $"DROP TABLE IF EXISTS {HoldingsTable}", $"DROP TABLE IF EXISTS {NodeChangesTable}" })
            await ExecuteAsync(connection, transaction, sql, cancel);
        await using (var delete = AddressIndex.Command(connection, "DELETE FROM romana_audit_offsets WHERE projection = @projection"))
        {
            delete.Transaction = transaction;
            AddressIndex.Parameter(delete, "@projection", ProjectionName);
            await delete.ExecuteNonQueryAsync(cancel);
        }
        await transaction.CommitAsync(cancel);
    }

    /// <summary>The tables, once per instance; an index of another format is dropped first (and said so).</summary>
    private async Task EnsureAsync(DbConnection connection, CancellationToken cancel)
    {
        if (_ready) return;
        if (await AddressIndex.HasOffsetsAsync(connection, store, cancel)
            && await AddressIndex.OffsetAsync(connection, cancel) is { Format: not Format } other)
        {
            log?.Invoke($"address index: {store.Describe} holds format {other.Format} (up to ordering {other.Ordering}), this "
                + $"romana writes format {Format}: dropped, rebuilt from the journal");
            await ResetAsync(connection, cancel);
        }
        foreach (var sql in Schema(store)) await ExecuteAsync(connection, null, sql, cancel);
        _ready = true;
    }

    private static async Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancel)
    {
        await using var command = AddressIndex.Command(connection, sql);
        command.Transaction = transaction;
        await command.ExecuteNonQueryAsync(cancel);
    }

    private static async Task<List<KeyValuePair<(NodeName Node, Ipv4 Address), HoldingId>>> OpenHoldingsAsync(DbConnection connection,
        CancellationToken cancel)
    {
        await using var query = AddressIndex.Command(connection,
            $"SELECT node, address, opened, position FROM {HoldingsTable} WHERE to_ticks IS NULL");
        await using var reader = await query.ExecuteReaderAsync(cancel);
        var open = new List<KeyValuePair<(NodeName, Ipv4), HoldingId>>();
        while (await reader.ReadAsync(cancel))
            open.Add(KeyValuePair.Create((new NodeName(reader.GetString(0)), new Ipv4((uint)reader.GetInt64(1))),
                new HoldingId(reader.GetInt64(2), reader.GetInt32(3))));
        return open;
    }

    /// <summary>
    /// PostgreSQL: a batch is a few round trips whatever its size. The new holdings and node changes go by binary COPY
    /// (inside the batch's transaction, so they commit or roll back with the offset); releases and drops of earlier rows
    /// are one UPDATE and one DELETE joined to arrays.
    /// </summary>
    private static async Task WritePostgreSqlAsync(NpgsqlConnection connection, IndexRows rows, CancellationToken cancel)
    {
        if (rows.Dropped.Count > 0)
        {
            await using var delete = new NpgsqlCommand($"""
                DELETE FROM {HoldingsTable} h USING unnest(@opened, @position) AS d(opened, position)
                WHERE h.opened = d.opened AND h.position = d.position
                """, connection);
            delete.Parameters.AddWithValue("opened", rows.Dropped.Select(d => d.Opened).ToArray());
            delete.Parameters.AddWithValue("position", rows.Dropped.Select(d => d.Position).ToArray());
            await delete.ExecuteNonQueryAsync(cancel);
        }
        if (rows.Closed.Count > 0)
        {
            await using var update = new NpgsqlCommand($"""
                UPDATE {HoldingsTable} h SET to_ticks = c.to_ticks, reason = c.reason, closed = c.closed
                FROM unnest(@opened, @position, @to, @reason, @closed) AS c(opened, position, to_ticks, reason, closed)
                WHERE h.opened = c.opened AND h.position = c.position
                """, connection);
            update.Parameters.AddWithValue("opened", rows.Closed.Select(c => c.Id.Opened).ToArray());
            update.Parameters.AddWithValue("position", rows.Closed.Select(c => c.Id.Position).ToArray());
            update.Parameters.AddWithValue("to", rows.Closed.Select(c => c.To.UtcTicks).ToArray());
            update.Parameters.AddWithValue("reason", rows.Closed.Select(c => c.Reason).ToArray());
            update.Parameters.AddWithValue("closed", rows.Closed.Select(c => c.Ordering).ToArray());
            await update.ExecuteNonQueryAsync(cancel);
        }
        if (rows.Inserted.Count > 0)
        {
            await using var copy = await connection.BeginBinaryImportAsync($"""
                COPY {HoldingsTable} (opened, position, address, node, holder, pod, from_ticks, to_ticks, reason, closed)
                FROM STDIN (FORMAT BINARY)
                """, cancel);
            foreach (var row in rows.Inserted)
            {
                var h = row.Holding;
                await copy.StartRowAsync(cancel);
                await copy.WriteAsync(row.Id.Opened, NpgsqlDbType.Bigint, cancel);
                await copy.WriteAsync(row.Id.Position, NpgsqlDbType.Integer, cancel);
                await copy.WriteAsync((long)h.Address.Value, NpgsqlDbType.Bigint, cancel);
                await copy.WriteAsync(h.Node.Value, NpgsqlDbType.Text, cancel);
                await copy.WriteAsync(h.Key.Value, NpgsqlDbType.Text, cancel);
                await WriteOrNullAsync(copy, h.Pod, NpgsqlDbType.Text, cancel);
                await copy.WriteAsync(h.From.UtcTicks, NpgsqlDbType.Bigint, cancel);
                await WriteOrNullAsync(copy, h.To?.UtcTicks, NpgsqlDbType.Bigint, cancel);
                await WriteOrNullAsync(copy, h.ReleaseReason, NpgsqlDbType.Text, cancel);
                await WriteOrNullAsync(copy, row.Closed, NpgsqlDbType.Bigint, cancel);
            }
            await copy.CompleteAsync(cancel);
        }
        if (rows.NodeChanges.Count > 0)
        {
            await using var copy = await connection.BeginBinaryImportAsync($"""
                COPY {NodeChangesTable} (ordering, node, subnet, at_ticks, what, detail, reason) FROM STDIN (FORMAT BINARY)
                """, cancel);
            foreach (var node in rows.NodeChanges)
            {
                await copy.StartRowAsync(cancel);
                await copy.WriteAsync(node.Ordering, NpgsqlDbType.Bigint, cancel);
                await copy.WriteAsync(node.Node.Value, NpgsqlDbType.Text, cancel);
                await WriteOrNullAsync(copy, node.Subnet?.Value, NpgsqlDbType.Text, cancel);
                await copy.WriteAsync(node.Change.At.UtcTicks, NpgsqlDbType.Bigint, cancel);
                await copy.WriteAsync(node.Change.What, NpgsqlDbType.Text, cancel);
                await copy.WriteAsync(node.Change.Detail, NpgsqlDbType.Text, cancel);
                await copy.WriteAsync(node.Change.Reason, NpgsqlDbType.Text, cancel);
            }
            await copy.CompleteAsync(cancel);
        }
    }

    private static Task WriteOrNullAsync<T>(NpgsqlBinaryImporter copy, T? value, NpgsqlDbType type, CancellationToken cancel) =>
        value is null ? copy.WriteNullAsync(cancel) : copy.WriteAsync(value, type, cancel);

    /// <summary>SQLite: one prepared command per kind of row, created on first use and reused within the batch's transaction.</summary>
    private sealed class SqliteWriter(DbConnection connection, DbTransaction transaction) : IAsyncDisposable
    {
        private DbCommand? _insert, _close, _drop, _node;

        public async Task WriteAsync(IndexRows rows, CancellationToken cancel)
        {
            foreach (var id in rows.Dropped)
            {
                _drop ??= Prepare($"DELETE FROM {HoldingsTable} WHERE opened = @opened AND position = @position",
                    L("@opened"), I("@position"));
                await RunAsync(_drop, cancel, id.Opened, id.Position);
            }
            foreach (var closed in rows.Closed)
            {
                _close ??= Prepare($"""
                    UPDATE {HoldingsTable} SET to_ticks = @to, reason = @reason, closed = @closed
                    WHERE opened = @opened AND position = @position
                    """, L("@to"), S("@reason"), L("@closed"), L("@opened"), I("@position"));
                await RunAsync(_close, cancel, closed.To.UtcTicks, closed.Reason, closed.Ordering, closed.Id.Opened, closed.Id.Position);
            }
            foreach (var row in rows.Inserted)
            {
                var h = row.Holding;
                _insert ??= Prepare($"""
                    INSERT INTO {HoldingsTable} (opened, position, address, node, holder, pod, from_ticks, to_ticks, reason, closed)
                    VALUES (@opened, @position, @address, @node, @holder, @pod, @from, @to, @reason, @closed)
                    """, L("@opened"), I("@position"), L("@address"), S("@node"), S("@holder"), S("@pod"), L("@from"), L("@to"),
                    S("@reason"), L("@closed"));
                await RunAsync(_insert, cancel, row.Id.Opened, row.Id.Position, (long)h.Address.Value, h.Node.Value, h.Key.Value, h.Pod,
                    h.From.UtcTicks, h.To?.UtcTicks, h.ReleaseReason, row.Closed);
            }
            foreach (var node in rows.NodeChanges)
            {
                _node ??= Prepare($"""
                    INSERT INTO {NodeChangesTable} (ordering, node, subnet, at_ticks, what, detail, reason)
                    VALUES (@ordering, @node, @subnet, @at, @what, @detail, @reason)
                    """, L("@ordering"), S("@node"), S("@subnet"), L("@at"), S("@what"), S("@detail"), S("@reason"));
                await RunAsync(_node, cancel, node.Ordering, node.Node.Value, node.Subnet?.Value, node.Change.At.UtcTicks, node.Change.What,
                    node.Change.Detail, node.Change.Reason);
            }
        }

        private static (string, DbType) L(string name) => (name, DbType.Int64);
        private static (string, DbType) I(string name) => (name, DbType.Int32);
        private static (string, DbType) S(string name) => (name, DbType.String);

        /// <summary>Typed parameters, so that a null (a pod not named) and a value share one prepared statement.</summary>
        private DbCommand Prepare(string sql, params (string Name, DbType Type)[] parameters)
        {
            var command = AddressIndex.Command(connection, sql);
            command.Transaction = transaction;
            foreach (var (name, type) in parameters)
            {
                var parameter = command.CreateParameter();
                parameter.ParameterName = name;
                parameter.DbType = type;
                command.Parameters.Add(parameter);
            }
            command.Prepare();
            return command;
        }

        private static Task<int> RunAsync(DbCommand command, CancellationToken cancel, params object?[] values)
        {
            for (var i = 0; i < values.Length; i++) command.Parameters[i].Value = values[i] ?? DBNull.Value;
            return command.ExecuteNonQueryAsync(cancel);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var command in new[] { _insert, _close, _drop, _node })
                if (command is not null) await command.DisposeAsync();
        }
    }
}

/// <summary>Reading the address index: its offset and format, one address's holdings, one node's holdings and changes.</summary>
public static class AddressIndex
{
    public sealed record Offset(long Ordering, int Format);

    public static DbCommand Command(DbConnection connection, string sql)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        return command;
    }

    public static void Parameter(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
    }

    public static Task<bool> HasOffsetsAsync(DbConnection connection, AuditStore store, CancellationToken cancel) =>
        store.HasTableAsync(connection, "romana_audit_offsets", cancel);

    /// <summary>The index's offset in the ipam tag and its format; null: no index (never built, or reset).</summary>
    public static async Task<Offset?> OffsetAsync(DbConnection connection, CancellationToken cancel, DbTransaction? transaction = null)
    {
        await using var query = Command(connection,
            "SELECT ordering, format FROM romana_audit_offsets WHERE projection = @projection AND tag = @tag");
        query.Transaction = transaction;
        Parameter(query, "@projection", AddressIndexProjection.ProjectionName);
        Parameter(query, "@tag", EventTags.Ipam);
        await using var reader = await query.ExecuteReaderAsync(cancel);
        return await reader.ReadAsync(cancel) ? new Offset(reader.GetInt64(0), reader.GetInt32(1)) : null;
    }

    /// <summary>The stored holdings where <paramref name="column"/> (address or node) is <paramref name="value"/>.</summary>
    public static async Task<List<IndexedHolding>> HoldingsAsync(DbConnection connection, DbTransaction transaction, string column,
        object value, CancellationToken cancel)
    {
        await using var query = Command(connection, $"""
            SELECT opened, position, address, holder, pod, node, from_ticks, to_ticks, reason
            FROM {AddressIndexProjection.HoldingsTable} WHERE {(column == "node" ? "node" : "address")} = @value
            """);
        query.Transaction = transaction;
        Parameter(query, "@value", value);
        await using var reader = await query.ExecuteReaderAsync(cancel);
        var rows = new List<IndexedHolding>();
        while (await reader.ReadAsync(cancel))
            rows.Add(new IndexedHolding(new HoldingId(reader.GetInt64(0), reader.GetInt32(1)), new AddressHolding(
                new Ipv4((uint)reader.GetInt64(2)), new AllocationKey(reader.GetString(3)), reader.IsDBNull(4) ? null : reader.GetString(4),
                new NodeName(reader.GetString(5)), Time(reader.GetInt64(6)), reader.IsDBNull(7) ? null : Time(reader.GetInt64(7)),
                reader.IsDBNull(8) ? null : reader.GetString(8))));
        return rows;
    }

    public static async Task<List<IndexedNodeChange>> NodeChangesAsync(DbConnection connection, DbTransaction transaction, NodeName node,
        CancellationToken cancel)
    {
        await using var query = Command(connection,
            $"SELECT ordering, subnet, at_ticks, what, detail, reason FROM {AddressIndexProjection.NodeChangesTable} WHERE node = @node");
        query.Transaction = transaction;
        Parameter(query, "@node", node.Value);
        await using var reader = await query.ExecuteReaderAsync(cancel);
        var changes = new List<IndexedNodeChange>();
        while (await reader.ReadAsync(cancel))
            changes.Add(new IndexedNodeChange(reader.GetInt64(0), reader.IsDBNull(1) ? null : new SubnetId(reader.GetString(1)),
                new NodeChange(Time(reader.GetInt64(2)), reader.GetString(3), reader.GetString(4), reader.GetString(5))));
        return changes;
    }

    /// <summary>
    /// A transaction whose reads see one state of the index (the offset and the rows of one batch, never half of the next):
    /// on SQLite a deferred transaction (a snapshot of the write-ahead log from its first read), on PostgreSQL repeatable read.
    /// </summary>
    public static async Task<DbTransaction> SnapshotAsync(DbConnection connection, CancellationToken cancel) => connection switch
    {
        SqliteConnection sqlite => sqlite.BeginTransaction(deferred: true),
        _ => await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancel),
    };

    private static DateTimeOffset Time(long ticks) => new(ticks, TimeSpan.Zero);
}
