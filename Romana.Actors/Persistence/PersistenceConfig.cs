using Akka.Configuration;
using Akka.Persistence.Sql;
using Microsoft.Data.Sqlite;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;

namespace Romana.Actors.Persistence;

/// <summary>
/// The Akka.Persistence.Sql journal, snapshot store and read journal for the chosen database, with Romana's
/// serializer and its one tagging write adapter.
/// </summary>
public static class PersistenceConfig
{
    public static Config For(JournalSettings settings)
    {
        var (connection, snapshots, provider, parallelism) = settings.Journal switch
        {
            // SQLite has one writer per file: the journal writes with parallelism 1, and snapshots live in a file of
            // their own, because a writer that finds the file locked backs off for 150 ms (Microsoft.Data.Sqlite).
            JournalKind.Sqlite => (PrepareSqlite(settings.SqlitePath), PrepareSqlite(settings.SqliteSnapshotPath), "SQLite.MS", 1),
            _ => (settings.PostgreSqlConnectionString, settings.PostgreSqlConnectionString, "PostgreSQL.15", 3),
        };
        var quoted = Quote(connection);
        return ConfigurationFactory.ParseString($$"""
            akka.actor {
              serializers.romana = "{{typeof(RomanaSerializer).AssemblyQualifiedShortName()}}"
              serialization-bindings {
                "{{typeof(IRomanaEvent).AssemblyQualifiedShortName()}}" = romana
                "{{typeof(IRomanaSnapshot).AssemblyQualifiedShortName()}}" = romana
              }
              serialization-identifiers { "{{typeof(RomanaSerializer).AssemblyQualifiedShortName()}}" = {{RomanaSerializer.Id}} }
            }
            akka.persistence {
              journal {
                plugin = "akka.persistence.journal.sql"
                sql {
                  connection-string = {{quoted}}
                  provider-name = "{{provider}}"
                  parallelism = {{parallelism}}
                  # Tags live in the journal row (";routes;"), not in the tag table: a row is written in one insert, a
                  # read by persistence id needs no join, and a read by tag is one pass along the ordering column.
                  # (The tag table's reads gather each row's tags with a subquery over the whole tag table on SQLite.)
                  tag-write-mode = Csv
                  auto-initialize = true
                  event-adapters { tagger = "{{typeof(EventTagger).AssemblyQualifiedShortName()}}" }
                  event-adapter-bindings { "{{typeof(IRomanaEvent).AssemblyQualifiedShortName()}}" = tagger }
                }
              }
              snapshot-store {
                plugin = "akka.persistence.snapshot-store.sql"
                sql {
                  connection-string = {{Quote(snapshots)}}
                  provider-name = "{{provider}}"
                  auto-initialize = true
                }
              }
              query.journal.sql {
                connection-string = {{quoted}}
                provider-name = "{{provider}}"
                tag-read-mode = Csv
                # Audits read whole aggregates: large pages.
                max-buffer-size = 5000
              }
            }
            """).WithFallback(SqlPersistence.DefaultConfiguration);
    }

    /// <summary>Creates the file's folder and switches it to write-ahead logging (readers never block the writer).</summary>
    private static string PrepareSqlite(string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var connectionString = new SqliteConnectionStringBuilder { DataSource = full }.ToString();
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA journal_mode=WAL;";
        pragma.ExecuteNonQuery();
        return connectionString;
    }

    private static string Quote(string text) => "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    private static string AssemblyQualifiedShortName(this Type type) => $"{type.FullName}, {type.Assembly.GetName().Name}";
}
