using System.CommandLine;
using System.Text.Json;
using Romana.Host.Benchmarks;
using Romana.Host.Documents;
using Romana.Host.Simulation;
using Spectre.Console;

namespace Romana.Host.Cli;

public static class BenchCommands
{
    public static Command Create()
    {
        var bench = new Command("bench", "Benchmarks whose figures the README publishes.");
        bench.Subcommands.Add(Ipam());
        bench.Subcommands.Add(Routes());
        bench.Subcommands.Add(Failover());
        bench.Subcommands.Add(Scale());
        bench.Subcommands.Add(Audit());
        bench.Subcommands.Add(PolicyBench());
        bench.Subcommands.Add(PolicyPath());
        return bench;
    }

    private static Command Ipam()
    {
        var requesters = new Option<int>("--requesters")
        {
            Description = "Concurrent requesters allocating on one node",
            DefaultValueFactory = _ => 64
        };
        var allocations = new Option<int>("--allocations")
        {
            Description = "Durable allocations per throughput run",
            DefaultValueFactory = _ => 20_000
        };
        var live = new Option<int>("--live")
        {
            Description = "Addresses a node holds at most: past it, each allocation is followed by a release of the oldest (pod churn); " +
                "0 never releases",
            DefaultValueFactory = _ => 1_000
        };
        var recoveryEvents = new Option<int>("--recovery-events")
        {
            Description = "Events in the node journal whose recovery is timed",
            DefaultValueFactory = _ => 100_000
        };
        var runs = new Option<int>("--runs")
        {
            Description = "Runs of each measurement; the median is reported",
            DefaultValueFactory = _ => 3
        };
        var projections = new Option<IpamBenchmark.ProjectionsMode>("--projections")
        {
            Description = "The audit's projections (checkpoints, the address index) beside the node, as in a daemon: off, on, or " +
                "both (each run without and with, alternating, and the throughput the projections cost)",
            DefaultValueFactory = _ => IpamBenchmark.ProjectionsMode.Off,
        };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON" };
        requesters.Within(1, 10_000);
        allocations.Within(1, 10_000_000);
        live.Within(0, 1_000_000);
        recoveryEvents.Within(1, 10_000_000);
        runs.Within(1, 1_000);
        var command = new Command("ipam", """
            Durable allocations on one node actor through the IPAM front door, on a SQLite file journal in a temporary
            folder: concurrent requesters each send the next allocation when the previous one is answered (throughput,
            p50 and p99 latency), releasing the oldest pod once --live are held; then the recovery time of a node actor
            whose journal holds many events (snapshots every romana.ipam.snapshot-every events).
            """) { requesters, allocations, live, recoveryEvents, runs, projections, json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async _ =>
        {
            var options = new IpamBenchmark.Options(parse.GetValue(requesters), parse.GetValue(allocations), parse.GetValue(live),
                parse.GetValue(recoveryEvents), parse.GetValue(runs), parse.GetValue(projections));
            var result = await IpamBenchmark.RunAsync(options, parse.GetValue(json) ? null : m => AnsiConsole.MarkupLine(Markup.Escape(m)));
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions.Indented));
            else Print(result);
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    private static Command Routes()
    {
        var nodes = new Option<int>("--nodes") { Description = "Nodes in the generated cluster", DefaultValueFactory = _ => 5_000 };
        var subnets = new Option<int>("--subnets")
        {
            Description = "Subnets, spread over 3 zones with one route table each",
            DefaultValueFactory = _ => 60
        };
        var runs = new Option<int>("--runs")
        {
            Description = "Timed runs of each measurement; the median is reported",
            DefaultValueFactory = _ => 21
        };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON" };
        nodes.Within(1, DocumentLimits.MostNodes);
        subnets.Within(1, DocumentLimits.MostSubnets);
        runs.Within(1, 1_000);
        var command = new Command("routes", """
            The route planner on a generated cluster (5,000 nodes in 60 subnets by default): planning at budgets 50, 100 and
            500, re-planning after one node's health changes, and the EC2 calls the route manager sends to move the routes
            of a failed forwarder on an in-memory EC2 (one per differing route is the target).
            """) { nodes, subnets, runs, json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async _ =>
        {
            var result = await RouteBenchmark.RunAsync(parse.GetValue(nodes), parse.GetValue(subnets), parse.GetValue(runs),
                parse.GetValue(json) ? null : m => AnsiConsole.MarkupLine(Markup.Escape(m)));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions.Indented));
                return CommandLineGuard.Ok;
            }
            var table = new Table().AddColumns("measure", "median (ms)", "runs", "note");
            foreach (var figure in result.Figures)
                table.AddRow(figure.Measure, $"{figure.MedianMs:0.000}", figure.Runs.ToString(), figure.Note);
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine(Markup.Escape(
                $"reconcile after a forwarder failed: {result.DifferingRoutes} routes differed, {result.MutatingCalls} EC2 calls sent"));
            AnsiConsole.MarkupLine(Markup.Escape(
                $"{result.Machine}; {result.Nodes:N0} nodes, {result.Subnets} subnets, {result.Blocks:N0} blocks, {result.Pods:N0} pods"));
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    private static Command Failover()
    {
        var nodes = new Option<int>("--nodes-per-subnet") { Description = "Nodes in each of the 6 subnets", DefaultValueFactory = _ => 50 };
        var failures = new Option<int>("--failures") { Description = "Forwarders that fail, 3 s apart", DefaultValueFactory = _ => 10 };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON" };
        // Six subnets: at most the nodes a simulation may hold; failures 3 s apart within the hour a simulation may last.
        nodes.Within(1, DocumentLimits.MostSimulatedNodes / 6);
        failures.Within(1, 1_000);
        var command = new Command("failover", """
            Failure to repaired routes in the simulation (virtual time, the production actors, an in-memory EC2 with 20 ms
            latency): 300 nodes in 3 zones by default, ten failures; probes every 500 ms, 3 misses fail a node.
            """) { nodes, failures, json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async _ =>
        {
            var result = await FailoverBenchmark.RunAsync(parse.GetValue(nodes), parse.GetValue(failures),
                parse.GetValue(json) ? null : m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions.Indented));
                return CommandLineGuard.Ok;
            }
            var table = new Table().AddColumns("node", "failed at", "detected after", "routes repaired after");
            foreach (var f in result.Failovers)
                table.AddRow(f.Node, $"{f.FailedAt:0.00}s", $"{(f.DetectedAt - f.FailedAt) * 1000:0} ms",
                    $"{((f.RoutesRepairedAt ?? f.DetectedAt) - f.FailedAt) * 1000:0} ms ({f.RoutesMoved} routes)");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine(Markup.Escape(
                $"failure to repaired routes: median {result.MedianMs:0} ms, max {result.MaxMs:0} ms (bound {result.BoundMs:0} ms); " +
                $"{result.Nodes} nodes, {result.Pods:N0} pods, {result.RoutesMoved} routes moved; " +
                $"{result.SimulatedSeconds:0} s simulated in {result.ElapsedSeconds:0.0} s"));
            return result.MaxMs <= result.BoundMs ? CommandLineGuard.Ok : CommandLineGuard.Failed;
        }));
        return command;
    }

    private static Command Scale()
    {
        var nodes = new Option<int>("--nodes")
        {
            Description = "Nodes of the cluster, spread over its 60 subnets (rounded down to a multiple of 60)",
            DefaultValueFactory = _ => 5_040,
        };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON" };
        nodes.Within(ScaleScenario.Subnets, DocumentLimits.MostSimulatedNodes);
        var command = new Command("scale", """
            The route manager at scale, in the simulation: 3 zones of 20 subnets, one route table per zone (limit 100), 20
            pods per node, EC2's rate limit (50, refilled 5 per second) and 20 ms latency; the forwarders of two subnets fail
            at 10 s and 14 s, during the first convergence; 40 simulated seconds. Prints the run time and peak memory, when
            every pod first became reachable, and each failure-to-repair time against 500 ms x 3 + 500 ms. Exits 1 when a
            repair misses that bound, the run does not converge, or an invariant is violated.
            """) { nodes, json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            var result = await ScaleBenchmark.RunAsync(parse.GetValue(nodes) / ScaleScenario.Subnets,
                parse.GetValue(json) ? null : m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"), cancel);
            var repairs = result.Failovers.Select(f => (f.RoutesRepairedAt - f.FailedAt) * 1000).ToList();
            var ok = result.Violation is null && result.NotConverged is null && repairs.All(r => r <= result.BoundMs);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions.Indented));
                return ok ? CommandLineGuard.Ok : CommandLineGuard.Failed;
            }
            var table = new Table().AddColumns("node", "failed at", "detected after", "routes repaired after");
            foreach (var f in result.Failovers)
                table.AddRow(f.Node, $"{f.FailedAt:0.00}s", f.DetectedAt is { } d ? $"{(d - f.FailedAt) * 1000:0} ms" : "-",
                    f.RoutesRepairedAt is { } r ? $"{(r - f.FailedAt) * 1000:0} ms ({f.RoutesMoved} routes)" : "not repaired");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine(Markup.Escape(
                $"{result.Nodes:N0} nodes, {result.Pods:N0} pods: {result.SimulatedSeconds:0} s simulated " +
                $"in {result.ElapsedSeconds:0.0} s, " +
                $"peak {result.PeakMegabytes:N0} MB; first complete convergence at " +
                (result.ConvergedAt is { } c ? $"{c:0.00} s" : "never") +
                $"; {result.RoutesInEc2} routes in EC2; {result.SourceDestChecksDisabled:N0} source/destination checks turned off"));
            if (result.Violation is not null) AnsiConsole.MarkupLine(Markup.Escape($"invariant violated: {result.Violation}"));
            if (result.NotConverged is not null) AnsiConsole.MarkupLine(Markup.Escape($"not converged at the end: {result.NotConverged}"));
            return ok ? CommandLineGuard.Ok : CommandLineGuard.Failed;
        }));
        return command;
    }

    private static Command Audit()
    {
        var events = new Option<long>("--events") { Description = "Events in the generated journal", DefaultValueFactory = _ => 1_000_000 };
        var runs = new Option<int>("--runs")
        {
            Description = "Runs of each question; the median is reported",
            DefaultValueFactory = _ => 3
        };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON" };
        var keep = new Option<string?>("--journal")
        {
            Description = "Write the generated journal to this new SQLite file and keep it (to try `romana audit` on); with " +
                "--postgresql, the name of the database to create and keep"
        };
        var postgreSql = new Option<string?>("--postgresql")
        {
            Description = "A PostgreSQL server's connection string: the journal goes into a database the benchmark creates " +
                "there (dropped at the end unless --journal names it), instead of a SQLite file"
        };
        events.Within(1, 100_000_000);
        runs.Within(1, 1_000);
        var command = new Command("audit", """
            Audit questions through Akka.Persistence.Query on a journal of a million events (a month of pod churn on 300
            nodes; --events more is more months), SQLite or PostgreSQL: who held an address, and the whole state replayed to
            --runs random moments of the history and to its end.
            """) { events, runs, json, keep, postgreSql };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async _ =>
        {
            var result = await AuditBenchmark.RunAsync(parse.GetValue(events), parse.GetValue(runs), parse.GetValue(keep),
                parse.GetValue(postgreSql),
                parse.GetValue(json) ? null : m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"));
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions.Indented));
            else
            {
                AnsiConsole.MarkupLine(
                    Markup.Escape($"{result.Events:N0} events in {result.Journal}, " +
                        (result.WriteSeconds is { } seconds ? $"written in {seconds:0.0} s" : "kept from an earlier run")));
                var table = new Table().AddColumns("question", "median ms", "runs ms", "found");
                foreach (var q in result.Questions)
                    table.AddRow(Markup.Escape(q.Name), q.MedianMs.ToString("0"), string.Join(", ", q.RunsMs.Select(r => r.ToString("0"))),
                        Markup.Escape(q.Found));
                AnsiConsole.Write(table);
            }
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    private static Command PolicyBench()
    {
        var policies = new Option<int>("--policies") { Description = "NetworkPolicies in the world", DefaultValueFactory = _ => 1_000 };
        var pods = new Option<int>("--pods") { Description = "Pods in the world", DefaultValueFactory = _ => 10_000 };
        var local = new Option<int>("--local") { Description = "Pods the node hosts", DefaultValueFactory = _ => 100 };
        var runs = new Option<int>("--runs")
        {
            Description = "Runs of each measurement; the median is reported",
            DefaultValueFactory = _ => 5
        };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON" };
        policies.Within(1, 100_000);
        pods.Within(1, 60_000);
        local.Within(1, 10_000);
        runs.Within(1, 1_000);
        var command = new Command("policy", """
            NetworkPolicy on nftables (root): a generated world of policies over pods in 50 namespaces, the node hosting the
            first --local pods, in a scratch network namespace removed at the end. Times compiling and applying the whole
            table (target: under 1 s), and one local pod's label change until the kernel's table shows it (target: under
            100 ms), through libnftables in this process, libnftables in a helper process (the daemon's way) and nft -f, interleaved.
            """) { policies, pods, local, runs, json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            var options = new PolicyBenchmark.Options(parse.GetValue(policies), parse.GetValue(pods),
                Math.Min(parse.GetValue(local), parse.GetValue(pods)), parse.GetValue(runs));
            var result = await PolicyBenchmark.RunAsync(options,
                parse.GetValue(json) ? null : m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"), cancel);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions.Indented));
                return CommandLineGuard.Ok;
            }
            var table = new Table().AddColumns("backend", "measure", "median (ms)", "runs (ms)");
            foreach (var f in result.Figures)
                table.AddRow(Markup.Escape(f.Backend), Markup.Escape(f.Measure), $"{f.MedianMs:0.0}",
                    string.Join(", ", f.RunsMs.Select(r => r.ToString("0.0"))));
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine(Markup.Escape(
                $"{result.Policies:N0} policies, {result.Pods:N0} pods, {result.Local} local: " +
                $"{result.Chains} chains, {result.Sets} sets, " +
                $"{result.FullStatements:N0} statements whole, {result.ChangeStatements} for the label change; {result.Machine}; " +
                $"load {result.LoadBefore} before, {result.LoadAfter} after"));
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    private static string Runs(IpamBenchmark.Result result, Func<IpamBenchmark.ThroughputRun, double> figure, string format) =>
        string.Join(", ", result.Runs.Select(r => figure(r).ToString(format)));

    private static void Print(IpamBenchmark.Result result)
    {
        var table = new Table().AddColumns("measure", "median", "runs");
        table.AddRow("durable allocations/s", $"{result.AllocationsPerSecond:N0}", Runs(result, r => r.AllocationsPerSecond, "N0"));
        table.AddRow("latency p50 (ms)", $"{result.P50Ms:0.00}", Runs(result, r => r.P50Ms, "0.00"));
        table.AddRow("latency p99 (ms)", $"{result.P99Ms:0.00}", Runs(result, r => r.P99Ms, "0.00"));
        if (result.WithProjections is { } with)
        {
            table.AddRow("with the projections: allocations/s", $"{with.AllocationsPerSecond:N0}", string.Join(", ",
                with.Runs.Select(r => r.AllocationsPerSecond.ToString("N0"))));
            table.AddRow("with the projections: latency p99 (ms)", $"{with.P99Ms:0.00}", string.Join(", ",
                with.Runs.Select(r => r.P99Ms.ToString("0.00"))));
            table.AddRow("throughput the projections cost", $"{with.CostPercent:0.0} %", "");
            table.AddRow("CPU ms per 1,000 allocations, without",
                $"{BenchStatistics.Median(result.Runs.Select(r => r.CpuMsPerThousand)):0}",
                Runs(result, r => r.CpuMsPerThousand, "0"));
            table.AddRow("CPU ms per 1,000 allocations, with", $"{BenchStatistics.Median(with.Runs.Select(r => r.CpuMsPerThousand)):0}",
                string.Join(", ", with.Runs.Select(r => r.CpuMsPerThousand.ToString("0"))));
            table.AddRow("CPU the projections add", $"{with.CpuCostPercent:0.0} %", "");
            table.AddRow("projections behind at the end (events)",
                $"{BenchStatistics.Median(with.Runs.Select(r => (double)r.BehindEvents)):N0}",
                string.Join(", ", with.Runs.Select(r => r.BehindEvents.ToString("N0"))));
            table.AddRow("projections waiting for the writes (ms)", $"{BenchStatistics.Median(with.Runs.Select(r => r.YieldedMs)):0}",
                string.Join(", ", with.Runs.Select(r => r.YieldedMs.ToString("0"))));
            table.AddRow("projections' catch-up after the end (ms)", $"{BenchStatistics.Median(with.Runs.Select(r => r.CatchUpMs)):0}",
                string.Join(", ", with.Runs.Select(r => r.CatchUpMs.ToString("0"))));
        }
        table.AddRow($"recovery of {result.RecoveryEvents:N0} events (ms)", $"{result.RecoveryMs:0.0}",
            string.Join(", ", result.RecoveryRunsMs.Select(r => $"{r:0.0}")));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(Markup.Escape($"{result.Machine}; {result.Requesters} requesters, " +
            $"{result.Allocations:N0} allocations per run, at most {result.Live:N0} held (each allocation past that also releases one)"));
    }

    private static Command PolicyPath()
    {
        var policies = new Option<int>("--policies") { Description = "Policies of the world applied", DefaultValueFactory = _ => 1_000 };
        var selecting = new Option<int>("--selecting")
        {
            Description = "Policies that select each of the two pods (the client's egress, the server's ingress)",
            DefaultValueFactory = _ => 100,
        };
        var runs = new Option<int>("--runs")
        {
            Description = "Interleaved runs of each setup; the median is reported",
            DefaultValueFactory = _ => 5,
        };
        var seconds = new Option<int>("--seconds") { Description = "Seconds of each measurement", DefaultValueFactory = _ => 5 };
        var connections = new Option<int>("--connections")
        {
            Description = "Concurrent clients of the connection-rate measurement",
            DefaultValueFactory = _ => 8,
        };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON" };
        policies.Within(0, 100_000);
        selecting.Within(1, 10_000);
        runs.Within(1, 100);
        seconds.Within(1, 600);
        connections.Within(1, 1_000);
        var command = new Command("policy-path", """
            The packet path with NetworkPolicy (root; ip and iperf3): two pod namespaces on a node namespace, routed as
            Romana's CNI does it; TCP throughput (iperf3) and connections per second (connect + close, a client of its own)
            from one pod to the other with --policies policies applied through the nftables adapter (--selecting of them
            select each pod, their allowing rule last) against no policies and against no table; runs interleaved, medians
            reported. Exits 1 when a median with policies differs from the one without by more than 5 %. Every namespace it
            makes is removed at the end.
            """) { policies, selecting, runs, seconds, connections, json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            if (2 * parse.GetValue(selecting) > parse.GetValue(policies))
            {
                Console.Error.WriteLine(
                    $"--selecting must be at most half of --policies (not {parse.GetValue(selecting)} of {parse.GetValue(policies)})");
                return CommandLineGuard.BadInput;
            }
            if (PolicyPathBenchmark.WhyNot() is { } why)
            {
                Console.Error.WriteLine(why);
                return CommandLineGuard.Failed;
            }
            var options = new PolicyPathBenchmark.Options(parse.GetValue(policies), parse.GetValue(selecting), parse.GetValue(runs),
                parse.GetValue(seconds), parse.GetValue(connections));
            var result = await PolicyPathBenchmark.RunAsync(options,
                parse.GetValue(json) ? null : m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"), cancel);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions.Indented));
                return result.WithinBound ? CommandLineGuard.Ok : CommandLineGuard.Failed;
            }
            var table = new Table().AddColumns("setup", "TCP throughput (Gbit/s, median)", "connections/s (median)", "runs");
            foreach (var figure in result.Figures)
                table.AddRow(figure.Setup, $"{figure.MedianGbps:0.00}", $"{figure.MedianConnectionsPerSecond:N0}", $"{figure.Runs}");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine(Markup.Escape(
                $"with policies against none: throughput {result.ThroughputDifference:+0.0%;-0.0%}, " +
                $"connection rate {result.RateDifference:+0.0%;-0.0%} (bound ±{PolicyPathBenchmark.Bound:P0}): " +
                (result.WithinBound ? "within" : "OUTSIDE") + $"; chains: client egress {result.ClientChainRules} rules, " +
                $"server ingress {result.ServerChainRules} rules; a port no policy allows " +
                $"{(result.Enforced ? "was" : "was NOT")} dropped"));
            AnsiConsole.MarkupLine(Markup.Escape($"{result.Machine}; load {result.LoadBefore} before, {result.LoadAfter} after"));
            return result.WithinBound ? CommandLineGuard.Ok : CommandLineGuard.Failed;
        }));
        return command;
    }
}
