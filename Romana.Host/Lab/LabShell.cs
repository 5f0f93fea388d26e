using System.Diagnostics;

namespace Romana.Host.Lab;

/// <summary>A step of the lab that failed; its message names what did not come up.</summary>
public sealed class LabException(string message) : Exception(message);

/// <summary>
/// The programs the lab runs to build and remove its namespaces (iproute2's ip, nft, PostgreSQL's tools), each with its
/// output collected. Every command that changes the network names a lab namespace (<c>ip -n</c>, <c>ip netns exec</c>):
/// nothing is run against the host's own namespace.
/// </summary>
public static class LabShell
{
    public sealed record Outcome(int Exit, string Output, string Error)
    {
        public bool Ok => Exit == 0;
    }

    public static Outcome Run(string program, IEnumerable<string> arguments, string? input = null,
        IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        using var process = Process.Start(info) ?? throw new LabException($"cannot start {program}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (input is not null) process.StandardInput.Write(input);
        process.StandardInput.Close();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(60)))
        {
            process.Kill(true);
            throw new LabException(
                $"{program} {string.Join(' ', info.ArgumentList)}: no answer within {timeout ?? TimeSpan.FromSeconds(60)}");
        }
        process.WaitForExit();
        return new Outcome(process.ExitCode, output.Result, error.Result);
    }

    /// <summary>Runs a program; a failure throws, naming the command and what it said.</summary>
    public static string Must(string program, params string[] arguments) => MustWith(null, program, arguments);

    public static string MustWith(string? input, string program, params string[] arguments)
    {
        var outcome = Run(program, arguments, input);
        return outcome.Ok
            ? outcome.Output
            : throw new LabException($"{program} {string.Join(' ', arguments)}: {(outcome.Error + outcome.Output).Trim()}");
    }

    /// <summary><c>ip -n NETNS ARGS</c>.</summary>
    public static string Ip(string netns, params string[] arguments) => Must("ip", ["-n", netns, .. arguments]);

    /// <summary>A program inside a lab namespace (<c>ip netns exec</c>).</summary>
    public static string Exec(string netns, string program, params string[] arguments) =>
        Must("ip", ["netns", "exec", netns, program, .. arguments]);

    /// <summary>nft -f - inside a lab namespace: one atomic transaction.</summary>
    public static void Nft(string netns, string ruleset) => MustWith(ruleset, "ip", "netns", "exec", netns, "nft", "-f", "-");

    public static void Sysctl(string netns, string key, string value) => Exec(netns, "sysctl", "-q", "-w", $"{key}={value}");

    /// <summary>
    /// Starts a long-running program in a namespace, detached from the lab's process (its own session, output to
    /// <paramref name="log"/>), and returns its process id: `ip netns exec` and `dotnet` exec in place, so the id the shell
    /// wrote is the program's.
    /// </summary>
    public static int Spawn(string netns, IReadOnlyList<string> command, string log)
    {
        var pidFile = log + ".pid";
        File.Delete(pidFile);
        var quoted = string.Join(' ', new[] { "ip", "netns", "exec", netns }.Concat(command).Select(Quote));
        Must("setsid", "-f", "sh", "-c", $"echo $$ > {Quote(pidFile)}; exec {quoted} >> {Quote(log)} 2>&1 < /dev/null");
        for (var waited = 0; waited < 100; waited++)
        {
            if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid)) return pid;
            Thread.Sleep(20);
        }
        throw new LabException($"{string.Join(' ', command)} in {netns}: did not start");
    }

    public static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    public static bool IsAlive(int pid) => pid > 0 && Directory.Exists($"/proc/{pid}") && !IsZombie(pid);

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>The command that runs this romana again: the apphost, or dotnet with romana.dll.</summary>
    public static IReadOnlyList<string> Romana()
    {
        // `romana` itself (apphost or published), or `dotnet romana.dll`; a test host that loaded romana.dll runs it too.
        var host = Environment.ProcessPath ?? "dotnet";
        if (Path.GetFileNameWithoutExtension(host) == "romana") return [host];
        var dll = typeof(LabShell).Assembly.Location;
        if (dll.Length == 0) return [host];
        return [Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet", dll];
    }
}
