using System.Diagnostics;

namespace Romana.Actors.Tests.Support;

/// <summary>Programs the tests run as a user or a runtime would: arguments, environment and stdin in, exit code and output back.</summary>
public static class Processes
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(120);

    /// <summary>Runs a program to its end; one that outlives the timeout (2 minutes unless given) is killed and reported.</summary>
    public static (int Exit, string Output, string Error) Run(string program, IEnumerable<string> arguments, string? input = null,
        IDictionary<string, string>? environment = null, string? workingDirectory = null, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var start = Describe(program, arguments, environment);
        start.RedirectStandardInput = true;
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        using var process = Process.Start(start)!;
        process.StandardInput.Write(input ?? "");
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(true);
            throw new TimeoutException(
                $"{program} {string.Join(' ', start.ArgumentList)} did not finish within {limit.TotalSeconds:0} s");
        }
        return (process.ExitCode, output.Result, error.Result);
    }

    public static Task<(int Exit, string Output, string Error)> RunAsync(string program, IEnumerable<string> arguments,
        string? workingDirectory = null) =>
        Task.Run(() => Run(program, arguments, workingDirectory: workingDirectory));

    /// <summary>A start with output and error redirected, for <see cref="Run"/> or for a program left running.</summary>
    public static ProcessStartInfo Describe(string program, IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // An unexpected error of romana's shows its stack in a test's failure (no expected error is "unexpected").
        start.Environment["ROMANA_TRACE"] = "1";
        foreach (var arg in arguments) start.ArgumentList.Add(arg);
        if (environment is not null) foreach (var (key, value) in environment) start.Environment[key] = value;
        return start;
    }

    /// <summary>
    /// Waits for an interrupted romana to end by itself, within its grace (<see cref="Romana.Host.Cli.Interruption.Grace"/>):
    /// a command that needs it all is forced out, and had not stopped by itself. What it is doing then is what a failure
    /// needs to show, so it is looked at just before the grace runs out.
    /// </summary>
    public static async Task EndsWithinGraceAsync(Process process)
    {
        var grace = Romana.Host.Cli.Interruption.Grace - TimeSpan.FromSeconds(1);
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"not ended {grace.TotalSeconds:0} s after the signal: {Inspect(process.Id)}; the tests' process: "
                + $"{Inspect(Environment.ProcessId)}{Stacks(process.Id)}");
        }
    }

    /// <summary>
    /// The managed threads' stacks of a .NET process and of its .NET children, from dotnet-stack where it is installed (a
    /// global tool); empty otherwise. For the failure message of a test whose process hangs.
    /// </summary>
    public static string Stacks(int pid)
    {
        var tool = new[] { Path.Combine(Environment.GetEnvironmentVariable("HOME") ?? "/root", ".dotnet", "tools", "dotnet-stack") }
            .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(dir => Path.Combine(dir, "dotnet-stack")))
            .FirstOrDefault(File.Exists);
        if (tool is null) return "";
        var pids = new List<int> { pid };
        try
        {
            for (var i = 0; i < pids.Count; i++)
                pids.AddRange(Directory.EnumerateDirectories($"/proc/{pids[i]}/task")
                    .SelectMany(task => File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    .Select(int.Parse));
        }
        catch (IOException)
        {
            // one of them exited meanwhile: the stacks of those found
        }
        return string.Concat(pids.Select(p =>
        {
            try
            {
                var (_, output, error) = Run(tool, ["report", "-p", p.ToString()], timeout: TimeSpan.FromSeconds(30));
                return $"\n--- stacks of {p}:\n{output}{error}";
            }
            catch (Exception e) when (e is TimeoutException or System.ComponentModel.Win32Exception or IOException)
            {
                return $"\n--- stacks of {p}: {e.Message}";
            }
        }));
    }

    /// <summary>
    /// What a process that did not exit was doing, for a test's failure message: its state, its signal masks (blocked,
    /// ignored, caught) and its threads' states and wait channels, and the same for each of its children.
    /// </summary>
    public static string Inspect(int pid)
    {
        try
        {
            var status = File.ReadAllLines($"/proc/{pid}/status")
                .Where(line => line.StartsWith("State:") || line.StartsWith("Sig") || line.StartsWith("ShdPnd"))
                .Select(line => line.Replace('\t', ' '));
            var threads = Directory.EnumerateDirectories($"/proc/{pid}/task").Select(task =>
            {
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                var name = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
                var state = stat[stat.LastIndexOf(')') + 2];
                var blocked = File.ReadAllLines(Path.Combine(task, "status")).First(l => l.StartsWith("SigBlk:"))[7..].Trim();
                return $"{name}:{state}:{File.ReadAllText(Path.Combine(task, "wchan"))}:{blocked}";
            });
            var children = Directory.EnumerateDirectories($"/proc/{pid}/task")
                .SelectMany(task => File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries));
            return $"[{pid} {string.Join(' ', status)} threads {string.Join(", ", threads)}]"
                + string.Concat(children.Select(child => " child " + Inspect(int.Parse(child))));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return $"[{pid} gone]";
        }
    }
}
