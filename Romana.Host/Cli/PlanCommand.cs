using System.CommandLine;
using Akka.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Topology;
using Romana.Host.Documents;
using Romana.Host.Ipam;
using Romana.Host.Routing;
using Spectre.Console;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Cli;

public static class PlanCommand
{
    public static Command Create()
    {
        var input = new Option<string>("--input") { Description = "The cluster file (see hocon/examples/*.json)", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the plan as JSON" };
        var command = new Command("plan", """
            A dry run for capacity planning: the nodes of the cluster file join and get their pods' addresses through the
            real IPAM (on a journal in memory: nothing is kept), then the VPC routes are planned for every route table within
            its budget (routeLimit minus foreignRoutes). Exits 2 when a budget cannot hold one route per subnet it must reach.
            `romana plan generate` writes a large cluster file.
            """) { input, json };
        command.SetAction((parse, _) =>
            CommandLineGuard.RunInterruptibleAsync(cancel => RunAsync(parse.GetValue(input)!, parse.GetValue(json), Console.Out, cancel)));
        command.Subcommands.Add(Generate());
        return command;
    }

    /// <summary>`romana plan generate`: a cluster file of a regular shape on standard output.</summary>
    private static Command Generate()
    {
        var defaults = new ClusterGenerator.Shape();
        Option<int> Count(string name, string description, int value, int most) =>
            new Option<int>(name) { Description = $"{description} (default {value})", DefaultValueFactory = _ => value, HelpName = "N" }
                .Within(name == "--pods-per-node" ? 0 : 1, most);
        var zones = Count("--zones", "Zones, each with one route table", defaults.Zones, 26);
        var subnets = Count("--subnets-per-zone", "VPC subnets in each zone", defaults.SubnetsPerZone, 99);
        var nodes = Count("--nodes-per-subnet", "Nodes in each subnet", defaults.NodesPerSubnet, DocumentLimits.MostNodes);
        var pods = Count("--pods-per-node", "Pods on each node", defaults.PodsPerNode, DocumentLimits.MostPodsPerNode);
        var limit = Count("--route-limit", "Routes a route table may hold", defaults.RouteLimit, DocumentLimits.MostRoutes);
        var command = new Command("generate", $"""
            Writes a cluster file to standard output, for `romana plan --input` or a scenario's "cluster": zones of equal
            subnets with one route table each, subnets of equal nodes, nodes of equal pods; pod CIDR {ClusterGenerator.PodCidr}
            with /{ClusterGenerator.BlockPrefixLength} blocks. The defaults are the 5,040-node cluster of the README's figures.
            """) { zones, subnets, nodes, pods, limit };
        command.SetAction(parse =>
        {
            var shape = new ClusterGenerator.Shape(parse.GetValue(zones), parse.GetValue(subnets), parse.GetValue(nodes),
                parse.GetValue(pods), parse.GetValue(limit));
            if (shape.Subnets > DocumentLimits.MostSubnets || shape.Nodes > DocumentLimits.MostNodes
                || shape.Pods > DocumentLimits.MostPods)
            {
                Console.Error.WriteLine($"romana: plan generate: {shape.Subnets:N0} subnets, {shape.Nodes:N0} nodes, " +
                    $"{shape.Pods:N0} pods: " +
                    $"a cluster file holds at most {DocumentLimits.MostSubnets:N0} subnets, {DocumentLimits.MostNodes:N0} nodes and " +
                    $"{DocumentLimits.MostPods:N0} pods");
                return CommandLineGuard.BadInput;
            }
            var document = ClusterGenerator.Generate(shape);
            try
            {
                TopologyCarver.Carve(ClusterFileReader.FromDocument(document).Topology);
            }
            catch (Exception e) when (e is ClusterFileException or TopologyException)
            {
                Console.Error.WriteLine(
                    $"romana: plan generate: the cluster does not fit its pod CIDR {ClusterGenerator.PodCidr}: {e.Message}");
                return CommandLineGuard.BadInput;
            }
            Console.Out.WriteLine(ClusterGenerator.ToJson(document));
            return CommandLineGuard.Ok;
        });
        return command;
    }

    public static async Task<int> RunAsync(string path, bool json, TextWriter output, CancellationToken cancel = default)
    {
        ClusterFile file;
        ClusterTopology topology;
        try
        {
            file = ClusterFileReader.Read(path);
            topology = TopologyCarver.Carve(file.Topology);
        }
        catch (Exception e) when (e is ClusterFileException or TopologyException)
        {
            Console.Error.WriteLine($"romana: {e.Message}");
            return CommandLineGuard.BadInput;
        }

        (ClusterTopology Topology, IpamStateView State, RoutingInput Input, RoutePlan? Plan,
            System.Collections.Immutable.ImmutableArray<BudgetShortfall> Shortfalls) planned;
        try
        {
            planned = await ClusterPlanning.PlanAsync(file, cancel);
        }
        catch (ClusterFileException e)
        {
            Console.Error.WriteLine($"romana: {e.Message}");
            return CommandLineGuard.BadInput;
        }
        var (_, state, routing, plan, shortfalls) = planned;
        if (plan is null)
        {
            Console.Error.WriteLine($"romana: the route budget is too small: {string.Join("; ", shortfalls)}");
            return CommandLineGuard.BadInput;
        }
        if (ReachabilityChecker.FirstViolation(routing, plan) is { } violation)
        {
            Console.Error.WriteLine($"romana: the plan breaks an invariant: {violation}");
            return CommandLineGuard.Failed;
        }
        if (json) output.WriteLine(ClusterPlanning.Document(file, topology, state, routing, plan).ToJson());
        else Print(file, routing, plan);
        return CommandLineGuard.Ok;
    }

    private static void Print(ClusterFile file, RoutingInput input, RoutePlan plan)
    {
        var pods = input.Blocks.Sum(b => b.Pods);
        AnsiConsole.MarkupLine(
            $"{input.Subnets.Length} subnets, {input.Nodes.Length} nodes ({input.Nodes.Count(n => !n.Healthy)} unhealthy), " +
            $"{input.Blocks.Length} blocks, {pods} pods; route limit {file.RouteLimit}");
        var summary = new Table().AddColumns("route table", "budget", "pod routes", "spare");
        foreach (var table in plan.Tables)
            summary.AddRow(table.Table, table.Budget.ToString(), table.Routes.Length.ToString(),
                (table.Budget - table.Routes.Length).ToString());
        AnsiConsole.Write(summary);
        foreach (var table in plan.Tables)
        {
            var routes = new Table().Title(table.Table).AddColumns("destination", "target node", "ENI");
            foreach (var route in table.Routes) routes.AddRow(route.Cidr.ToString(), route.Target.Value, route.Eni);
            AnsiConsole.Write(routes);
        }
        AnsiConsole.MarkupLine(
            $"Pods reached through a forwarder: {plan.ForwardedFraction:P1} (the rest are reached directly, as with one route per node)");
        if (!plan.WithoutHealthyNode.IsEmpty)
            AnsiConsole.MarkupLine(
                $"[red]No healthy node in subnets {string.Join(", ", plan.WithoutHealthyNode)}: their routes are kept as they were[/]");
    }
}
