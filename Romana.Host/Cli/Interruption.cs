using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Romana.Host.Cli;

/// <summary>
/// SIGTERM, SIGINT (Ctrl-C) and SIGQUIT as a cancellation, for the commands that do a finite piece of work (plan, simulate,
/// vectors, the demo, benchmarks). The first signal cancels <see cref="Token"/>: the command stops where it is, its actor
/// system stops, and its temporary folders are removed on the way out, as on any other exit; it then exits with 128 plus
/// the signal's number (143, 130, 131). A command that has not ended <see cref="Grace"/> after the signal, or a second
/// signal, runs the cleanups registered with <see cref="OnForcedExit"/> (temporary folders, network namespaces) and ends
/// the process at once, without the runtime's exit handlers: an actor system that is still busy would hold a normal exit
/// for as long as its coordinated shutdown allows. The daemon and `ec2 serve` handle their own signals: they run until
/// stopped.
/// </summary>
public sealed class Interruption : IDisposable
{
    /// <summary>How long a command may take to wind down after the signal.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _source = new();
    private readonly PosixSignalRegistration[] _registrations;
    private int _signals;
    private int _reported;
    private volatile bool _disposed;

    private Interruption()
    {
        _registrations = [.. new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT }
            .Select(signal => PosixSignalRegistration.Create(signal, OnSignal))];
    }

    /// <summary>
    /// The interruption that handles this process's signals, while a command runs under one: the hosts it starts then
    /// leave the signals to it (<see cref="Composition.RomanaHost"/>), so that the command, not each host, decides the order
    /// of stopping.
    /// </summary>
    public static Interruption? Current { get; private set; }

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>The signal that interrupted the command, if one did.</summary>
    public PosixSignal? Signal { get; private set; }

    /// <summary>The shell's convention: 128 plus the signal's number.</summary>
    public int ExitCode => 128 + Number(Signal ?? PosixSignal.SIGTERM);

    public string Describe() => $"interrupted by {Name(Signal ?? PosixSignal.SIGTERM)}";

    /// <summary>Handles the signals until disposed.</summary>
    public static Interruption Register() => Current = new();

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        if (Interlocked.Increment(ref _signals) > 1)
        {
            Exit();
            return;
        }
        Signal = context.Signal;
        // The handler runs on the runtime's signal thread: cancel elsewhere, so that no continuation runs here.
        _ = Task.Run(_source.Cancel);
        _ = Task.Delay(Grace).ContinueWith(_ => Exit(), TaskScheduler.Default);
    }

    private static readonly ConcurrentQueue<Action> ForcedExitCleanups = new();

    /// <summary>
    /// What must be undone also when the grace runs out (what a process leaves on the machine: folders, namespaces). Each is
    /// also what its owner runs at a normal exit; it must be quick and may run twice.
    /// </summary>
    public static void OnForcedExit(Action cleanup) => ForcedExitCleanups.Enqueue(cleanup);

    private void Exit()
    {
        if (_disposed) return; // the command ended in time and reports the interruption itself
        foreach (var cleanup in ForcedExitCleanups)
        {
            try
            {
                cleanup();
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"romana: cleaning up on the way out: {e.Message}");
            }
        }
        Report();
        Console.Error.Flush();
        Console.Out.Flush();
        ExitNow(ExitCode);
    }

    /// <summary>The process ends here: no exit handler runs (libc's _exit).</summary>
    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void ExitNow(int status);

    /// <summary>
    /// Writes the one line, once: the command ending on its own and the grace running out may both come to it.
    /// </summary>
    public void Report()
    {
        if (Interlocked.Exchange(ref _reported, 1) == 0) Console.Error.WriteLine($"romana: {Describe()}");
    }

    private static int Number(PosixSignal signal) => signal switch
    {
        PosixSignal.SIGINT => 2,
        PosixSignal.SIGQUIT => 3,
        _ => 15,
    };

    private static string Name(PosixSignal signal) => signal switch
    {
        PosixSignal.SIGINT => "SIGINT",
        PosixSignal.SIGQUIT => "SIGQUIT",
        _ => "SIGTERM",
    };

    public void Dispose()
    {
        _disposed = true;
        foreach (var registration in _registrations) registration.Dispose();
        if (Current == this) Current = null;
    }
}

/// <summary>
/// A folder of its own under the system's temporary folder ($TMPDIR), removed when disposed; every one not yet removed is
/// also removed when the process exits (<see cref="AppDomain.ProcessExit"/>) or is interrupted (<see cref="Interruption"/>).
/// </summary>
public sealed class TemporaryFolder : IDisposable
{
    private static readonly ConcurrentDictionary<string, TemporaryFolder> Live = new();

    static TemporaryFolder()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveAll();
        Interruption.OnForcedExit(RemoveAll);
    }

    private TemporaryFolder(string path) => Path = path;

    public string Path { get; }

    /// <summary>A new folder named <paramref name="prefix"/> and a random suffix, such as romana-journal-Ab12Cd.</summary>
    public static TemporaryFolder Create(string prefix)
    {
        var folder = new TemporaryFolder(Directory.CreateTempSubdirectory(prefix).FullName);
        Live[folder.Path] = folder;
        return folder;
    }

    /// <summary>Removes every folder still registered: at exit, or when a command is interrupted.</summary>
    public static void RemoveAll()
    {
        foreach (var folder in Live.Values) folder.Dispose();
    }

    public void Dispose()
    {
        if (!Live.TryRemove(Path, out _)) return;
        // Open SQLite connections stay in Microsoft.Data.Sqlite's pool; on Linux an open file does not keep its folder.
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        for (var attempt = 1; Directory.Exists(Path); attempt++)
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
            catch (IOException) when (attempt < 3)
            {
                // A writer still running (an interrupted command) may have just created a file in it: once more.
                Thread.Sleep(50);
            }
        }
    }
}
