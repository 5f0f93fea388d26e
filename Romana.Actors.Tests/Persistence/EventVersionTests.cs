using Akka.Actor;
using Akka.Persistence;
using Romana.Actors.Audit;
using Romana.Actors.Persistence;
using Romana.Actors.Tests.Support;
using Romana.Host.Composition;
using Romana.Host.Persistence;

namespace Romana.Actors.Tests.Persistence;

/// <summary>Today's shape of a test event: version 2 renamed a field and added one.</summary>
[EventVersion(2)]
public sealed record NoteWritten(string Text, int Priority, DateTimeOffset At, string Reason) : IRomanaEvent;

/// <summary>The shape version 1 wrote, kept so that old journals stay readable.</summary>
[LegacyShape(nameof(NoteWritten))]
public sealed record NoteWrittenV1(string Note, DateTimeOffset At, string Reason) : IUpgradable
{
    public object Upgrade() => new NoteWritten(Note, 0, At, Reason);
}

/// <summary>Persists what it is told; answers with what it holds, which after a restart is what recovery handed it.</summary>
public sealed class NoteKeeper : ReceivePersistentActor
{
    private readonly List<object> _recovered = [];

    public NoteKeeper()
    {
        Recover<object>(e => { if (e is not RecoveryCompleted) _recovered.Add(e); });
        Command<string>(text => Sender.Tell(_recovered.ToList()));
        Command<object>(e => Persist(e, _ => Sender.Tell("stored")));
    }

    public override string PersistenceId => "notes-1";
}

public class EventVersionTests
{
    static EventVersionTests() => EventVersions.Register(typeof(EventVersionTests).Assembly);

    private static readonly DateTimeOffset At = DateTimeOffset.Parse("2026-11-30T05:00:00Z");

    [Fact]
    public void Version_one_keeps_the_short_name_and_later_versions_say_theirs()
    {
        Assert.Equal("AddressesAllocated", EventVersions.ManifestOf(typeof(Romana.Actors.Ipam.NodeMessages.AddressesAllocated)));
        Assert.Equal("NoteWritten.v2", EventVersions.ManifestOf(typeof(NoteWritten)));
        Assert.Equal("NoteWritten", EventVersions.ManifestOf(typeof(NoteWrittenV1)));
        Assert.Equal(typeof(NoteWrittenV1), EventVersions.TypeOf("NoteWritten"));
        Assert.Null(EventVersions.TypeOf("NoteWritten.v3"));
    }

    [Fact]
    public async Task An_event_written_in_an_old_shape_is_recovered_and_queried_in_todays()
    {
        using var journal = new TempJournal();
        await using (var older = await RomanaHost.StartAsync(TempJournal.Quiet, akka => akka.AddRomanaPersistence(journal.Settings)))
        {
            var keeper = older.System.ActorOf(Props.Create<NoteKeeper>());
            Assert.Equal("stored",
                await keeper.Ask<string>(new NoteWrittenV1("written by an older build", At, "test"), TimeSpan.FromSeconds(10)));
            Assert.Equal("stored", await keeper.Ask<string>(new NoteWritten("written today", 3, At, "test"), TimeSpan.FromSeconds(10)));
        }
        Assert.Equal(1, journal.CountEvents("NoteWritten"));
        Assert.Equal(1, journal.CountEvents("NoteWritten.v2"));

        await using var newer = await RomanaHost.StartAsync(TempJournal.Quiet,
            akka => akka.AddRomanaPersistence(journal.Settings).AddRomanaAudit(journal.Settings));
        var recovered = await newer.System.ActorOf(Props.Create<NoteKeeper>())
            .Ask<List<object>>("what do you hold", TimeSpan.FromSeconds(10));
        Assert.Equal([new NoteWritten("written by an older build", 0, At, "test"), new NoteWritten("written today", 3, At, "test")],
            recovered);
        Assert.Equal(recovered, await newer.Audit.ByPersistenceIdAsync("notes-1"));
    }

    [Fact]
    public void A_manifest_from_a_newer_build_is_an_error_that_says_so()
    {
        var error = Assert.Throws<System.Runtime.Serialization.SerializationException>(() => new RomanaSerializer(null!)
            .FromBinary("{}"u8.ToArray(), "NoteWritten.v9"));
        Assert.Contains("NoteWritten.v9", error.Message);
        Assert.Contains("newer build", error.Message);
    }
}
