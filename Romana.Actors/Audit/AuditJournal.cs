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
    private readonly IReadJournal _journal;
    private readonly ICurrentEventsByPersistenceIdQuery _byPersistenceId;
    private readonly ICurrentPersistenceIdsQuery _persistenceIds;
    private readonly IMaterializer _materializer;

    public AuditJournal(ActorSystem system, string readJournalId)
    {
        var journal = PersistenceQuery.Get(system).ReadJournalFor<IReadJournal>(readJournalId);
        _journal = journal;
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
    /// The events with this tag after <paramref name="afterOrdering"/>, live: the stream does not end at the journal's end but
    /// goes on with the events written later (what a projection's runner reads).
    /// </summary>
    public Source<TaggedEvent, NotUsed> LiveByTag(string tag, long afterOrdering) =>
        ((IEventsByTagQuery)_journal).EventsByTag(tag, afterOrdering <= 0 ? Offset.NoOffset() : Offset.Sequence(afterOrdering))
            .Select(e => (Event: Upgraded(e.Event), Ordering: ((Sequence)e.Offset).Value))
            .Where(e => e.Event is IRomanaEvent)
            .Select(e => new TaggedEvent(tag, e.Ordering, (IRomanaEvent)e.Event));

    public async Task<IReadOnlyList<IRomanaEvent>> ByPersistenceIdAsync(string persistenceId) =>
        [.. (await _byPersistenceId.CurrentEventsByPersistenceId(persistenceId, 0, long.MaxValue)
            .Select(e => Upgraded(e.Event)).RunWith(Sink.Seq<object>(), _materializer)).OfType<IRomanaEvent>()];

    /// <summary>The query side applies no read adapter: an event of an older shape is upgraded here, as recovery upgrades it.</summary>
    private static object Upgraded(object e) => e is IUpgradable legacy ? EventUpgrader.UpgradeFully(legacy) : e;

    public async Task<IReadOnlyList<string>> PersistenceIdsAsync() =>
        [.. await _persistenceIds.CurrentPersistenceIds().RunWith(Sink.Seq<string>(), _materializer)];
}
