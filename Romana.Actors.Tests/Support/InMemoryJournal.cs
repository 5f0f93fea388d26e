using Akka.Configuration;

namespace Romana.Actors.Tests.Support;

/// <summary>Akka.Persistence.TestKit's journal and snapshot store, in memory, for a TestKit whose actors persist.</summary>
public static class InMemoryJournal
{
    public static readonly Config Config = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.persistence {
          journal {
            plugin = "akka.persistence.journal.test"
            test.class = "Akka.Persistence.TestKit.TestJournal, Akka.Persistence.TestKit"
          }
          snapshot-store {
            plugin = "akka.persistence.snapshot-store.test"
            test.class = "Akka.Persistence.TestKit.TestSnapshotStore, Akka.Persistence.TestKit"
          }
        }
        """);
}
