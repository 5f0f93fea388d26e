using System.Diagnostics;
using System.Text.Json.Nodes;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Cli;

namespace Romana.Actors.Tests.Cli;

/// <summary>
/// A command interrupted by a SIGTERM (a service manager stopping it) or a Ctrl-C (SIGINT) ends with one line and 128 plus
/// the signal's number, and leaves no temporary folder behind: the romana executable is
/// started as a user would, on work that takes minutes, and interrupted once it is well into it.
/// </summary>
public class InterruptionTests
{
    /// <summary>20 nodes of 50,000 pods each: a million durable allocations, valid and far longer than the test waits.</summary>
    private static JsonObject LargeCluster() => new()
    {
        ["podCidr"] = "100.64.0.0/10",
        ["blockPrefixLength"] = 16,
        ["zones"] = new JsonArray(new JsonObject
        {
            ["name"] = "z",
            ["subnets"] = new JsonArray(new JsonObject { ["id"] = "s", ["cidr"] = "10.0.0.0/24", ["routeTable"] = "rtb" }),
        }),
        ["nodes"] = new JsonArray([.. Enumerable.Range(0, 20).Select(i => (JsonNode)new JsonObject
        {
            ["name"] = $"node-{i:00}", ["subnet"] = "s", ["ip"] = $"10.0.0.{10 + i}", ["eni"] = $"eni-{i}", ["pods"] = 50_000,
        })]),
    };

    /// <summary>
    /// `romana plan` runs again as a child process with its runtime settings (BatchRuntime): a SIGTERM sent to the process
    /// the user started is passed on to the child; a Ctrl-C reaches both, as a terminal sends SIGINT to its whole
    /// foreground process group.
    /// </summary>
    [Theory]
    [InlineData("TERM", 143)]
    [InlineData("INT", 130)]
    public async Task Plan_stops_with_one_line_and_leaves_nothing_behind_when_interrupted(string signal, int exitCode)
    {
        using var folder = new TempFolder();
        var input = folder.Write("large.json", LargeCluster().ToJsonString());
        // Its journal is in memory: there is no file to wait for, so wait for the CPU its work takes.
        var temporary = await InterruptAsync(folder, signal, exitCode, process => CpuTime(process.Id) > TimeSpan.FromSeconds(3),
            "plan", "--input", input);
        Assert.Empty(Directory.EnumerateFileSystemEntries(temporary));
    }

    /// <summary>The CPU a process and its descendants have used so far (user and system), from /proc.</summary>
    private static TimeSpan CpuTime(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return TimeSpan.Zero; // gone: the caller sees it has exited
        }
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command's name, in clock ticks (100 a second).
        var own = TimeSpan.FromSeconds((long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0);
        return Children(pid).Aggregate(own, (sum, child) => sum + CpuTime(child));
    }

    private static IEnumerable<int> Children(int pid)
    {
        try
        {
            return [.. Directory.EnumerateDirectories($"/proc/{pid}/task")
                .SelectMany(task => File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Select(int.Parse)];
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>A scenario's journal, when no --journal asks to keep it, is in memory: nothing is left to remove.</summary>
    [Fact]
    public async Task Simulate_stops_with_one_line_and_leaves_nothing_behind_when_terminated()
    {
        using var folder = new TempFolder();
        var cluster = LargeCluster();
        foreach (var node in cluster["nodes"]!.AsArray()) node!["pods"] = 2_000;
        var scenario = new JsonObject { ["cluster"] = cluster, ["events"] = new JsonArray(), ["until"] = "60m" };
        var input = folder.Write("long.json", scenario.ToJsonString());
        var temporary = await InterruptAsync(folder, "TERM", 143, process => CpuTime(process.Id) > TimeSpan.FromSeconds(3),
            "simulate", "--scenario", input, "--json");
        Assert.Empty(Directory.EnumerateFileSystemEntries(temporary));
        Assert.Equal(["long.json", "tmp"], Directory.EnumerateFileSystemEntries(folder.Path).Select(Path.GetFileName).Order());
    }

    /// <summary>
    /// Starts romana with its temporary folders under <paramref name="folder"/>, waits until it is <paramref name="working"/>,
    /// sends the signal, and checks the exit code, the one line on standard error, and that no temporary folder is left;
    /// returns the folder it was given for its temporary files.
    /// </summary>
    private static async Task<string> InterruptAsync(TempFolder folder, string signal, int exitCode, Func<Process, bool> working,
        params string[] arguments)
    {
        var temporary = Directory.CreateDirectory(Path.Combine(folder.Path, "tmp")).FullName;
        var start = Processes.Describe("dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), .. arguments],
            new Dictionary<string, string> { ["TMPDIR"] = temporary + "/" });
        start.WorkingDirectory = folder.Path;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            var waited = Stopwatch.StartNew();
            while (!working(process))
            {
                if (process.HasExited) Assert.Fail($"romana exited ({process.ExitCode}) before it was at work: {await error}");
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), "not at work within 60 s");
                await Task.Delay(100);
            }
            await Task.Delay(1500); // well into the work
            if (process.HasExited) Assert.Fail($"romana finished ({process.ExitCode}) before it was interrupted: {await output}");
            // A Ctrl-C reaches every process of the terminal's foreground group: romana and what it started.
            int[] receivers = signal == "INT" ? [process.Id, .. Children(process.Id)] : [process.Id];
            Assert.Equal(0, Processes.Run("kill", [$"-{signal}", .. receivers.Select(p => p.ToString())]).Exit);

            await Processes.EndsWithinGraceAsync(process);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        Assert.Equal(exitCode, process.ExitCode);
        Assert.Equal($"romana: interrupted by SIG{signal}", (await error).Trim());
        Assert.Empty(Directory.EnumerateFileSystemEntries(temporary, "romana-*"));
        return temporary;
    }
}
