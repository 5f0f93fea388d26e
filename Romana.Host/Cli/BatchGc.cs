using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Romana.Host.Cli;

/// <summary>
/// The audit commands read a whole journal in one pass and allocate a lot of short-lived objects, and the collector's
/// settings decide their speed: replaying 1,000,000 events took a median 12.6 s with the default collector and 8.7 s
/// with server GC on two heaps and a 256 MB gen0 budget (bench audit, 2 cores). A gen0 that large would keep a
/// long-running daemon at half a gigabyte, and GC settings are fixed when the runtime starts, so these commands run
/// themselves again in a child process with that configuration; the rest of romana keeps the default. A user's own
/// DOTNET_GCgen0size wins (then nothing is relaunched).
/// </summary>
public static class BatchGc
{
    private static readonly Dictionary<string, string> Settings = new()
    {
        ["DOTNET_gcServer"] = "1",
        ["DOTNET_GCHeapCount"] = "2",
        ["DOTNET_GCgen0size"] = "0x10000000",
    };

    public static bool ShouldRelaunch(string[] args) =>
        Environment.GetEnvironmentVariable("DOTNET_GCgen0size") is null
        && !args.Contains("--help") && !args.Contains("-h") && !args.Contains("-?")
        && (args is ["audit", ..] || args is ["bench", "audit", ..]);

    /// <summary>Runs this same command in a child with the batch settings, on the same terminal; its exit code is ours.</summary>
    public static async Task<int> RelaunchAsync(string[] args)
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown");
        var start = new ProcessStartInfo(host) { UseShellExecute = false };
        // Under `dotnet romana.dll` the host is dotnet and the application is the first argument it was given.
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") start.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var (key, value) in Settings) start.Environment[key] = value;
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
