using System.CommandLine;
using Romana.Host.Cli;

var root = new RootCommand("""
    Romana: native VPC networking for Kubernetes pods on AWS EC2, without an overlay.
    Pod addresses are carved by zone, subnet and node (topology-aware IPAM) and every change is an event in a journal.
    """);
root.Subcommands.Add(IpamCommands.Create());
root.Subcommands.Add(BenchCommands.Create());
return await root.Parse(args).InvokeAsync();
