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
        foreach (var arg in arguments) start.ArgumentList.Add(arg);
        if (environment is not null) foreach (var (key, value) in environment) start.Environment[key] = value;
        return start;
    }
}
