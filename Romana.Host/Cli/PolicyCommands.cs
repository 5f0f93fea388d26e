using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Romana.Actors.Policy;
using Romana.Host.Policy;

namespace Romana.Host.Cli;

/// <summary><c>romana policy</c>: NetworkPolicy tools.</summary>
public static class PolicyCommands
{
    /// <summary>How many cases the dataplane runs at once, each on a node of its own.</summary>
    private const int ParallelCases = 4;

    public static Command Create()
    {
        var policy = new Command("policy", "NetworkPolicy (networking.k8s.io/v1): check the conformance truth tables.");
        policy.Subcommands.Add(Check());
        policy.Subcommands.Add(NftHelperCommand());
        return policy;
    }

    /// <summary>The nftables helper the daemon starts (NftHelper.cs): hidden, it speaks a line protocol on stdin and stdout.</summary>
    private static Command NftHelperCommand()
    {
        var netns = new Option<string?>("--netns") { Description = "The network namespace (a name or a path); default this one" };
        var command = new Command("nft-helper", "libnftables for the daemon, one transaction at a time over stdin/stdout")
        {
            Hidden = true,
        };
        command.Options.Add(netns);
        command.SetAction((parse, _) =>
            NftHelper.ServeAsync(parse.GetValue(netns), Console.OpenStandardInput(), Console.OpenStandardOutput()));
        return command;
    }

    private static Command Check()
    {
        var paths = new Argument<string[]>("PATH")
        {
            Description = "Case files, or folders of *.json cases (for example ../shared/conformance/netpol)",
            Arity = ArgumentArity.OneOrMore,
        };
        var dataplane = new Option<bool>("--dataplane")
        {
            Description = "Answer every probe with real packets through nftables in network namespaces (needs root)",
        };
        var timeout = new Option<int>("--timeout-ms")
        {
            Description = "With --dataplane: how long a probe waits for its connection or echo before it counts as dropped",
            DefaultValueFactory = _ => 1000,
        };
        timeout.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 10 or > 60_000) r.AddError("--timeout-ms must be from 10 to 60000");
        });
        var json = new Option<bool>("--json")
        {
            Description = "Print one JSON document (cases, mismatches, skipped probes; with --dataplane the drops counted per pod)",
        };
        var command = new Command("check", """
            Checks NetworkPolicy truth tables in the conformance format (../shared/conformance/netpol/README.md): each
            case's pods, policies and probes, every probe asked for every ordered pair of distinct pods.

            Without --dataplane, the pure evaluator of networking.k8s.io/v1 answers every probe.

            With --dataplane (root), every probe is a real packet. Each case gets a node network namespace, prepared as the
            daemon prepares its host (forwarding on, loose reverse-path filtering), and one network namespace per pod, wired
            to the node as Romana's CNI plugin wires a pod (a veth, the pod's /32, a default route via 169.254.1.1, the
            node's /32 route to the pod), so pod-to-pod packets cross the node's forward hook as in production. Every pod
            serves TCP, UDP and SCTP on ports 80 and 81 (one process, one socket per port and protocol inside each pod's
            namespace). The case's policies are compiled and applied as Romana's nftables table (table inet
            romana_policy) in the node namespace. A probe is a TCP connect, a UDP request and its echo, or an SCTP
            association, made from inside the source pod; all of a case's probes run at once and one that gets no answer
            within --timeout-ms counts as dropped. SCTP probes are skipped, with the reason, on a kernel without SCTP.
            Namespaces are named romana-check-<id>-<case>-node and romana-check-<id>-<case>-pod<i>; every namespace and
            table the run made is removed at the end, also after a failure or Ctrl-C (only a SIGKILL leaves them:
            `ip netns del` them by that name). Nothing is changed in the host's own namespace.

            Prints PASS <name> or FAIL <name>: probe <i> (<port>/<protocol>): <from> -> <to>: expected allow, got deny
            (the first wrong pairs) per case, then "N passed, M failed"; skipped probes are reported on stderr.
            Exits 0 when every case passed, 1 when one failed (or the dataplane could not be set up), 2 on a malformed
            case file (one line naming the file and the field).
            """) { paths, dataplane, timeout, json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(cancel => RunAsync(parse.GetValue(paths)!,
            parse.GetValue(dataplane), TimeSpan.FromMilliseconds(parse.GetValue(timeout)), parse.GetValue(json), Console.Out, cancel)));
        return command;
    }

    /// <summary>The node's policy dataplane inside a network namespace (a name under /var/run/netns): the daemon's own adapter.</summary>
    private static IPolicyDataplane Dataplane(string netns) => new NftablesPolicyDataplane(netns);

    public static async Task<int> RunAsync(IReadOnlyList<string> paths, bool dataplane, TimeSpan timeout, bool json, TextWriter output,
        CancellationToken cancel = default)
    {
        List<PolicyCase> cases;
        try
        {
            cases = [.. PolicyCase.Files(paths).Select(PolicyCase.Load)];
        }
        catch (PolicyFormatException e)
        {
            Console.Error.WriteLine($"romana: {e.Message}");
            return CommandLineGuard.BadInput;
        }
        if (dataplane && !Environment.IsPrivilegedProcess)
        {
            Console.Error.WriteLine("romana: --dataplane needs root: it creates network namespaces, veths and nftables tables");
            return CommandLineGuard.Failed;
        }
        var started = Stopwatch.GetTimestamp();
        var check = dataplane ? new DataplaneCheck(Dataplane, timeout) : null;
        var outcomes = new List<CaseOutcome>();
        var failure = check is null ? null : await RunDataplaneAsync(check, cases, outcome =>
        {
            outcomes.Add(outcome);
            if (!json) Report(outcome, output);
        }, cancel);
        if (check is null)
            foreach (var outcome in cases.Select(EvaluatorCheck.Run))
            {
                outcomes.Add(outcome);
                if (!json) Report(outcome, output);
            }
        if (failure is not null)
        {
            cancel.ThrowIfCancellationRequested();
            Console.Error.WriteLine($"romana: {failure}");
            return CommandLineGuard.Failed;
        }
        var passed = outcomes.Count(o => o.Passed);
        var failed = outcomes.Count - passed;
        if (json)
            output.WriteLine(JsonSerializer.Serialize(new
            {
                mode = dataplane ? "dataplane" : "evaluator",
                namespacePrefix = check?.Prefix,
                seconds = Math.Round(Stopwatch.GetElapsedTime(started).TotalSeconds, 3),
                passed,
                failed,
                cases = outcomes.Select(o => new
                {
                    name = o.Name,
                    file = o.File,
                    passed = o.Passed,
                    seconds = Math.Round(o.Took.TotalSeconds, 3),
                    mismatches = o.Mismatches.Select(m => new
                    {
                        probe = m.Probe,
                        port = m.Of.Port,
                        protocol = m.Of.Protocol.ToString().ToUpperInvariant(),
                        from = m.From,
                        to = m.To,
                        expected = m.Expected ? "allow" : "deny",
                        got = m.Got ? "allow" : "deny",
                    }),
                    skipped = o.Skipped.Select(s => new
                    {
                        probe = s.Probe, port = s.Port, protocol = s.Protocol.ToString().ToUpperInvariant(), reason = s.Reason,
                    }),
                    drops = o.Drops.Select(d => new { pod = d.Pod, direction = d.Direction.ToString(), packets = d.Packets }),
                }),
            }, JsonOptions.Indented));
        else
            output.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 ? CommandLineGuard.Ok : CommandLineGuard.Failed;
    }

    private static void Report(CaseOutcome outcome, TextWriter output)
    {
        output.WriteLine(outcome.Line);
        foreach (var skipped in outcome.Skipped) Console.Error.WriteLine($"romana: {outcome.Name}: {skipped}");
    }

    /// <summary>
    /// Runs the cases a few at a time and reports each in file order; the first case that cannot be set up stops the others
    /// (each removes what it made) and is returned as the message to print.
    /// </summary>
    private static async Task<string?> RunDataplaneAsync(DataplaneCheck check, List<PolicyCase> cases, Action<CaseOutcome> report,
        CancellationToken cancel)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        using var slots = new SemaphoreSlim(ParallelCases);
        var runs = cases.Select((@case, i) => Task.Run(async () =>
        {
            await slots.WaitAsync(stop.Token);
            try
            {
                return await check.RunAsync(@case, i, stop.Token);
            }
            finally
            {
                slots.Release();
            }
        })).ToList();
        string? failure = null;
        for (var i = 0; i < runs.Count; i++)
        {
            try
            {
                var outcome = await runs[i];
                if (failure is null) report(outcome);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                if (failure is null && e is not OperationCanceledException)
                    failure = $"{cases[i].File}: the dataplane check could not run: {e.Message}";
                failure ??= "interrupted";
                await stop.CancelAsync();
            }
        }
        return failure;
    }
}
