using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Persistence;

namespace Romana.Actors.Tests.Persistence;

/// <summary>
/// One process per SQLite journal file: every command that writes one (the daemon, `ipam demo`, `simulate`) takes its lock
/// first, and one that finds it held says so in one line and leaves the file alone.
/// </summary>
public class JournalLockTests
{
    private static Task<(int Exit, string Output, string Error)> RomanaAsync(params string[] arguments) =>
        Processes.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), .. arguments], Paths.RepositoryRoot);

    [SkippableFact]
    public async Task The_writers_of_a_journal_file_refuse_it_while_another_process_holds_its_lock()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "flock is taken on Linux");
        using var folder = new TempFolder();
        var journal = folder.Write("held.db", "not touched");
        using (var held = JournalLock.Acquire(JournalSettings.Sqlite(journal))!)
        {
            Assert.Equal($"{journal}.lock", held.LockPath);
            // .NET's own readers take a shared flock, which the held lock refuses; cat takes none.
            Assert.Equal($"{Environment.ProcessId}", Processes.Run("cat", [held.LockPath]).Output.Trim());
            var twice = Assert.Throws<JournalUnavailableException>(() => JournalLock.Acquire(JournalSettings.Sqlite(journal)));
            Assert.Equal($"--journal: {journal} is in use by another Romana process (pid {Environment.ProcessId}); " +
                $"one process per journal file (lock {journal}.lock)", twice.Message);

            foreach (var command in new[] { new[] { "ipam", "demo", "--journal", journal }, ["simulate", "--journal", journal] })
            {
                var (exit, output, error) = await RomanaAsync(command);
                Assert.Equal(1, exit);
                Assert.Equal($"romana: cannot start: --journal: {journal} is in use by another Romana process " +
                    $"(pid {Environment.ProcessId}); one process per journal file (lock {journal}.lock)", error.Trim());
                Assert.DoesNotContain("   at ", output + error);
            }
            Assert.Equal("not touched", File.ReadAllText(journal));
        }
        // Released with its holder: the next one takes it.
        using var next = JournalLock.Acquire(JournalSettings.Sqlite(journal));
        Assert.NotNull(next);
    }
}
