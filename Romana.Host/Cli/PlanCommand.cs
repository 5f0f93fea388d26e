using System.CommandLine;
using Akka.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Topology;
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
            real IPAM (on a journal in a temporary folder), then the VPC routes are planned for every route table within its
            budget (routeLimit minus foreignRoutes). Exits 2 when a budget cannot hold one route per subnet it must reach.
            """) { input, json };
        command.SetAction((parse, _) =>
            CommandLineGuard.RunInterruptibleAsync(cancel => RunAsync(parse.GetValue(input)!, parse.GetValue(json), Console.Out, cancel)));
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
