using System.CommandLine;
using System.Globalization;
using Romana.Host.Lab;

namespace Romana.Host.Cli;

public static class LabCommands
{
    public const string DefaultCniPlugin = "/opt/cni/bin/romana";

    public static Command Create()
    {
        var lab = new Command("lab", """
            A VPC made of network namespaces on this machine (as root; DESIGN.md section 6): a router namespace playing the VPC
            (a bridge per subnet, a kernel routing table per route table, fed by `romana ec2 serve`), an "outside" namespace
            behind its internet gateway, a PostgreSQL server, node namespaces each running `romana daemon`, and pods wired by
            the CNI plugin. Everything is named rlab-* (namespaces), rl-* (links inside them) and lives in /run/romana-lab;
            the host's own namespace gains no route, rule, sysctl or nft table.
            """);
        lab.Subcommands.Add(Up());
        lab.Subcommands.Add(Status());
        lab.Subcommands.Add(Down());
        lab.Subcommands.Add(Bench());
        lab.Subcommands.Add(Restart());
        return lab;
    }

    private static Command Up()
    {
        var defaults = LabOptions.Default;
        var zones = Count("--zones", "Availability zones, each with one route table", defaults.Zones);
        var subnets = Count("--subnets-per-zone", "VPC subnets per zone, each a bridge of the router", defaults.SubnetsPerZone);
        var nodes = Count("--nodes-per-subnet", "Nodes per subnet, each a namespace running romana daemon", defaults.NodesPerSubnet);
        var pods = Count("--pods-per-node", "Pods per node, each a namespace wired by the CNI plugin", defaults.PodsPerNode);
        var limit = Count("--route-limit", "Routes each route table may hold besides its local route (one of them is the internet "
            + "gateway's, which Romana does not own); the default is fewer than the lab's blocks", defaults.RouteLimit);
        var plugin = new Option<string>("--cni-plugin")
        {
            Description = $"The CNI plugin executable (default {DefaultCniPlugin}: scripts/install-cni.sh /opt/cni/bin)",
            DefaultValueFactory = _ => DefaultCniPlugin,
            HelpName = "FILE",
        };
        var command = new Command("up", """
            Builds the lab and returns 0 once every daemon is up, every pod is wired and EC2 holds a complete plan (mirrored in
            the router's kernel tables); otherwise exits 1 naming what did not come up, and removes what it made.
            """) { zones, subnets, nodes, pods, limit, plugin };
        command.SetAction((parse, _) =>
        {
            var values = new[] { zones, subnets, nodes, pods, limit }.Select(o => (o.Name, Text: parse.GetValue(o)!)).ToList();
            var numbers = new List<int>();
            foreach (var (name, text) in values)
            {
                var (_, min, max) = LabLayout.Bounds.First(b => b.Name == name);
                if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number < min || number > max)
                {
                    Console.Error.WriteLine($"romana lab up: {name} = {Romana.Contracts.Cni.Printable.Text(text)}: "
                        + $"must be a whole number from {min} to {max}");
                    return Task.FromResult(CommandLineGuard.BadInput);
                }
                numbers.Add(number);
            }
            var options = new LabOptions(numbers[0], numbers[1], numbers[2], numbers[3], numbers[4]);
            return CommandLineGuard.RunAsync(() => LabRunner.UpAsync(options, parse.GetValue(plugin)!, Console.Out));
        });
        return command;
    }

    private static Option<string> Count(string name, string description, int defaultValue) =>
        new(name)
        {
            Description = $"{description} (default {defaultValue})",
            DefaultValueFactory = _ => defaultValue.ToString(CultureInfo.InvariantCulture),
            HelpName = "N",
        };

    private static Command Status()
    {
        var json = new Option<bool>("--json")
        {
            Description = "One JSON document: router, ec2, postgres, nodes (with their daemons' pids), pods, routeTables "
                + "(what EC2 holds now) and routeManager",
        };
        var command = new Command("status", "What the lab holds: its namespaces, daemons, pods and EC2's routes.") { json };
        command.SetAction((parse, _) => CommandLineGuard.RunAsync(() => LabRunner.StatusAsync(parse.GetValue(json), Console.Out)));
        return command;
    }

    private static Command Bench()
    {
        var adds = new Option<int>("--adds")
        {
            Description = "CNI ADDs of new pods on one node, through the plugin (default 100)",
            DefaultValueFactory = _ => 100, HelpName = "N"
        };
        var failovers = new Option<int>("--failovers")
        {
            Description = "Forwarder failovers, each a ping train every 50 ms through a forwarder whose daemon is killed and "
                + "link set down, then the node put back (default 5)",
            DefaultValueFactory = _ => 5, HelpName = "N",
        };
        var managerFailovers = new Option<int>("--manager-failovers")
        {
            Description = "Forwarder failovers during which the route singleton's host is killed too, 300 ms after the forwarder "
                + "(the forwarder's subnet then has only its supervisor's standby repair); both nodes put back after each (default 0)",
            DefaultValueFactory = _ => 0, HelpName = "N",
        };
        var plugin = new Option<string>("--cni-plugin")
        {
            Description = $"The CNI plugin (default {DefaultCniPlugin})",
            DefaultValueFactory = _ => DefaultCniPlugin, HelpName = "FILE"
        };
        var json = new Option<bool>("--json") { Description = "The figures as one JSON object" };
        var command = new Command("bench", """
            Measures a lab that is up (as root): CNI ADD median and p99 on the cluster's PostgreSQL journal, and the outage
            of forwarder failovers in lost pings (50 ms each), also with the route singleton's host killed during them.
            Disturbs the lab while it runs, and leaves it whole.
            """) { adds, failovers, managerFailovers, plugin, json };
        command.SetAction((parse, _) =>
        {
            var (a, f, m) = (parse.GetValue(adds), parse.GetValue(failovers), parse.GetValue(managerFailovers));
            if (a is < 1 or > 1000 || f is < 0 or > 50 || m is < 0 or > 50)
            {
                Console.Error.WriteLine($"romana lab bench: --adds = {a} (1 to 1000), --failovers = {f} (0 to 50), "
                    + $"--manager-failovers = {m} (0 to 50)");
                return Task.FromResult(CommandLineGuard.BadInput);
            }
            return CommandLineGuard.RunAsync(() =>
                LabBench.RunAsync(parse.GetValue(plugin)!, a, f, m, parse.GetValue(json), Console.Out));
        });
        return command;
    }

    private static Command Restart()
    {
        var node = new Argument<string>("NODE") { Description = "The node whose daemon to start again (node-a1-1, ...)" };
        var command = new Command("restart", """
            Starts a node's daemon again with the configuration it had, after it was killed (by a test, a benchmark or by
            hand); its log goes on in the same file. Refused while that daemon still runs.
            """) { node };
        command.SetAction((parse, _) => CommandLineGuard.RunAsync(() =>
        {
            var name = parse.GetValue(node)!;
            try
            {
                Console.Out.WriteLine($"{name}: daemon started again (pid {LabRunner.RestartDaemon(name)})");
                return Task.FromResult(CommandLineGuard.Ok);
            }
            catch (LabException e)
            {
                Console.Error.WriteLine($"romana lab restart: {e.Message}");
                return Task.FromResult(CommandLineGuard.Failed);
            }
        }));
        return command;
    }

    private static Command Down()
    {
        var command = new Command("down", """
            Removes every namespace, process, folder and server the lab made, found by their names (also after a crash of
            the lab or of `romana lab up`); 0 also when there is nothing to remove.
            """);
        command.SetAction((_, _) => CommandLineGuard.RunAsync(() => Task.FromResult(LabRunner.Down(Console.Out))));
        return command;
    }
}
