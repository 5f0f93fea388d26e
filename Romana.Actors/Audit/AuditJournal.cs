using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Romana.Actors.Configuration;
using Romana.Actors.Persistence;

namespace Romana.Actors.Audit;

/// <summary>
/// Reads the journal through Akka.Persistence.Query (the SQL read journal), never through live actors: events by tag
/// or by persistence id, streamed in the journal's order, on the embedded SQLite file or on PostgreSQL.
/// </summary>
public sealed class AuditJournal : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly SqlReadJournal _journal;
    private readonly IMaterializer _materializer;

    private AuditJournal(ActorSystem system)
    {
        _system = system;
        _journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
        _materializer = system.Materializer();
    }

    public static AuditJournal Open(JournalSettings settings)
    {
        if (settings.Journal == JournalKind.Sqlite && !File.Exists(settings.SqlitePath))
            throw new ConfigurationError($"{settings.SqlitePath}: no such journal file");
        var config = ConfigurationFactory.ParseString("akka.loglevel = WARNING")
            .WithFallback(PersistenceConfig.For(settings)).WithFallback(RomanaConfig.Reference);
        return new AuditJournal(ActorSystem.Create("romana-audit", config));
    }

    /// <summary>
    /// The events with this tag in journal order (the ordering column), handed to <paramref name="each"/> as they stream
    /// in, until it returns false: then the stream stops and no further page is read.
    /// </summary>
    public Task ByTagAsync(string tag, Func<IRomanaEvent, bool> each) =>
        // One stage does the filtering and the folding: each stage an element passes costs, and a replay passes a million.
        _journal.CurrentEventsByTag(tag, Offset.NoOffset())
            .TakeWhile(e => e.Event is not IRomanaEvent romana || each(romana)).RunWith(Sink.Ignore<EventEnvelope>(), _materializer);

    public async Task<IReadOnlyList<IRomanaEvent>> ByPersistenceIdAsync(string persistenceId) =>
        [.. (await _journal.CurrentEventsByPersistenceId(persistenceId, 0, long.MaxValue)
            .Select(e => e.Event).RunWith(Sink.Seq<object>(), _materializer)).OfType<IRomanaEvent>()];

    public async Task<IReadOnlyList<string>> PersistenceIdsAsync() =>
        [.. await _journal.CurrentPersistenceIds().RunWith(Sink.Seq<string>(), _materializer)];

    public async ValueTask DisposeAsync() => await _system.Terminate();
}
