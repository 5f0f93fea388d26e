using System.CommandLine;
using System.Text.Json.Nodes;
using Romana.Actors.Topology;
using Romana.Host.Simulation;
using Spectre.Console;

namespace Romana.Host.Cli;

public static class SimulateCommand
{
    public static Command Create()
    {
        var scenario = new Option<string>("--scenario") { Description = "The scenario file (see hocon/examples/scenarios/*.json)", Required = true };
        var json = new Option<bool>("--json") { Description = "Print {timeline, failovers, final} as JSON" };
        var journal = new Option<string?>("--journal") { Description = "Keep the journal in this SQLite file (default: a temporary one)" };
        var command = new Command("simulate", """
            Runs a scenario on the production actors (IPAM, forwarder supervisors and probes, the VPC route manager) with an
            in-memory EC2 and simulated nodes, in virtual time: minutes of cluster life in seconds. After every event, once
            the routes have converged, the invariants of DESIGN.md section 2 are checked on what EC2 holds; a violation
            fails the run (exit 1) and prints the first violating pair. A malformed scenario exits 2 naming the event.
            """) { scenario, json, journal };
        command.SetAction((parse, _) => CommandLineGuard.RunAsync(() => RunAsync(parse.GetValue(scenario)!, parse.GetValue(json), parse.GetValue(journal))));
        return command;
    }

    private static async Task<int> RunAsync(string path, bool json, string? journal)
    {
        Scenario scenario;
        try
        {
            scenario = ScenarioReader.Read(path);
            TopologyCarver.Carve(scenario.Cluster.Topology);
        }
        catch (Exception e) when (e is ScenarioException or TopologyException)
        {
            Console.Error.WriteLine($"romana: {e.Message}");
            return CommandLineGuard.BadInput;
        }
        SimulationResult result;
        try
        {
            result = await SimulationRun.RunAsync(scenario, new SimulationOptions(journal), json ? null : m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"));
        }
        catch (Exception e) when (e is ScenarioException or Routing.ClusterFileException)
        {
            Console.Error.WriteLine($"romana: {e.Message}");
            return CommandLineGuard.BadInput;
        }
        if (json) Console.WriteLine(ToJson(result).ToJsonString(JsonOptions.Indented));
        else Print(result);
        if (result.Violation is null) return CommandLineGuard.Ok;
        Console.Error.WriteLine($"romana: invariant violated at {result.ViolationAt:0.###}s: {result.Violation}");
        return CommandLineGuard.Failed;
    }

    public static JsonObject ToJson(SimulationResult result) => new()
    {
        ["timeline"] = new JsonArray([.. result.Timeline.Select(e =>
        {
            var entry = new JsonObject { ["at"] = e.At, ["event"] = e.Event };
            foreach (var (key, value) in e.Details) entry[key] = value;
            return (JsonNode)entry;
        })]),
        ["failovers"] = new JsonArray([.. result.Failovers.Select(f => (JsonNode)new JsonObject
        {
            ["node"] = f.Node,
            ["failedAt"] = f.FailedAt,
            ["detectedAt"] = f.DetectedAt,
            ["routesRepairedAt"] = f.RoutesRepairedAt,
        })]),
        ["final"] = result.Final.DeepClone(),
    };

    /// <summary>One line a timeline entry, short enough for a terminal.</summary>
    private static string Describe(TimelineEntry e)
    {
        string D(string key) => e.Details.GetValueOrDefault(key, "");
        return e.Event switch
        {
            "fail" or "recover" or "removeNode" => $"{e.Event} {D("node")}",
            "addNode" => $"addNode {D("node")} to {D("subnet")} with {D("pods")} pods",
            "forwarderFailed" or "forwarderRecovered" => $"{e.Event} {D("node")}: {D("reason")}",
            "routeCreated" => $"{D("table")} + {D("cidr")} -> {D("target")} ({D("reason")})",
            "routeReplaced" => $"{D("table")} ~ {D("cidr")} {D("from")} -> {D("to")} ({D("reason")})",
            "routeDeleted" => $"{D("table")} - {D("cidr")} -> {D("target")} ({D("reason")})",
            "noHealthyForwarder" => $"NO HEALTHY FORWARDER in {D("subnet")}: routes kept",
            _ => $"{e.Event} {string.Join(' ', e.Details.Select(d => $"{d.Key}={d.Value}"))}",
        };
    }

    private static void Print(SimulationResult result)
    {
        var shown = result.Timeline.Where(e => !(e.Event == "routeCreated" && e.At < 1) && e.Event is not ("invariantsHeld" or "invariantsChecked")).ToList();
        foreach (var e in shown) Console.WriteLine($"{e.At,8:0.000}s  {Describe(e)}");
        var initial = result.Timeline.Count(e => e.Event == "routeCreated" && e.At < 1);
        if (initial > 0) AnsiConsole.MarkupLine($"[grey](and {initial} routes created in the first second)[/]");
        if (result.Failovers.Length > 0)
        {
            var table = new Table().AddColumns("node", "failed at", "detected at", "routes repaired at", "failure to repair");
            foreach (var f in result.Failovers)
                table.AddRow(f.Node, $"{f.FailedAt:0.000}s", f.DetectedAt is { } d ? $"{d:0.000}s" : "-", f.RoutesRepairedAt is { } r ? $"{r:0.000}s" : "-",
                    f.RoutesRepairedAt is { } repaired ? $"{(repaired - f.FailedAt) * 1000:0} ms" : "-");
            AnsiConsole.Write(table);
        }
        var final = result.Final;
        AnsiConsole.MarkupLine(Markup.Escape($"{result.Simulated.TotalSeconds:0.#} s simulated in {result.Elapsed.TotalSeconds:0.0} s; " +
            $"{result.InvariantChecks} invariant checks, {(result.Violation is null ? "all held" : "one failed")}; " +
            $"final: {final["routeTables"]!.AsArray().Sum(t => t!["routes"]!.AsArray().Count)} routes, {final["forwardedFraction"]!.GetValue<double>():P1} of pods forwarded; journal: {result.Journal}"));
    }
}
