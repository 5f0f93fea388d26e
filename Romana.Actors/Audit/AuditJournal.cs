using Akka;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Romana.Actors.Persistence;

namespace Romana.Actors.Audit;

/// <summary>
/// Reads the journal through Akka.Persistence.Query, never through live actors: events by tag or by persistence id,
/// streamed in the journal's order. Which read journal (SQLite or PostgreSQL through Akka.Persistence.Sql) is the
/// composition root's choice.
/// </summary>
public sealed class AuditJournal
{
    private readonly ICurrentEventsByTagQuery _byTag;
    private readonly ICurrentAllEventsQuery _all;
    private readonly IReadJournal _journal;
    private readonly ICurrentEventsByPersistenceIdQuery _byPersistenceId;
    private readonly ICurrentPersistenceIdsQuery _persistenceIds;
    private readonly IMaterializer _materializer;

    public AuditJournal(ActorSystem system, string readJournalId)
    {
        var journal = PersistenceQuery.Get(system).ReadJournalFor<IReadJournal>(readJournalId);
        _journal = journal;
        _all = (ICurrentAllEventsQuery)journal;
        _byTag = (ICurrentEventsByTagQuery)journal;
        _byPersistenceId = (ICurrentEventsByPersistenceIdQuery)journal;
        _persistenceIds = (ICurrentPersistenceIdsQuery)journal;
        _materializer = system.Materializer();
    }

    /// <summary>
    /// The events with this tag in journal order (the ordering column), handed to <paramref name="each"/> as they stream
    /// in, until it returns false: then the stream stops and no further page is read.
    /// </summary>
    public Task ByTagAsync(string tag, Func<IRomanaEvent, bool> each) => ByTagAfterAsync(tag, 0, e => each(e.Event));

    /// <summary>
    /// The events with this tag after <paramref name="afterOrdering"/> (0: from the start), with their ordering, until
    /// <paramref name="each"/> returns false: what a projection's catch-up and an audit's tail after a checkpoint read.
    /// </summary>
    public Task ByTagAfterAsync(string tag, long afterOrdering, Func<TaggedEvent, bool> each) =>
        _byTag.CurrentEventsByTag(tag, afterOrdering <= 0 ? Offset.NoOffset() : Offset.Sequence(afterOrdering))
            // One stage does the filtering and the folding: each stage an element passes costs, and a replay passes a million.
            .TakeWhile(e => Upgraded(e.Event) is not IRomanaEvent romana
                || each(new TaggedEvent(tag, ((Sequence)e.Offset).Value, romana)))
                .RunWith(Sink.Ignore<EventEnvelope>(), _materializer);

    /// <summary>
    /// Every event after <paramref name="afterOrdering"/> in journal order, whatever its tag, with its ordering (the event is
    /// null when it is not Romana's), until <paramref name="each"/> returns false. One pass along the ordering column that
    /// stops where asked: unlike a tag's read, a tag with few events does not make it read on to the journal's end.
    /// </summary>
    public Task AllAfterAsync(long afterOrdering, Func<long, IRomanaEvent?, bool> each) =>
        _all.CurrentAllEvents(afterOrdering <= 0 ? Offset.NoOffset() : Offset.Sequence(afterOrdering))
            .TakeWhile(e => each(((Sequence)e.Offset).Value, Upgraded(e.Event) as IRomanaEvent))
            .RunWith(Sink.Ignore<EventEnvelope>(), _materializer);

    /// <summary>Every event after <paramref name="afterOrdering"/>, live (see <see cref="AllAfterAsync"/>).</summary>
    public Source<(long Ordering, IRomanaEvent? Event), NotUsed> LiveAll(long afterOrdering) =>
        ((IAllEventsQuery)_journal).AllEvents(afterOrdering <= 0 ? Offset.NoOffset() : Offset.Sequence(afterOrdering))
            .Select(e => (((Sequence)e.Offset).Value, Upgraded(e.Event) as IRomanaEvent));

    public async Task<IReadOnlyList<IRomanaEvent>> ByPersistenceIdAsync(string persistenceId) =>
        [.. (await _byPersistenceId.CurrentEventsByPersistenceId(persistenceId, 0, long.MaxValue)
            .Select(e => Upgraded(e.Event)).RunWith(Sink.Seq<object>(), _materializer)).OfType<IRomanaEvent>()];

    /// <summary>The query side applies no read adapter: an event of an older shape is upgraded here, as recovery upgrades it.</summary>
    private static object Upgraded(object e) => e is IUpgradable legacy ? EventUpgrader.UpgradeFully(legacy) : e;

    public async Task<IReadOnlyList<string>> PersistenceIdsAsync() =>
        [.. await _persistenceIds.CurrentPersistenceIds().RunWith(Sink.Seq<string>(), _materializer)];
}
