using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using Romana.Actors;
using Romana.Actors.Configuration;

namespace Romana.Host.Persistence;

/// <summary>
/// Before an audit reads a journal: what the named database is, found without changing it. Anything but a Romana journal
/// is a <see cref="ConfigurationError"/> that says what was found (no such file, an empty file, not a SQLite database,
/// a database without the journal table).
/// </summary>
public static class JournalProbe
{
    private const string JournalTable = "journal";
    private static readonly byte[] SqliteHeader = Encoding.ASCII.GetBytes("SQLite format 3\0");

    public static void Check(JournalSettings settings)
    {
        switch (settings.Journal)
        {
            case JournalKind.Sqlite: CheckSqlite(settings.SqlitePath); break;
            case JournalKind.PostgreSql: CheckPostgreSql(settings); break;
            default: throw new ConfigurationError("a journal in memory holds nothing to audit");
        }
    }

    private static void CheckSqlite(string path)
    {
        var file = new FileInfo(path);
        if (!file.Exists) throw new ConfigurationError($"{path}: no such journal file");
        if (file.Length == 0) throw new ConfigurationError($"{path}: an empty file, not a Romana journal");
        var header = new byte[SqliteHeader.Length];
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            if (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length || !header.SequenceEqual(SqliteHeader))
                throw new ConfigurationError($"{path}: not a SQLite database");
        bool hasJournal;
        try
        {
            var readOnly = new SqliteConnectionStringBuilder
            {
                DataSource = Path.GetFullPath(path), Mode = SqliteOpenMode.ReadOnly, Pooling = false,
            };
            using var connection = new SqliteConnection(readOnly.ToString());
            connection.Open();
            using var query = connection.CreateCommand();
            query.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $name";
            query.Parameters.AddWithValue("$name", JournalTable);
            hasJournal = Convert.ToInt64(query.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) > 0;
        }
        catch (SqliteException e)
        {
            throw new ConfigurationError($"{path}: a SQLite database that cannot be read ({Quoting.Bounded(e.Message)})");
        }
        if (!hasJournal)
            throw new ConfigurationError($"{path}: a SQLite database, but not a Romana journal (it has no {JournalTable} table)");
    }

    private static void CheckPostgreSql(JournalSettings settings)
    {
        var where = Describe(settings.PostgreSqlConnectionString);
        bool hasJournal;
        try
        {
            using var connection = new NpgsqlConnection(PersistenceHosting.ReadOnlyConnectionString(settings));
            connection.Open();
            using var query = new NpgsqlCommand(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = @name",
                connection);
            query.Parameters.AddWithValue("name", JournalTable);
            hasJournal = (long)query.ExecuteScalar()! > 0;
        }
        catch (Exception e) when (e is NpgsqlException or ArgumentException or InvalidOperationException)
        {
            throw new ConfigurationError($"{where}: cannot be read ({Quoting.Bounded(e.Message)})");
        }
        if (!hasJournal)
            throw new ConfigurationError($"{where}: a PostgreSQL database, but not a Romana journal (it has no {JournalTable} table)");
    }

    /// <summary>"PostgreSQL database romana on 127.0.0.1:5432", never the password.</summary>
    public static string Describe(string connectionString)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            var database = Quoting.Bounded(builder.Database ?? "(default)");
            return $"PostgreSQL database {database} on {Quoting.Bounded(builder.Host ?? "?")}:{builder.Port}";
        }
        catch (ArgumentException)
        {
            return "PostgreSQL (romana.persistence.postgresql.connection-string is not a connection string)";
        }
    }
}
