using System.Diagnostics;
using System.Text.Json.Nodes;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;

namespace Romana.Actors.Tests.Cli;

/// <summary>
/// A command that keeps a journal in a temporary folder removes the folder on every way out, a SIGTERM (a service manager
/// stopping it) and a Ctrl-C (SIGINT) included: the romana executable is started as a user would, on work that takes
/// minutes, and interrupted once its journal exists.
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

    [Theory]
    [InlineData("TERM", 143)]
    [InlineData("INT", 130)]
    public async Task Plan_removes_its_temporary_journal_when_interrupted(string signal, int exitCode)
    {
        using var folder = new TempFolder();
        var input = folder.Write("large.json", LargeCluster().ToJsonString());
        await InterruptAsync(folder, signal, exitCode, "plan", "--input", input);
    }

    [Fact]
    public async Task Simulate_removes_its_temporary_journal_when_terminated()
    {
        using var folder = new TempFolder();
        var cluster = LargeCluster();
        foreach (var node in cluster["nodes"]!.AsArray()) node!["pods"] = 2_000;
        var scenario = new JsonObject { ["cluster"] = cluster, ["events"] = new JsonArray(), ["until"] = "60m" };
        var input = folder.Write("long.json", scenario.ToJsonString());
        await InterruptAsync(folder, "TERM", 143, "simulate", "--scenario", input, "--json");
    }

    /// <summary>
    /// Starts romana with its temporary folders under <paramref name="folder"/>, waits until its journal exists, sends the
    /// signal, and checks the exit code, the one line on standard error, and that no temporary folder is left.
    /// </summary>
    private static async Task InterruptAsync(TempFolder folder, string signal, int exitCode, params string[] arguments)
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
            while (!Directory.EnumerateFiles(temporary, "journal.db", SearchOption.AllDirectories).Any())
            {
                if (process.HasExited) Assert.Fail($"romana exited ({process.ExitCode}) before its journal existed: {await error}");
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), "no journal within 60 s");
                await Task.Delay(100);
            }
            await Task.Delay(1500); // well into the work
            if (process.HasExited) Assert.Fail($"romana finished ({process.ExitCode}) before it was interrupted: {await output}");
            Assert.Equal(0, Processes.Run("kill", [$"-{signal}", process.Id.ToString()]).Exit);

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        Assert.Equal(exitCode, process.ExitCode);
        Assert.Equal($"romana: interrupted by SIG{signal}", (await error).Trim());
        Assert.Empty(Directory.EnumerateFileSystemEntries(temporary, "romana-*"));
    }
}
