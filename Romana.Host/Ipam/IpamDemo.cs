using System.CommandLine;
using System.Diagnostics;
using Akka.Configuration;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Host.Cli;
using Romana.Host.Composition;
using Romana.Host.Documents;
using Romana.Host.Persistence;
using Spectre.Console;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Ipam;

/// <summary>
/// The IPAM on the embedded default: nodes join every subnet of the configured topology and their pods get addresses,
/// all persisted in the SQLite journal. Run twice, the second run recovers everything and hands out the same addresses.
/// </summary>
public static class IpamDemo
{
    public static Command Command()
    {
        var config = new Option<string>("--config")
        {
            Description = "HOCON configuration with romana.topology",
            DefaultValueFactory = _ => "hocon/romana.conf"
        };
        var nodes = new Option<int>("--nodes-per-subnet") { Description = "Nodes to add to every subnet", DefaultValueFactory = _ => 3 };
        var pods = new Option<int>("--pods-per-node")
        {
            Description = "Pod addresses to allocate on every node",
            DefaultValueFactory = _ => 100
        };
        var journal = new Option<string?>("--journal") { Description = "SQLite journal file (default: romana.persistence.sqlite.path)" };
        foreach (var count in new[] { nodes, pods })
            count.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<int>() is < 1 or > 10_000) r.AddError($"{r.Option.Name} must be between 1 and 10000");
            });
        var command = new Command("demo", """
            Adds nodes to every subnet of the configured topology and allocates pod addresses for them, durably, on the
            embedded SQLite journal; prints the prefixes, each node's blocks, and where the journal is.
            """) { config, nodes, pods, journal };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(cancel => RunAsync(parse.GetValue(config)!,
            parse.GetValue(nodes), parse.GetValue(pods), parse.GetValue(journal), cancel)));
        return command;
    }

    private static async Task<int> RunAsync(string configPath, int nodesPerSubnet, int podsPerNode, string? journalPath,
        CancellationToken cancel)
    {
        var config = RomanaConfig.Load(configPath);
        var topology = RomanaConfig.ReadTopology(config);
        var total = (long)topology.Subnets.Count() * nodesPerSubnet * podsPerNode;
        if (total > DocumentLimits.MostPods)
        {
            Console.Error.WriteLine($"romana: --nodes-per-subnet {nodesPerSubnet} and --pods-per-node {podsPerNode} in " +
                $"{topology.Subnets.Count()} subnets make {total:N0} pods, more than the {DocumentLimits.MostPods:N0} a demo may allocate");
            return CommandLineGuard.BadInput;
        }
        var persistence = JournalSettings.From(config);
        if (journalPath is not null) persistence = JournalSettings.Sqlite(journalPath);
        // One writer per journal file: a daemon (or another demo) on it refuses this run before it is opened.
        using var journalLock = JournalLock.Acquire(persistence);

        var clock = Stopwatch.StartNew();
        await using var romana = await RomanaHost.StartIpamAsync(topology, persistence,
            ConfigurationFactory.ParseString("akka.loglevel = WARNING").WithFallback(config));
        var ipam = romana.Ipam;
        var recovered = await CountAddressesAsync(ipam);
        AnsiConsole.MarkupLine($"Journal: [bold]{Markup.Escape(persistence.Describe())}[/] — " +
            $"recovered {recovered} addresses in {clock.ElapsedMilliseconds} ms");

        var nodes = topology.Subnets.SelectMany(subnet => Enumerable.Range(1, nodesPerSubnet).Select(i =>
            (Subnet: subnet, Node: new NodeName($"{subnet.Id}-node-{i}"), Ip: NodeIp(subnet.VpcCidr, i)))).ToList();
        foreach (var (subnet, node, ip) in nodes)
            Check(await ipam.AskAsync(new AddNode(node, subnet.Id, ip.ToString())), $"add node {node}");

        clock.Restart();
        await Task.WhenAll(nodes.Select(async n =>
        {
            for (var p = 0; p < podsPerNode && !cancel.IsCancellationRequested; p++)
                Check(await ipam.AskAsync(new Allocate(n.Node, new AllocationKey($"{n.Node}/pod-{p}"), $"default/pod-{p}")),
                    $"allocate on {n.Node}");
        }));
        cancel.ThrowIfCancellationRequested();
        var allocations = nodes.Count * podsPerNode;
        var held = await CountAddressesAsync(ipam);
        AnsiConsole.MarkupLine($"{allocations} allocations on {nodes.Count} nodes answered in {clock.ElapsedMilliseconds} ms: " +
            $"{held - recovered} new (each persisted before its answer), " +
            $"{allocations - (held - recovered)} already held with the same address");

        var state = (IpamStateView)await ipam.AskAsync(new GetIpamState());
        var prefixes = new Table().Title("pod prefixes").AddColumns("zone", "subnet", "pod prefix", "VPC CIDR", "route table");
        foreach (var zone in topology.Zones)
            foreach (var subnet in zone.Subnets)
                prefixes.AddRow(zone.Name.Value, subnet.Id.Value, subnet.PodPrefix.ToString(), subnet.VpcCidr?.ToString() ?? "-",
                    subnet.RouteTable ?? "-");
        AnsiConsole.Write(prefixes);

        var nodeTable = new Table().Title("nodes").AddColumns("node", "node IP", "blocks", "pods");
        foreach (var subnet in state.Subnets)
            foreach (var member in subnet.Members)
            {
                var node = state.Nodes.Single(n => n.Node == member.Node);
                nodeTable.AddRow(member.Node.Value, member.Ip.ToString(), string.Join(", ", node.Blocks),
                    node.Allocations.Length.ToString());
            }
        AnsiConsole.Write(nodeTable);
        AnsiConsole.MarkupLine("Run it again: the nodes and keys come back from the journal and keep their addresses.");
        return CommandLineGuard.Ok;
    }

    private static Ipv4 NodeIp(Ipv4Cidr? vpc, int index) =>
        new((vpc?.Network.Value ?? Ipv4.Parse("192.168.0.0").Value) + 10 + (uint)index);

    private static async Task<int> CountAddressesAsync(IpamClient ipam) =>
        await ipam.AskAsync(new GetIpamState()) is IpamStateView view ? view.Nodes.Sum(n => n.Allocations.Length) : 0;

    private static void Check(IpamReply reply, string what)
    {
        if (reply is Failed failed) throw new InvalidOperationException($"{what}: {failed.Error}");
    }
}
