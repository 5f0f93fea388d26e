using System.CommandLine;
using Romana.Actors.Addressing;
using Romana.Actors.Topology;
using Romana.Host.Documents;
using Romana.Host.Persistence;
using Romana.Host.Simulation;
using Spectre.Console;

namespace Romana.Host.Cli;

public static class SimulateCommand
{
    public static Command Create()
    {
        var scenario = new Option<string?>("--scenario")
        {
            Description = "A scenario file (see hocon/examples/scenarios/*.json); without it, the built-in 300-node run"
        };
        var json = new Option<bool>("--json") { Description = "Print {timeline, failovers, final} as JSON" };
        var journal = new Option<string?>("--journal")
        {
            Description = "Keep the journal in this SQLite file (built-in run: romana-simulation.db; with --scenario: kept in memory only)"
        };
        var report = new Option<string?>("--report") { Description = "Write the HTML report here (built-in run: romana-simulation.html)" };
        var command = new Command("simulate", """
            Runs a cluster on the production actors (IPAM, forwarder supervisors and probes, the VPC route manager) with an
            in-memory EC2 and simulated nodes, in virtual time: minutes of cluster life in seconds. Without --scenario it
            runs the built-in one: 3 zones, 6 subnets, 300 nodes, about 9,600 pods, route limit 50, two forwarders failing
            and one recovering; it keeps its journal for `romana audit` and writes an HTML report. EC2 limits mutating calls
            as the real one does (a bucket of 50, refilled 5 per second). Whenever what EC2 holds or the truth changes, the
            invariants of DESIGN.md section 2 are checked on what EC2 holds, from a node and from a non-node instance of
            every subnet: a route that should never exist fails the run (exit 1, naming the pair); a pod not yet reachable
            means "converging", and the time each convergence took is printed, as is the first complete one (--json:
            convergedAt). A run that ends not converged exits 1, naming a pair still unreachable. A failover counts as
            repaired once EC2 holds no route to the dead node and its subnet is reachable. A malformed scenario exits 2
            naming the event.
            """) { scenario, json, journal, report };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(cancel => parse.GetValue(scenario) is { } path
            ? RunFileAsync(path, parse.GetValue(json), parse.GetValue(journal), parse.GetValue(report), cancel)
            : RunBuiltInAsync(parse.GetValue(json), parse.GetValue(journal) ?? "romana-simulation.db",
                parse.GetValue(report) ?? "romana-simulation.html", cancel)));
        return command;
    }

    private static async Task<int> RunFileAsync(string path, bool json, string? journal, string? report, CancellationToken cancel)
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
        using var journalLock = journal is null ? null : TakeOverJournal(journal);
        SimulationResult result;
        try
        {
            result = await SimulationRun.RunAsync(scenario, new SimulationOptions(journal, Cancel: cancel),
                json ? null : m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"));
        }
        catch (Exception e) when (e is ScenarioException or Routing.ClusterFileException)
        {
            Console.Error.WriteLine($"romana: {e.Message}");
            return CommandLineGuard.BadInput;
        }
        return Finish(scenario, result, json, report);
    }

    /// <summary>The main job on the embedded default: the built-in scenario, with progress, a named journal and a report.</summary>
    private static async Task<int> RunBuiltInAsync(bool json, string journal, string report, CancellationToken cancel)
    {
        using var journalLock = TakeOverJournal(journal);
        Scenario? scenario = null;
        SimulationResult? result = null;
        if (json)
        {
            scenario = await BuiltInScenario.DefaultAsync(cancel);
            result = await SimulationRun.RunAsync(scenario, new SimulationOptions(journal, Cancel: cancel));
        }
        else
        {
            await AnsiConsole.Progress().AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async progress =>
                {
                    var planning = progress.AddTask("plan the cluster to pick forwarders to fail").IsIndeterminate();
                    scenario = await BuiltInScenario.DefaultAsync(cancel);
                    planning.Value = planning.MaxValue;
                    planning.StopTask();
                    var simulating = progress.AddTask($"simulate {scenario.Until.TotalSeconds:0} s", maxValue: scenario.Until.TotalSeconds);
                    result = await SimulationRun.RunAsync(scenario,
                        new SimulationOptions(journal, OnTime: t => simulating.Value = t.TotalSeconds, Cancel: cancel));
                    simulating.Value = simulating.MaxValue;
                });
        }
        var exit = Finish(scenario!, result!, json, report);
        if (!json) PrintAuditHints(result!, journal);
        return exit;
    }

    /// <summary>Audit commands to try on this run's journal, with a node, an address and a time taken from the run.</summary>
    private static void PrintAuditHints(SimulationResult result, string journal)
    {
        var run = $"dotnet run --project Romana.Host -- audit";
        var file = journal.Contains(' ') ? $"\"{journal}\"" : journal;
        var lines = new List<string> { $"{run} routes --journal {file}" };
        if (result.Failovers.FirstOrDefault() is { } failover)
        {
            lines.Add($"{run} node {failover.Node} --journal {file}");
            if (result.Final.Nodes.FirstOrDefault(n => n.Name == failover.Node) is { Blocks: [var block, ..] })
                lines.Add($"{run} address {new Ipv4(block.Network.Value + 1)} --journal {file}");
            var after = result.Start.AddSeconds((failover.RoutesRepairedAt ?? failover.FailedAt) + 1);
            lines.Add($"{run} replay --until {after.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ} --journal {file}" +
                $"   (just after the first failover)");
        }
        // Plain lines, never wrapped, so that they can be copied.
        Console.WriteLine($"Question the journal (this run's events are stamped from {result.Start.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}):");
        foreach (var line in lines) Console.WriteLine("  " + line);
    }

    private static int Finish(Scenario scenario, SimulationResult result, bool json, string? report)
    {
        if (json) Console.WriteLine(SimulationDocument.Of(result).ToJson());
        else Print(result);
        if (report is not null)
        {
            File.WriteAllText(report, HtmlReport.Render(scenario, result));
            if (!json) AnsiConsole.MarkupLine(Markup.Escape($"Report: {Path.GetFullPath(report)}"));
        }
        if (result.Violation is not null)
        {
            Console.Error.WriteLine($"romana: invariant violated at {result.ViolationAt:0.###}s: {result.Violation}");
            return CommandLineGuard.Failed;
        }
        if (result.NotConverged is not null)
        {
            Console.Error.WriteLine($"romana: not converged at the end of the run (unreachable since {result.NotConvergedSince:0.###}s): " +
                $"{result.NotConverged}");
            return CommandLineGuard.Failed;
        }
        return CommandLineGuard.Ok;
    }

    /// <summary>
    /// A run starts from an empty journal: the file, its snapshot file and its audit store are replaced, never while another process (a
    /// daemon, another run) has it: its lock is taken first and held for the run.
    /// </summary>
    private static Persistence.JournalLock? TakeOverJournal(string journal)
    {
        var settings = Persistence.JournalSettings.Sqlite(journal);
        var journalLock = Persistence.JournalLock.Acquire(settings);
        // The audit store goes with them: checkpoints of the old journal would be taken for the new one's.
        foreach (var file in new[] { settings.SqlitePath, settings.SqliteSnapshotPath, settings.SqliteAuditPath }
            .SelectMany(f => new[] { f, f + "-wal", f + "-shm" }))
            File.Delete(file);
        return journalLock;
    }

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
            "converged" => $"converged: every pod reachable from every source, {D("after")} after it was not",
            "routesRepaired" => $"routes repaired: no route to {D("node")} in EC2, its subnet reachable, {D("after")} after the failure",
            "noHealthyForwarder" => $"NO HEALTHY FORWARDER in {D("subnet")}: routes kept",
            _ => $"{e.Event} {string.Join(' ', e.Details.Select(d => $"{d.Key}={d.Value}"))}",
        };
    }

    private static void Print(SimulationResult result)
    {
        var shown = result.Timeline.Where(e => !(e.Event == "routeCreated" && e.At < 1)).ToList();
        foreach (var e in shown) Console.WriteLine($"{e.At,8:0.000}s  {Describe(e)}");
        var initial = result.Timeline.Count(e => e.Event == "routeCreated" && e.At < 1);
        if (initial > 0) AnsiConsole.MarkupLine($"[grey](and {initial} routes created in the first second)[/]");
        if (result.Failovers.Length > 0)
        {
            var table = new Table().AddColumns("node", "failed at", "detected at", "routes repaired at", "failure to repair");
            foreach (var f in result.Failovers)
                table.AddRow(f.Node, $"{f.FailedAt:0.000}s", f.DetectedAt is { } d ? $"{d:0.000}s" : "-",
                    f.RoutesRepairedAt is { } r ? $"{r:0.000}s" : "-",
                    f.RoutesRepairedAt is { } repaired ? $"{(repaired - f.FailedAt) * 1000:0} ms" : "-");
            AnsiConsole.Write(table);
        }
        var final = result.Final;
        AnsiConsole.MarkupLine(Markup.Escape(result.ConvergedAt is { } converged
            ? $"First complete convergence (every pod reachable from every source, node or not) at {converged:0.###}s"
            : "Never completely converged within the run"));
        AnsiConsole.MarkupLine(Markup.Escape($"{result.Simulated.TotalSeconds:0.#} s simulated in {result.Elapsed.TotalSeconds:0.0} s; " +
            $"{result.InvariantChecks} invariant checks, {(result.Violation is null ? "all held" : "one failed")}; " +
            $"final: {final.RouteTables.Sum(t => t.Routes.Count)} routes, {final.ForwardedFraction:P1} of pods forwarded; " +
            $"journal: {result.Journal}"));
    }
}
