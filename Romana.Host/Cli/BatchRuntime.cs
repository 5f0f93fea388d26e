using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Romana.Host.Cli;

/// <summary>
/// Runtime settings for the commands that do one large piece of work and end. They are fixed when the runtime starts, so
/// these commands run themselves again in a child process with them; the rest of romana (the daemon above all) keeps the
/// defaults. A user's own setting of any of them wins (then nothing is relaunched).
/// <list type="bullet">
/// <item>The audit commands read a whole journal in one pass and allocate a lot of short-lived objects, and the
/// collector's settings decide their speed: replaying 1,000,000 events took a median 12.6 s with the default collector
/// and 8.7 s with server GC on two heaps and a 256 MB gen0 budget (bench audit, 2 cores). A gen0 that large would keep a
/// long-running daemon at half a gigabyte.</item>
/// <item>`romana plan` runs for seconds, and the JIT is a large part of its CPU: with tiered PGO (the runtime's default)
/// hot methods are compiled a third time, instrumented, which pays off only in a process that runs for long. Without it
/// the 5,040-node plan took about 30 % less CPU (README, "VPC routes"). `plan generate` is not relaunched.</item>
/// </list>
/// </summary>
public static class BatchRuntime
{
    private static readonly Dictionary<string, string> Collector = new()
    {
        ["DOTNET_gcServer"] = "1",
        ["DOTNET_GCHeapCount"] = "2",
        ["DOTNET_GCgen0size"] = "0x10000000",
    };

    private static readonly Dictionary<string, string> ShortJit = new() { ["DOTNET_TieredPGO"] = "0" };

    /// <summary>The settings <paramref name="args"/>' command runs with, or null for the runtime's defaults.</summary>
    private static Dictionary<string, string>? SettingsOf(string[] args) => args switch
    {
        ["audit", ..] or ["bench", "audit", ..] => Collector,
        ["plan", "generate", ..] => null,
        ["plan", ..] => ShortJit,
        _ => null,
    };

    public static bool ShouldRelaunch(string[] args) =>
        !args.Contains("--help") && !args.Contains("-h") && !args.Contains("-?")
        && SettingsOf(args) is { } settings && settings.Keys.All(key => Environment.GetEnvironmentVariable(key) is null);

    /// <summary>Runs this same command in a child with its settings, on the same terminal; its exit code is ours.</summary>
    public static async Task<int> RelaunchAsync(string[] args)
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown");
        var start = new ProcessStartInfo(host) { UseShellExecute = false };
        // Under `dotnet romana.dll` the host is dotnet and the application is the first argument it was given.
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") start.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var (key, value) in SettingsOf(args)!) start.Environment[key] = value;
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"{host} could not be started");
        // Ctrl-C reaches the child through the terminal; a SIGTERM sent to this process alone is passed on as a SIGTERM, so
        // that the child stops as it would on its own (removing what it keeps in temporary folders), and its exit is ours.
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => context.Cancel = true);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            if (Kill(child.Id, SigTerm) != 0) child.Kill(entireProcessTree: true);
        });
        await child.WaitForExitAsync();
        return child.ExitCode;
    }

    private const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
