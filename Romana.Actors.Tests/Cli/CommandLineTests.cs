using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;

namespace Romana.Actors.Tests.Cli;

/// <summary>The romana executable as a user runs it: exit codes and one-line errors, never a stack trace.</summary>
public class CommandLineTests
{
    private static Task<(int Exit, string Output, string Error)> RomanaAsync(params string[] arguments) =>
        Processes.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), .. arguments], Paths.RepositoryRoot);

    [Fact]
    public async Task A_bad_option_value_exits_2_with_one_line_and_a_hint()
    {
        var (exit, _, error) = await RomanaAsync("ipam", "vectors", "--restart-every", "-1", "x");
        Assert.Equal(2, exit);
        Assert.Equal(["romana: --restart-every must be 0 or more", "romana: see 'romana ipam vectors --help'"], error.Trim().Split('\n'));
    }

    [Fact]
    public async Task A_missing_vector_path_exits_2_naming_it()
    {
        var (exit, _, error) = await RomanaAsync("ipam", "vectors", "/nonexistent/vectors");
        Assert.Equal(2, exit);
        Assert.Equal("romana: /nonexistent/vectors: no such file or folder", error.Trim());
    }

    [Fact]
    public async Task A_malformed_vector_exits_1_with_an_error_line_and_no_stack_trace()
    {
        using var folder = new TempFolder();
        var file = folder.Write("bad.json", """{ "name": "bad", "topology": { "podCidr": 7 } }""");
        var (exit, output, error) = await RomanaAsync("ipam", "vectors", file);
        Assert.Equal(1, exit);
        Assert.Contains($"ERROR {file}: $.topology.podCidr = 7: expected a string", output);
        Assert.DoesNotContain("   at ", output + error);
    }

    [Fact]
    public async Task A_malformed_scenario_exits_2_with_one_line_naming_the_path_and_the_value()
    {
        using var folder = new TempFolder();
        var cluster = File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "small-single-zone.json"));
        var file = folder.Write("bad.json", $$"""
            {"cluster": {{cluster}}, "events": [{"at": "5s", "fail": "subnet-0a1-node-01", "pods": 3}], "until": "30s"}
            """);
        var (exit, output, error) = await RomanaAsync("simulate", "--scenario", file);
        Assert.Equal(2, exit);
        Assert.StartsWith($"romana: {file}: $.events[0].pods = 3: unknown field (known: at, fail, ", error.Trim());
        Assert.Single(error.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", output + error);
    }

    [Fact]
    public async Task Help_explains_every_command()
    {
        foreach (var command in new[] { new[] { "--help" }, ["ipam", "--help"], ["ipam", "vectors", "--help"], ["ipam", "demo", "--help"],
                     ["bench", "ipam", "--help"], ["simulate", "--help"], ["audit", "--help"], ["audit", "replay", "--help"],
                     ["bench", "audit", "--help"], ["daemon", "--help"] })
        {
            var (exit, output, _) = await RomanaAsync(command);
            Assert.Equal(0, exit);
            Assert.Contains("Usage:", output);
        }
    }

    [Fact]
    public async Task An_audit_of_a_missing_journal_exits_2_naming_the_file_and_creates_nothing()
    {
        using var folder = new TempFolder();
        var journal = Path.Combine(folder.Path, "none.db");
        var (exit, _, error) = await RomanaAsync("audit", "routes", "--journal", journal);
        Assert.Equal(2, exit);
        Assert.Equal($"romana: {journal}: no such journal file", error.Trim());
        Assert.False(File.Exists(journal));
    }

    [Fact]
    public async Task An_audit_time_that_is_neither_iso_nor_relative_exits_2_naming_the_option()
    {
        var (exit, _, error) = await RomanaAsync("audit", "replay", "--until", "yesterday", "--journal", "none.db");
        Assert.Equal(2, exit);
        Assert.StartsWith("romana: --until: 'yesterday' is neither an ISO 8601 time", error.Trim());
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public async Task A_daemon_whose_node_ip_is_not_an_address_exits_2_naming_the_field_and_starts_nothing()
    {
        using var folder = new TempFolder();
        var config = folder.Write("romana.conf", File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "single-node.conf"))
            .Replace("/var/lib/romana/romana.db", Path.Combine(folder.Path, "romana.db"))
            .Replace("/run/romana/cni.sock", Path.Combine(folder.Path, "cni.sock")) + "\nromana.node.ip = \"10.0.0.300\"\n");
        var (exit, _, error) = await RomanaAsync("daemon", "--config", config);
        Assert.Equal(2, exit);
        Assert.Equal($"romana: {config}: romana.node.ip: '10.0.0.300' is not an IPv4 address", error.Trim());
        Assert.False(File.Exists(Path.Combine(folder.Path, "romana.db")));
        Assert.False(File.Exists(Path.Combine(folder.Path, "cni.sock")));
    }
}

public class BatchRuntimeTests
{
    [SkippableTheory]
    [InlineData(true, "audit", "replay", "--journal", "x.db")]
    [InlineData(true, "bench", "audit", "--runs", "1")]
    [InlineData(true, "plan", "--input", "cluster.json")]
    [InlineData(false, "audit", "replay", "--help")]
    [InlineData(false, "plan", "--help")]
    [InlineData(false, "plan", "generate", "--zones", "2")]
    [InlineData(false, "bench", "ipam")]
    [InlineData(false, "daemon", "--config", "x.conf")]
    [InlineData(false, "simulate")]
    public void Only_the_batch_commands_run_again_with_their_runtime_settings(bool relaunched, params string[] args)
    {
        string[] settings = ["DOTNET_gcServer", "DOTNET_GCHeapCount", "DOTNET_GCgen0size", "DOTNET_TieredPGO"];
        Skip.If(settings.Any(s => Environment.GetEnvironmentVariable(s) is not null),
            "a runtime setting of the batch commands is set here: the user's setting wins and nothing is relaunched");
        Assert.Equal(relaunched, Romana.Host.Cli.BatchRuntime.ShouldRelaunch(args));
    }
}
