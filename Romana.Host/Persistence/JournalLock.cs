using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Romana.Host.Persistence;

/// <summary>
/// One process per SQLite journal file: an exclusive lock (flock) on "JOURNAL.lock" beside it, taken before the journal is
/// opened and held for the life of the process that writes it. The kernel drops the lock with the process, so a crash
/// leaves none behind; the file stays, holding the pid of its last holder for the refusal's message. A second writer is
/// refused with one line naming the journal, the holder's pid and the lock file. PostgreSQL journals need no lock: a
/// cluster shares one, with one writer per persistence id.
/// </summary>
public sealed class JournalLock : IDisposable
{
    private readonly SafeFileHandle _handle;

    private JournalLock(SafeFileHandle handle, string path)
    {
        _handle = handle;
        LockPath = path;
    }

    public string LockPath { get; }

    /// <summary>The lock of <paramref name="journal"/>'s SQLite file; null for PostgreSQL.</summary>
    /// <exception cref="JournalUnavailableException">Another process holds it, or it cannot be made.</exception>
    public static JournalLock? Acquire(JournalSettings journal)
    {
        if (journal.Journal != JournalKind.Sqlite || !OperatingSystem.IsLinux()) return null;
        var setting = journal.SqlitePathSetting;
        var file = Path.GetFullPath(journal.SqlitePath);
        var path = file + ".lock";
        var fd = Open(path, ORdWr | OCreat | OCloExec, 0b110_100_100);
        if (fd < 0)
            throw new JournalUnavailableException($"{setting}: cannot lock the journal {file}: cannot open {path}: {LastError()}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (FLock(fd, LockExclusive | LockNonBlocking) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var error = Marshal.GetPInvokeErrorMessage(errno);
            var holder = errno == EWouldBlock ? Holder(handle) : null;
            handle.Dispose();
            throw new JournalUnavailableException(errno == EWouldBlock
                ? $"{setting}: {file} is in use by another Romana process{(holder is { } other ? $" (pid {other})" : "")}; " +
                  $"one process per journal file (lock {path})"
                : $"{setting}: cannot lock the journal {file} ({path}): {error}");
        }
        var pid = Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n");
        RandomAccess.SetLength(handle, 0);
        RandomAccess.Write(handle, pid, 0);
        return new JournalLock(handle, path);
    }

    /// <summary>The pid the lock file names, when that process is alive (this pid namespace's view).</summary>
    private static int? Holder(SafeFileHandle handle)
    {
        var buffer = new byte[32];
        var read = RandomAccess.Read(handle, buffer, 0);
        return int.TryParse(Encoding.ASCII.GetString(buffer, 0, read).Trim(), out var pid) && Directory.Exists($"/proc/{pid}")
            ? pid
            : null;
    }

    private static string LastError() => Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());

    /// <summary>Closing the descriptor drops the lock.</summary>
    public void Dispose() => _handle.Dispose();

    private const int ORdWr = 0x2;
    private const int OCreat = 0x40;
    private const int OCloExec = 0x80000;
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;
    private const int EWouldBlock = 11;

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open(string path, int flags, int mode);

    [DllImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static extern int FLock(int fd, int operation);
}

/// <summary>The journal cannot be used: it is locked by another process, or its file cannot be opened or written.</summary>
public sealed class JournalUnavailableException(string message, Exception? cause = null) : Exception(message, cause);
