using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Romana.Actors.Policy;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;

namespace Romana.Actors.Tests.Cli;

/// <summary>
/// `romana policy check` as a user runs it, on the shared truth tables: the pure evaluator, and real packets between pod
/// namespaces through Romana's nftables table on a node namespace. A copy of a case with its expectations flipped must
/// fail with the exact line in both modes (so the packets, not the file, decide), and a dataplane run leaves no
/// namespace and no table behind, also when interrupted.
/// </summary>
public class PolicyCheckCommandTests
{
    private const string Prefix = "romana-check-";

    private static Task<(int Exit, string Output, string Error)> RomanaAsync(params string[] arguments) =>
        Processes.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), .. arguments], Paths.RepositoryRoot);

    private static string[] Lines(string text) => text.Trim().Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The namespaces of any check run that exist now.</summary>
    private static HashSet<string> CheckNamespaces() =>
        [.. Lines(Processes.Run("ip", ["netns", "list"]).Output).Select(l => l.Split(' ')[0]).Where(n => n.StartsWith(Prefix))];

    private static string HostTables() => Processes.Run("nft", ["list", "tables"]).Output;

    /// <summary>
    /// port-restricted with two expectations flipped: y/a -> x/a on 81 is allowed but now expected denied, and on 80 it is
    /// denied but now expected allowed.
    /// </summary>
    private static string Flipped(TempFolder folder)
    {
        var @case = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.NetpolCases, "port-restricted.json")))!;
        @case["name"] = "port-restricted-flipped";
        @case["probes"]![0]!["deny"]!.AsArray().Add(new JsonArray("y/a", "x/a"));
        @case["probes"]![1]!["allow"]!.AsArray().Add(new JsonArray("y/a", "x/a"));
        return folder.Write("port-restricted-flipped.json", @case.ToJsonString());
    }

    private const string FlippedLine = "FAIL port-restricted-flipped: probe 0 (81/TCP): y/a -> x/a: expected deny, got allow; "
        + "probe 1 (80/TCP): y/a -> x/a: expected allow, got deny";

    private static string[] Expected() =>
        [.. PolicyCase.Files([Paths.NetpolCases]).Select(f => $"PASS {PolicyCase.Load(f).Name}"), "12 passed, 0 failed"];

    [Fact]
    public async Task Help_explains_both_modes_that_the_dataplane_needs_root_and_what_it_creates_and_removes()
    {
        var (exit, output, _) = await RomanaAsync("policy", "check", "--help");
        Assert.Equal(0, exit);
        var help = string.Join(' ', output.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries));
        foreach (var phrase in new[]
                 {
                     "Without --dataplane, the pure evaluator", "With --dataplane (root)", "romana-check-<id>-<case>-node",
                     "table inet romana_policy", "every namespace and table the run made is removed at the end",
                     "also after a failure or Ctrl-C", "2 on a malformed case file", "--json", "--timeout-ms",
                 })
            Assert.Contains(phrase, help);
    }

    [Fact]
    public async Task The_evaluator_passes_every_shared_case_one_line_each_then_the_summary()
    {
        var (exit, output, error) = await RomanaAsync("policy", "check", Paths.NetpolCases);
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        Assert.Equal(Expected(), Lines(output));
    }

    [SkippableFact]
    public async Task Real_packets_pass_every_shared_case_and_leave_no_namespace_or_table()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        var before = CheckNamespaces();
        var tables = HostTables();
        var (exit, output, error) = await RomanaAsync("policy", "check", "--dataplane", Paths.NetpolCases);
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        Assert.Equal(Expected(), Lines(output));
        Assert.Empty(CheckNamespaces().Except(before));
        Assert.Equal(tables, HostTables());
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_flipped_expectation_fails_with_the_exact_line_in_both_modes(bool dataplane)
    {
        Skip.If(dataplane && NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var folder = new TempFolder();
        var file = Flipped(folder);
        var (exit, output, _) = await RomanaAsync(["policy", "check", .. dataplane ? ["--dataplane"] : Array.Empty<string>(), file]);
        Assert.Equal(1, exit);
        Assert.Equal([FlippedLine, "0 passed, 1 failed"], Lines(output));
    }

    [SkippableFact]
    public async Task The_json_of_a_dataplane_run_lists_mismatches_and_drops_per_pod_and_names_namespaces_gone_after_it()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var folder = new TempFolder();
        var file = Flipped(folder);
        var (exit, output, _) = await RomanaAsync("policy", "check", "--dataplane", "--json", file);
        Assert.Equal(1, exit);
        var report = JsonNode.Parse(output)!;
        Assert.Equal("dataplane", report["mode"]!.GetValue<string>());
        Assert.Equal(1, report["failed"]!.GetValue<int>());
        var mismatches = report["cases"]![0]!["mismatches"]!.AsArray()
            .Select(m => $"{m!["probe"]} {m["port"]}/{m["protocol"]} {m["from"]}->{m["to"]} {m["expected"]}/{m["got"]}");
        Assert.Equal(["0 81/TCP y/a->x/a deny/allow", "1 80/TCP y/a->x/a allow/deny"], mismatches);
        // port-restricted selects x/a alone, for ingress: the denied probes were dropped and counted there, and nowhere else.
        var drops = report["cases"]![0]!["drops"]!.AsArray()
            .Where(d => d!["packets"]!.GetValue<long>() > 0).Select(d => $"{d!["pod"]} {d["direction"]}");
        Assert.Equal(["x/a Ingress"], drops);
        var prefix = report["namespacePrefix"]!.GetValue<string>();
        Assert.StartsWith(Prefix, prefix);
        Assert.DoesNotContain(CheckNamespaces(), n => n.StartsWith(prefix + "-"));
    }

    /// <summary>
    /// An SCTP probe: the evaluator answers it; the dataplane sends it where this kernel has SCTP and otherwise skips it,
    /// saying why, which the test finds out the same way (a socket call), never assumes.
    /// </summary>
    [SkippableFact]
    public async Task An_sctp_probe_is_answered_by_the_evaluator_and_sent_or_skipped_with_the_reason_by_the_dataplane()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        using var folder = new TempFolder();
        var @case = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.NetpolCases, "sctp-rule-does-not-open-tcp.json")))!;
        @case["name"] = "sctp-probed";
        // The policy opens SCTP 81 into x: every pair is allowed.
        @case["probes"]!.AsArray().Add(new JsonObject { ["port"] = 81, ["protocol"] = "SCTP" });
        var file = folder.Write("sctp.json", @case.ToJsonString());

        var evaluated = await RomanaAsync("policy", "check", file);
        Assert.Equal((0, "PASS sctp-probed\n1 passed, 0 failed\n", ""), evaluated);

        var (exit, output, error) = await RomanaAsync("policy", "check", "--dataplane", file);
        Assert.Equal(0, exit);
        Assert.Equal(["PASS sctp-probed", "1 passed, 0 failed"], Lines(output));
        if (SctpAvailable()) Assert.Equal("", error);
        else
            Assert.Equal("romana: sctp-probed: probe 1 (81/SCTP) skipped: this kernel has no SCTP (socket(AF_INET, SOCK_STREAM, "
                + "IPPROTO_SCTP) failed: EPROTONOSUPPORT, Protocol not supported)", error.Trim());
    }

    private static bool SctpAvailable()
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, (ProtocolType)132);
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ProtocolNotSupported)
        {
            return false;
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_malformed_case_exits_2_with_one_line_naming_the_file_and_the_field_and_runs_nothing(bool dataplane)
    {
        using var folder = new TempFolder();
        var good = File.ReadAllText(Path.Combine(Paths.NetpolCases, "default-deny-all.json"));
        folder.Write("a-good.json", good);
        var bad = JsonNode.Parse(good)!;
        bad["probes"]![0]!["protocol"] = "ICMP";
        var file = folder.Write("b-bad.json", bad.ToJsonString());
        var (exit, output, error) = await RomanaAsync(["policy", "check", .. dataplane ? ["--dataplane"] : Array.Empty<string>(),
            folder.Path]);
        Assert.Equal(2, exit);
        Assert.Equal("", output);
        Assert.Equal($"romana: {file}: probes[0].protocol: 'ICMP' is not TCP, UDP or SCTP", error.Trim());
    }

    /// <summary>
    /// Ctrl-C while probes wait on dropped packets (a default-deny case with a 30 s probe timeout): the command ends with one
    /// line and 130, and the namespaces it had made are gone.
    /// </summary>
    [SkippableFact]
    public async Task Ctrl_c_during_a_dataplane_run_removes_every_namespace_it_made()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        var before = CheckNamespaces();
        var start = Processes.Describe("dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), "policy", "check",
            "--dataplane", "--timeout-ms", "30000", Path.Combine(Paths.NetpolCases, "default-deny-all.json")]);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        HashSet<string> made = [];
        try
        {
            var waited = Stopwatch.StartNew();
            // The pods' namespaces come after the node's: once the last pod's is there, the probes are not far behind.
            while (made.Count < 4)
            {
                if (process.HasExited) Assert.Fail($"romana exited ({process.ExitCode}) before it made its namespaces: {await error}");
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), "no namespaces within 60 s");
                await Task.Delay(50);
                made.UnionWith(CheckNamespaces().Except(before));
            }
            await Task.Delay(2000); // the probes are waiting on dropped packets
            Assert.False(process.HasExited, "finished before it was interrupted");
            Assert.Equal(0, Processes.Run("kill", ["-INT", process.Id.ToString()]).Exit);
            await Processes.EndsWithinGraceAsync(process);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        Assert.Equal(130, process.ExitCode);
        Assert.Equal("romana: interrupted by SIGINT", (await error).Trim());
        Assert.Equal("", await output);
        Assert.Empty(CheckNamespaces().Intersect(made));
    }
}
