using System.Text.Json;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Ipam;
using Romana.Actors.Persistence;
using static Romana.Actors.Ipam.NodeMessages;

namespace Romana.Actors.Tests.Audit;

/// <summary>
/// A batch's index changes as set-wise rows (<see cref="IndexRows"/>), without a database: what the rows leave in a store is
/// what applying the changes one by one leaves, for any split of the journal into batches.
/// </summary>
public class IndexRowsTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly NodeName N1 = new("n1");

    private static TaggedEvent Allocated(long ordering, NodeName node, string key, string address) => new(EventTags.Ipam, ordering,
        new AddressesAllocated(node, [new AllocatedAddress(new(key), Ipv4.Parse(address), $"default/{key}")],
            Start.AddMinutes(ordering), "allocated"));

    private static TaggedEvent Released(long ordering, NodeName node, string key, string address) => new(EventTags.Ipam, ordering,
        new AddressesReleased(node, [new ReleasedAddress(new(key), Ipv4.Parse(address), "CNI DEL")], Start.AddMinutes(ordering),
            "released"));

    private static IndexRows Rows(AddressIndexFold fold, params TaggedEvent[] events)
    {
        var changes = new List<IndexChange>();
        foreach (var e in events) fold.Apply(e, changes);
        return IndexRows.Of(changes);
    }

    [Fact]
    public void A_holding_opened_and_released_in_one_batch_is_one_row_inserted_released()
    {
        var rows = Rows(new AddressIndexFold(), Allocated(1, N1, "k1", "10.0.0.1"), Released(2, N1, "k1", "10.0.0.1"));

        var row = Assert.Single(rows.Inserted);
        Assert.Equal(new HoldingId(1, 0), row.Id);
        Assert.Equal(Start.AddMinutes(2), row.Holding.To);
        Assert.Equal("CNI DEL", row.Holding.ReleaseReason);
        Assert.Equal(2, row.Closed);
        Assert.Empty(rows.Closed);
        Assert.Empty(rows.Dropped);
    }

    [Fact]
    public void A_holding_opened_and_dropped_in_one_batch_is_never_inserted_and_one_of_an_earlier_batch_is_deleted()
    {
        var fold = new AddressIndexFold();
        Rows(fold, Allocated(1, N1, "k1", "10.0.0.1"));
        // The same address allocated again on the same node while open: the open holding is forgotten, twice.
        var rows = Rows(fold, Allocated(2, N1, "k2", "10.0.0.1"), Allocated(3, N1, "k3", "10.0.0.1"));

        Assert.Equal([new HoldingId(1, 0)], rows.Dropped);
        Assert.Equal([new HoldingId(3, 0)], rows.Inserted.Select(r => r.Id));
        Assert.Null(Assert.Single(rows.Inserted).Holding.To);
    }

    [Fact]
    public void A_release_of_a_holding_of_an_earlier_batch_is_an_update()
    {
        var fold = new AddressIndexFold();
        Rows(fold, Allocated(1, N1, "k1", "10.0.0.1"));
        var rows = Rows(fold, Released(2, N1, "k1", "10.0.0.1"), Allocated(3, N1, "k2", "10.0.0.1"));

        var closed = Assert.Single(rows.Closed);
        Assert.Equal((new HoldingId(1, 0), 2L, "CNI DEL"), (closed.Id, closed.Ordering, closed.Reason));
        Assert.Equal([new HoldingId(3, 0)], rows.Inserted.Select(r => r.Id));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Random_churn_in_random_batches_stores_what_the_changes_one_by_one_leave(int seed)
    {
        var random = new Random(seed);
        var nodes = new[] { N1, new NodeName("n2") };
        var events = new List<TaggedEvent>();
        var open = new Dictionary<(NodeName, string), string>();
        for (var ordering = 1L; ordering <= 400; ordering++)
        {
            var node = nodes[random.Next(nodes.Length)];
            var address = $"10.0.0.{random.Next(1, 6)}";
            if (random.Next(10) == 0)
                events.Add(new TaggedEvent(EventTags.Ipam, ordering,
                    new BlockAdopted(node, Ipv4Cidr.Parse("10.0.0.0/29"), [], Start.AddMinutes(ordering), "granted by subnet")));
            else if (open.Remove((node, address), out var key) && random.Next(4) != 0)
                events.Add(Released(ordering, node, key, address));
            else
            {
                // A quarter of the time an open address is allocated again: the fold drops its holding.
                key = $"k{ordering}";
                open[(node, address)] = key;
                events.Add(Allocated(ordering, node, key, address));
            }
        }

        var fold = new AddressIndexFold();
        var expected = new List<IndexedHolding>();
        var stored = new List<HoldingRow>();
        var nodeChanges = 0;
        for (var at = 0; at < events.Count;)
        {
            var batch = events.Skip(at).Take(random.Next(1, 40)).ToList();
            at += batch.Count;
            var changes = new List<IndexChange>();
            foreach (var e in batch) fold.Apply(e, changes);
            AddressIndexFold.ApplyTo(expected, changes);
            var rows = IndexRows.Of(changes);
            rows.ApplyTo(stored);
            nodeChanges += rows.NodeChanges.Count;
            Assert.Equal(changes.OfType<NodeChanged>(), rows.NodeChanges);
            // Every row of an earlier batch that is touched exists; nothing new is touched twice.
            Assert.Equal(rows.Closed.Count + rows.Dropped.Count, rows.Closed.Select(c => c.Id).Concat(rows.Dropped).Distinct().Count());
        }

        Assert.True(expected.Count(h => h.Holding.To is null) >= 3 && expected.Count(h => h.Holding.To is not null) >= 50,
            $"{expected.Count} holdings");
        Assert.True(events.Count - expected.Count > 20, "some holdings were dropped");
        Assert.True(nodeChanges > 10, $"{nodeChanges} node changes");
        Assert.Equal(Canonical(expected), Canonical(stored.Select(r => new IndexedHolding(r.Id, r.Holding))));
        Assert.All(stored, r => Assert.Equal(r.Holding.To is null, r.Closed is null));
    }

    private static string Canonical(IEnumerable<IndexedHolding> rows) =>
        JsonSerializer.Serialize(rows.OrderBy(r => r.Id.Opened).ThenBy(r => r.Id.Position), RomanaSerializer.Options);
}
