using System.CommandLine;
using Romana.Host.Cli;

if (BatchRuntime.ShouldRelaunch(args)) return await BatchRuntime.RelaunchAsync(args);

var root = new RootCommand("""
    Romana: native VPC networking for Kubernetes pods on AWS EC2, without an overlay.
    Pod addresses are carved by zone, subnet and node (topology-aware IPAM) and every change is an event in a journal.
    """);
root.Subcommands.Add(IpamCommands.Create());
root.Subcommands.Add(PlanCommand.Create());
root.Subcommands.Add(SimulateCommand.Create());
root.Subcommands.Add(AuditCommands.Create());
root.Subcommands.Add(DaemonCommand.Create());
root.Subcommands.Add(BenchCommands.Create());
root.Subcommands.Add(Ec2Commands.Create());
root.Subcommands.Add(LabCommands.Create());
root.Subcommands.Add(AdminCommands.Node());
root.Subcommands.Add(AdminCommands.Cluster());
root.Subcommands.Add(PolicyCommands.Create());

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0 && !args.Contains("--help") && !args.Contains("-h"))
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"romana: {error.Message}");
    Console.Error.WriteLine($"romana: see '{string.Join(' ', ["romana", .. CommandPath(parsed.CommandResult.Command)])} --help'");
    return CommandLineGuard.BadInput;
}
// The daemon stops on SIGTERM in its own order (DaemonCommand); System.CommandLine must not end the process meanwhile.
return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });

static IEnumerable<string> CommandPath(Command command) =>
    command.Parents.OfType<Command>().Where(c => c is not RootCommand).SelectMany(CommandPath).Append(command.Name)
        .Where(n => n != "romana");
