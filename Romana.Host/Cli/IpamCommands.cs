using System.CommandLine;
using System.Text.Json;
using Romana.Host.Ipam;

namespace Romana.Host.Cli;

public static class IpamCommands
{
    public static Command Create()
    {
        var ipam = new Command("ipam", "Topology-aware IPAM: conformance vectors and a demonstration on the embedded journal.");
        ipam.Subcommands.Add(Vectors());
        ipam.Subcommands.Add(IpamDemo.Command());
        return ipam;
    }

    private static Command Vectors()
    {
        var paths = new Argument<string[]>("PATH")
        {
            Description = "Vector files, or folders of *.json vectors (for example ../shared/conformance/ipam)",
            Arity = ArgumentArity.OneOrMore,
        };
        var restartEvery = new Option<int>("--restart-every")
        {
            Description = "Terminate and recreate the actor system every K steps, so later steps run on recovered state (0: never)",
            DefaultValueFactory = _ => 0,
        };
        restartEvery.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0) r.AddError("--restart-every must be 0 or more");
        });
        var json = new Option<bool>("--json") { Description = "Print one JSON document instead of lines" };
        var command = new Command("vectors", """
            Runs IPAM conformance vectors against the real actors, each on a fresh SQLite journal in a temporary folder.
            Prints PASS or FAIL per vector and "N passed, M failed"; exits 1 if any failed.
            """) { paths, restartEvery, json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(cancel =>
            RunVectorsAsync(parse.GetValue(paths)!, parse.GetValue(restartEvery), parse.GetValue(json), Console.Out, cancel)));
        return command;
    }

    public static async Task<int> RunVectorsAsync(IEnumerable<string> paths, int restartEvery, bool json, TextWriter output,
        CancellationToken cancel = default)
    {
        var runner = new VectorRunner(restartEvery);
        var outcomes = new List<VectorOutcome>();
        foreach (var file in ConformanceVectorReader.Expand(paths))
        {
            VectorOutcome outcome;
            try
            {
                outcome = await runner.RunAsync(ConformanceVectorReader.Read(file), cancel);
            }
            catch (VectorFormatException e)
            {
                outcome = new VectorOutcome(Path.GetFileNameWithoutExtension(file), false, e.Message);
                if (!json) output.WriteLine($"ERROR {e.Message}");
                outcomes.Add(outcome);
                continue;
            }
            outcomes.Add(outcome);
            if (!json) output.WriteLine(outcome.Passed ? $"PASS {outcome.Name}" : $"FAIL {outcome.Name}: {outcome.Failure}");
        }
        var passed = outcomes.Count(o => o.Passed);
        var failed = outcomes.Count - passed;
        if (json)
            output.WriteLine(JsonSerializer.Serialize(new { passed, failed, vectors = outcomes }, JsonOptions.Indented));
        else
            output.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 ? CommandLineGuard.Ok : CommandLineGuard.Failed;
    }
}

public static class JsonOptions
{
    public static readonly JsonSerializerOptions Indented = new(JsonSerializerDefaults.Web) { WriteIndented = true };
}
