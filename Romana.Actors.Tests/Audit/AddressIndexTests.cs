using System.Text.Json;
using Microsoft.Data.Sqlite;
using Npgsql;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Persistence;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Audit;
using Romana.Host.Composition;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.IpamMessages;
using static Romana.Actors.Ipam.NodeMessages;
using BlockReclaimed = Romana.Actors.Ipam.SubnetMessages.BlockReclaimed;
using NodeJoined = Romana.Actors.Ipam.SubnetMessages.NodeJoined;
using NodeLeft = Romana.Actors.Ipam.SubnetMessages.NodeLeft;

namespace Romana.Actors.Tests.Audit;

/// <summary>
/// Pod churn through the IPAM as production composes it, on a real journal: an address released and handed to another
/// key, a node's emptied block reclaimed for another node (so one address is held on two nodes in turn), a restart of
/// everything, a node removed. Sixteen addresses in four /30 blocks, so the subnet runs out and reclaims.
/// </summary>
public static class IndexWorkload
{
    public static async Task RunAsync(JournalSettings settings)
    {
        var topology = Topologies.OneSubnet("10.9.0.0/28", 30);
        var ipam = new StartedIpam(await RomanaHost.StartIpamAsync(topology, settings, TempJournal.Quiet));
        try
        {
            for (var i = 1; i <= 3; i++)
                Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new($"n{i}"), new("s1"), $"192.168.0.{i}")));
            async Task<object> Allocate(string node, string key) =>
                await ipam.AskAsync(new Allocate(new(node), new(key), $"default/{key}"));
            for (var k = 1; k <= 6; k++) Assert.IsType<AddressAssigned>(await Allocate("n1", $"k{k}"));
            Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(new("k1"), null)));
            Assert.IsType<AddressAssigned>(await Allocate("n1", "k7")); // the lowest free address: k1's
            for (var k = 8; k <= 10; k++) Assert.IsType<AddressAssigned>(await Allocate("n2", $"k{k}"));
            for (var k = 11; k <= 13; k++) Assert.IsType<AddressAssigned>(await Allocate("n3", $"k{k}"));

            await ipam.DisposeAsync();
            ipam = new StartedIpam(await RomanaHost.StartIpamAsync(topology, settings, TempJournal.Quiet));
            for (var k = 2; k <= 7; k++) Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(new($"k{k}"), null, "CNI DEL")));
            // n2 fills its block and needs another: none is free, n1's are empty and reclaimed for n2.
            for (var k = 14; k <= 20; k++) await Allocate("n2", $"k{k}");
            await Allocate("n1", "k21");
            Assert.IsType<NodeRemoved>(await ipam.AskAsync(new RemoveNode(new("n3"))));
            await Allocate("n2", "k22");
        }
        finally
        {
            await ipam.DisposeAsync();
        }
    }
}

/// <summary>The workload's SQLite journal, written once; each test questions a copy (with an audit store of its own).</summary>
public sealed class IndexWorkloadFixture : IAsyncLifetime
{
    private readonly TempFolder _folder = new();

    public string Journal => Path.Combine(_folder.Path, "journal.db");

    public async Task InitializeAsync()
    {
        await IndexWorkload.RunAsync(JournalSettings.Sqlite(Journal));
        SqliteConnection.ClearAllPools();
    }

    /// <summary>A copy of the journal in <paramref name="folder"/>: its audit store will be romana.audit.db beside it.</summary>
    public JournalSettings Copy(TempFolder folder)
    {
        foreach (var suffix in new[] { "", "-wal", "-shm" })
            if (File.Exists(Journal + suffix)) File.Copy(Journal + suffix, Path.Combine(folder.Path, "journal.db" + suffix));
        return JournalSettings.Sqlite(Path.Combine(folder.Path, "journal.db"));
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        _folder.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>What the index tests share: building it, and comparing its answers with the journal's for everything.</summary>
public static class IndexChecks
{
    public static string Canonical(IEnumerable<AddressHolding> holdings) => JsonSerializer.Serialize(
        holdings.OrderBy(h => h.From).ThenBy(h => h.Node).ThenBy(h => h.Address).ThenBy(h => h.Key).ThenBy(h => h.To),
        RomanaSerializer.Options);

    /// <summary>Every ipam event of the journal, with its ordering.</summary>
    public static async Task<List<TaggedEvent>> EventsAsync(AuditJournal journal)
    {
        var events = new List<TaggedEvent>();
        await journal.ByTagAfterAsync(EventTags.Ipam, 0, e =>
        {
            events.Add(e);
            return true;
        });
        return events;
    }

    /// <summary>A batch applied and marked as the runner does (<see cref="JournalMarks"/>): what the questions then trust.</summary>
    public static async Task ApplyAsync(AuditStore store, AuditJournal journal, AddressIndexProjection projection,
        List<TaggedEvent> batch)
    {
        await projection.ApplyAsync(batch, default);
        await new JournalMarks(store).MarkAsync(projection.Name, batch[^1].Ordering, default);
    }

    public static Task<long> BuildAsync(JournalSettings settings, AuditJournal journal, int batch = 7) =>
        ProjectionCatchUp.RunAsync(journal, new AddressIndexProjection(AuditStore.For(settings, readOnly: false)!),
            new JournalMarks(AuditStore.For(settings, readOnly: false)!), batch, null, default);

    /// <summary>Every address and node the journal knows (and one address it does not), asked both ways; the notes of the index.</summary>
    public static async Task<List<string>> AssertSameAnswersAsync(JournalSettings settings, AuditJournal journal, int maxTail = 10_000)
    {
        var addresses = new SortedSet<Ipv4> { Ipv4.Parse("10.255.255.254") };
        var nodes = new SortedSet<NodeName>();
        await journal.ByTagAsync(EventTags.Ipam, e =>
        {
            if (e is AddressesAllocated allocated) addresses.UnionWith(allocated.Addresses.Select(a => a.Address));
            if (e is NodeJoined joined) nodes.Add(joined.Node);
            return true;
        });
        Assert.True(addresses.Count > 5 && nodes.Count > 2, $"{addresses.Count} addresses, {nodes.Count} nodes");
        var notes = new List<string>();
        foreach (var address in addresses)
        {
            var indexed = await IndexedAudit.AddressAsync(settings, journal, address, maxTail, default);
            Assert.True(indexed.Value is not null, indexed.Note);
            Assert.Equal(Canonical(await AuditQueries.AddressAsync(journal, address)), Canonical(indexed.Value!.Value));
            notes.Add(indexed.Note);
        }
        foreach (var node in nodes)
        {
            var indexed = await IndexedAudit.NodeAsync(settings, journal, node, maxTail, default);
            Assert.True(indexed.Value is not null, indexed.Note);
            var expected = await AuditQueries.NodeAsync(journal, node);
            Assert.Equal(expected.Subnet, indexed.Value!.Subnet);
            Assert.Equal(JsonSerializer.Serialize(expected.Changes, RomanaSerializer.Options),
                JsonSerializer.Serialize(indexed.Value.Changes, RomanaSerializer.Options));
            Assert.Equal(Canonical(expected.Addresses), Canonical(indexed.Value.Addresses));
            notes.Add(indexed.Note);
        }
        return notes;
    }

    /// <summary>The workload did what it is for: an address held twice on one node, one held on two nodes, a reclaim, a leave.</summary>
    public static async Task AssertWorkloadHappenedAsync(AuditJournal journal)
    {
        var holders = new Dictionary<Ipv4, List<NodeName>>();
        var reclaimed = 0;
        var left = 0;
        await journal.ByTagAsync(EventTags.Ipam, e =>
        {
            if (e is AddressesAllocated allocated)
                foreach (var a in allocated.Addresses)
                    (holders.TryGetValue(a.Address, out var list) ? list : holders[a.Address] = []).Add(allocated.Node);
            if (e is BlockReclaimed) reclaimed++;
            if (e is NodeLeft) left++;
            return true;
        });
        Assert.Contains(holders.Values, h => h.GroupBy(n => n).Any(n => n.Count() >= 2));
        Assert.Contains(holders.Values, h => h.Distinct().Count() >= 2);
        Assert.True(reclaimed >= 2, $"{reclaimed} blocks reclaimed (one for n2, those of the removed node)");
        Assert.Equal(1, left);
    }
}

public class AddressIndexTests(IndexWorkloadFixture workload) : IClassFixture<IndexWorkloadFixture>
{
    [Fact]
    public async Task The_index_answers_every_address_and_node_as_the_journal_does()
    {
        using var folder = new TempFolder();
        var settings = workload.Copy(folder);
        await using (var romana = await RomanaHost.StartAuditAsync(settings))
        {
            await IndexChecks.AssertWorkloadHappenedAsync(romana.Audit);
            // Batches of 7 events: holdings opened in one batch are closed in a later one, by a projection that read them back.
            Assert.True(await IndexChecks.BuildAsync(settings, romana.Audit) > 30);
            var notes = await IndexChecks.AssertSameAnswersAsync(settings, romana.Audit);
            Assert.All(notes, n => Assert.EndsWith("and the 0 ipam events after it", n));
        }
        SqliteConnection.ClearAllPools();
    }

    [Fact]
    public async Task An_index_behind_the_journal_answers_the_same_from_the_events_after_it_or_says_it_is_too_far_behind()
    {
        using var folder = new TempFolder();
        var settings = workload.Copy(folder);
        await using (var romana = await RomanaHost.StartAuditAsync(settings))
        {
            var events = await IndexChecks.EventsAsync(romana.Audit);
            var store = AuditStore.For(settings, readOnly: false)!;
            var projection = new AddressIndexProjection(store);
            await IndexChecks.ApplyAsync(store, romana.Audit, projection, events[..(events.Count / 2)]);
            var behind = events.Count - events.Count / 2;
            var notes = await IndexChecks.AssertSameAnswersAsync(settings, romana.Audit);
            Assert.All(notes, n => Assert.EndsWith($"and the {behind} ipam events after it", n));

            var tooFar = await IndexedAudit.AddressAsync(settings, romana.Audit, events[0].Event is AddressesAllocated a
                ? a.Addresses[0].Address : Ipv4.Parse("10.9.0.1"), behind - 1, default);
            Assert.Null(tooFar.Value);
            Assert.Equal($"the address index in {AuditStore.For(settings, true)!.Describe} is more than {behind - 1:N0} events behind the "
                + "journal (romana.audit.index.max-tail-events)", tooFar.Note);
        }
        SqliteConnection.ClearAllPools();
    }

    [Fact]
    public async Task The_tail_after_an_offset_starts_after_it()
    {
        using var folder = new TempFolder();
        var settings = workload.Copy(folder);
        await using var romana = await RomanaHost.StartAuditAsync(settings);
        var all = (await IndexChecks.EventsAsync(romana.Audit)).Select(e => e.Ordering).ToList();
        var middle = all[all.Count / 2];
        var after = new List<long>();
        await romana.Audit.ByTagAfterAsync(EventTags.Ipam, middle, e =>
        {
            after.Add(e.Ordering);
            return true;
        });
        Assert.Equal(all.Where(o => o > middle), after);
    }

    [Fact]
    public async Task Without_an_index_or_with_one_of_another_format_the_journal_answers_and_the_note_says_why()
    {
        using var folder = new TempFolder();
        var settings = workload.Copy(folder);
        var address = Ipv4.Parse("10.9.0.1");
        await using (var romana = await RomanaHost.StartAuditAsync(settings))
        {
            var missing = await IndexedAudit.AddressAsync(settings, romana.Audit, address, 10_000, default);
            Assert.Null(missing.Value);
            Assert.Equal($"no address index: {settings.SqliteAuditPath} does not exist", missing.Note);
            Assert.False(File.Exists(settings.SqliteAuditPath)); // an audit creates nothing

            var store = AuditStore.For(settings, readOnly: false)!; // a store with no index in it (only the checkpoints, say)
            await using (var connection = await store.OpenAsync(default))
            await using (var create = connection.CreateCommand())
            {
                create.CommandText = AuditStore.OffsetsTable;
                await create.ExecuteNonQueryAsync();
            }
            var empty = await IndexedAudit.NodeAsync(settings, romana.Audit, new NodeName("n1"), 10_000, default);
            Assert.Null(empty.Value);
            Assert.Equal($"no address index in {store.Describe} yet", empty.Note);

            await IndexChecks.BuildAsync(settings, romana.Audit, 1000);
            await using (var connection = await store.OpenAsync(default))
            await using (var format = connection.CreateCommand())
            {
                format.CommandText = "UPDATE romana_audit_offsets SET format = 99 WHERE projection = 'address-index'";
                Assert.Equal(1, await format.ExecuteNonQueryAsync());
            }
            var other = await IndexedAudit.AddressAsync(settings, romana.Audit, address, 10_000, default);
            Assert.Null(other.Value);
            Assert.Equal($"the address index in {store.Describe} is of format 99, this romana reads format {AddressIndexProjection.Format} "
                + "(the projection rebuilds it)", other.Note);

            // The projection never trusts it: it drops it and starts again from the journal's start.
            var logged = new List<string>();
            var projection = new AddressIndexProjection(store, logged.Add);
            Assert.Empty(await projection.OffsetsAsync(default));
            Assert.Contains("holds format 99", Assert.Single(logged));
            Assert.Equal(0L, await CountAsync(store, AddressIndexProjection.HoldingsTable));
            await ProjectionCatchUp.RunAsync(romana.Audit, projection, new JournalMarks(store), 1000, null, default);
            await IndexChecks.AssertSameAnswersAsync(settings, romana.Audit);
        }
        SqliteConnection.ClearAllPools();
    }

    [Fact]
    public async Task A_batch_that_fails_mid_transaction_leaves_the_previous_rows_and_offset_and_the_next_run_resumes()
    {
        using var folder = new TempFolder();
        var settings = workload.Copy(folder);
        await using (var romana = await RomanaHost.StartAuditAsync(settings))
        {
            var store = AuditStore.For(settings, readOnly: false)!;
            var events = await IndexChecks.EventsAsync(romana.Audit);
            var projection = new AddressIndexProjection(store);
            var first = events.Count / 3;
            await IndexChecks.ApplyAsync(store, romana.Audit, projection, events[..first]);
            var rows = await CountAsync(store, AddressIndexProjection.HoldingsTable);
            var closed = await CountAsync(store, AddressIndexProjection.HoldingsTable, "to_ticks IS NOT NULL");
            // The offset is written last in the transaction: the batch's rows are in it when this fails.
            await ExecuteAsync(store, """
                CREATE TRIGGER fail_offsets BEFORE UPDATE ON romana_audit_offsets
                BEGIN SELECT RAISE(ABORT, 'disk gone'); END
                """);
            await Assert.ThrowsAsync<SqliteException>(() => projection.ApplyAsync(events[first..], default));
            Assert.Equal(rows, await CountAsync(store, AddressIndexProjection.HoldingsTable));
            Assert.Equal(closed, await CountAsync(store, AddressIndexProjection.HoldingsTable, "to_ticks IS NOT NULL"));
            Assert.Equal(events[first - 1].Ordering, (await projection.OffsetsAsync(default))[EventTags.Ipam]);

            await ExecuteAsync(store, "DROP TRIGGER fail_offsets");
            // The same projection (its fold ran ahead and is dropped), from the stored offset.
            Assert.Equal(events.Count - first,
                await ProjectionCatchUp.RunAsync(romana.Audit, projection, new JournalMarks(store), 5, null, default));
            await IndexChecks.AssertSameAnswersAsync(settings, romana.Audit);
            // Batches handed again (a runner that retries what did commit) change nothing, in this projection or a new one.
            var all = await CountAsync(store, AddressIndexProjection.HoldingsTable);
            await projection.ApplyAsync(events[first..], default);
            await new AddressIndexProjection(store).ApplyAsync(events, default);
            Assert.Equal(all, await CountAsync(store, AddressIndexProjection.HoldingsTable));
            await IndexChecks.AssertSameAnswersAsync(settings, romana.Audit);
        }
        SqliteConnection.ClearAllPools();
    }

    [Fact]
    public async Task Romana_audit_address_and_node_answer_from_the_index_as_from_the_journal()
    {
        using var folder = new TempFolder();
        var settings = workload.Copy(folder);
        await using (var romana = await RomanaHost.StartAuditAsync(settings))
            await IndexChecks.BuildAsync(settings, romana.Audit, 1000);
        SqliteConnection.ClearAllPools();
        Task<(int Exit, string Output, string Error)> Romana(params string[] arguments) => Processes.RunAsync("dotnet",
            [Path.Combine(AppContext.BaseDirectory, "romana.dll"), "audit", .. arguments, "--journal", settings.SqlitePath],
            Paths.RepositoryRoot);

        // The address held most often: released and handed out again, on one node or on two.
        var allocations = new Dictionary<Ipv4, int>();
        await using (var romana = await RomanaHost.StartAuditAsync(settings))
            await romana.Audit.ByTagAsync(EventTags.Ipam, e =>
            {
                foreach (var a in (e as AddressesAllocated)?.Addresses ?? [])
                    allocations[a.Address] = allocations.GetValueOrDefault(a.Address) + 1;
                return true;
            });
        var address = allocations.MaxBy(a => a.Value).Key.ToString();
        SqliteConnection.ClearAllPools();

        var table = await Romana("address", address);
        Assert.True(table.Exit == 0, table.Error);
        Assert.StartsWith($"romana: answered from the address index in SQLite file {settings.SqliteAuditPath} (up to journal ordering ",
            table.Error);
        var indexed = (Address: await Romana("address", address, "--json"), Node: await Romana("node", "n2", "--json"));
        Assert.Contains("answered from the address index", indexed.Node.Error);
        var holdings = JsonDocument.Parse(indexed.Address.Output).RootElement.EnumerateArray().ToList();
        Assert.True(holdings.Count >= 2, indexed.Address.Output);
        Assert.All(holdings, h => Assert.Contains(h.GetProperty("pod").GetString()!, table.Output));

        File.Delete(settings.SqliteAuditPath);
        var journal = (Address: await Romana("address", address, "--json"), Node: await Romana("node", "n2", "--json"));
        Assert.Equal($"romana: answered from the journal: no address index: {settings.SqliteAuditPath} does not exist",
            journal.Address.Error.Trim());
        Assert.Equal(journal.Address.Output, indexed.Address.Output);
        Assert.Equal(journal.Node.Output, indexed.Node.Output);
    }

    private static async Task<long> CountAsync(AuditStore store, string table, string where = "1 = 1")
    {
        await using var connection = await store.OpenAsync(default);
        await using var count = connection.CreateCommand();
        count.CommandText = $"SELECT count(*) FROM {table} WHERE {where}";
        return Convert.ToInt64(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task ExecuteAsync(AuditStore store, string sql)
    {
        await using var connection = await store.OpenAsync(default);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}

/// <summary>The same index on a simulation's journal: a failure and recovery, a node added, a node removed.</summary>
public class AddressIndexSimulationTests(AuditFixture simulation) : IClassFixture<AuditFixture>
{
    [Fact]
    public async Task The_index_of_a_simulation_journal_answers_every_address_and_node_as_the_journal_does()
    {
        await using var romana = await RomanaHost.StartAuditAsync(simulation.Settings);
        await IndexChecks.BuildAsync(simulation.Settings, romana.Audit, 50);
        await IndexChecks.AssertSameAnswersAsync(simulation.Settings, romana.Audit);
    }
}

/// <summary>The same on PostgreSQL: tables romana_audit_* in the journal's database.</summary>
[Collection(PostgreSqlCollection.Name)]
public class PostgreSqlAddressIndexTests(PostgreSqlServer server)
{
    [SkippableFact]
    public async Task The_index_on_postgresql_answers_as_the_journal_does_also_when_behind_and_after_a_failed_batch()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        await using var fresh = await server.CreateJournalAsync();
        await IndexWorkload.RunAsync(fresh.Settings);
        await using var romana = await RomanaHost.StartAuditAsync(fresh.Settings);
        await IndexChecks.AssertWorkloadHappenedAsync(romana.Audit);
        var events = await IndexChecks.EventsAsync(romana.Audit);
        var store = AuditStore.For(fresh.Settings, readOnly: false)!;
        var projection = new AddressIndexProjection(store);
        var first = events.Count / 2;
        await IndexChecks.ApplyAsync(store, romana.Audit, projection, events[..first]);
        Assert.All(await IndexChecks.AssertSameAnswersAsync(fresh.Settings, romana.Audit),
            n => Assert.EndsWith($"and the {events.Count - first} ipam events after it", n));

        await using (var connection = new NpgsqlConnection(fresh.Settings.PostgreSqlConnectionString))
        {
            await connection.OpenAsync();
            await using var trigger = new NpgsqlCommand("""
                CREATE FUNCTION fail_offsets() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk gone'; END $$ LANGUAGE plpgsql;
                CREATE TRIGGER fail_offsets BEFORE UPDATE ON romana_audit_offsets FOR EACH ROW EXECUTE FUNCTION fail_offsets();
                """, connection);
            await trigger.ExecuteNonQueryAsync();
            await Assert.ThrowsAsync<PostgresException>(() => projection.ApplyAsync(events[first..], default));
            Assert.Equal(events[first - 1].Ordering, (await projection.OffsetsAsync(default))[EventTags.Ipam]);
            await using var drop = new NpgsqlCommand("DROP TRIGGER fail_offsets ON romana_audit_offsets", connection);
            await drop.ExecuteNonQueryAsync();
        }
        await ProjectionCatchUp.RunAsync(romana.Audit, projection, new JournalMarks(store), 5, null, default);
        Assert.All(await IndexChecks.AssertSameAnswersAsync(fresh.Settings, romana.Audit),
            n => Assert.EndsWith("and the 0 ipam events after it", n));
    }
}
