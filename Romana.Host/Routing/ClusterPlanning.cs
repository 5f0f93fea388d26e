using System.Collections.Immutable;
using Akka.Configuration;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Topology;
using Romana.Host.Composition;
using Romana.Host.Documents;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Routing;

/// <summary>
/// From a cluster file to a route plan:
/// the nodes join and get their pods' addresses through the real IPAM, then the planner runs.
/// </summary>
public static class ClusterPlanning
{
    /// <summary>Asks in flight at once while a node's pods get their addresses: enough for the node actor's batched writes.</summary>
    private const int AllocationsInFlight = 1_000;

    /// <summary>
    /// Adds every node and allocates its pods' addresses, node after node in file order so that blocks are handed out
    /// the same way on every run; a refusal is reported with the node it concerns. <paramref name="cancel"/> stops it
    /// between asks (an interrupted command).
    /// </summary>
    public static async Task LoadAsync(ClusterFile file, IpamClient ipam, CancellationToken cancel = default)
    {
        foreach (var node in file.Nodes)
            await AddNodeAsync(ipam, node).WaitAsync(cancel);
        foreach (var node in file.Nodes) await AllocatePodsAsync(ipam, node, cancel);
    }

    public static async Task AddNodeAsync(IpamClient ipam, ClusterNode node) =>
        Check(await ipam.AskAsync(new AddNode(new NodeName(node.Name), new SubnetId(node.Subnet), node.Ip, node.Eni, node.InstanceId)),
            $"node {node.Name}");

    /// <summary>The node's pods, in order, with at most <see cref="AllocationsInFlight"/> asks waiting at a time.</summary>
    public static async Task AllocatePodsAsync(IpamClient ipam, ClusterNode node, CancellationToken cancel = default)
    {
        for (var first = 0; first < node.Pods; first += AllocationsInFlight)
        {
            cancel.ThrowIfCancellationRequested();
            var replies = await Task.WhenAll(Enumerable.Range(first, Math.Min(AllocationsInFlight, node.Pods - first)).Select(p =>
                ipam.AskAsync(new Allocate(new NodeName(node.Name), new AllocationKey($"{node.Name}/pod-{p}"),
                    $"default/{node.Name}-pod-{p}")))).WaitAsync(cancel);
            foreach (var reply in replies) Check(reply, $"pods of node {node.Name}");
        }
    }

    /// <summary>Loads the cluster into an IPAM on a temporary journal and plans it: what `romana plan` does.</summary>
    public static async Task<(ClusterTopology Topology, IpamStateView State, RoutingInput Input, RoutePlan? Plan,
        ImmutableArray<BudgetShortfall> Shortfalls)> PlanAsync(ClusterFile file, CancellationToken cancel = default)
    {
        var topology = TopologyCarver.Carve(file.Topology);
        await using var journal = await Ipam.FreshJournal.SqliteAsync();
        await using var romana = await RomanaHost.StartIpamAsync(topology, journal.Settings,
            ConfigurationFactory.ParseString("akka.loglevel = WARNING"));
        await LoadAsync(file, romana.Ipam, cancel);
        var state = (IpamStateView)await romana.Ipam.AskAsync(new GetIpamState());
        var input = InputOf(file, topology, state);
        var plan = RoutePlanner.Plan(input, null, out var shortfalls);
        return (topology, state, input, plan, shortfalls);
    }

    /// <summary>
    /// The planner's view: blocks with their pod counts from IPAM,
    /// ENIs and health from the file (or <paramref name="healthy"/>).
    /// </summary>
    public static RoutingInput InputOf(ClusterFile file, ClusterTopology topology, IpamStateView state, Func<string, bool>? healthy = null)
    {
        var subnets = file.Subnets.Select(s => new PlanSubnet(new SubnetId(s.Id), topology.FindSubnet(new SubnetId(s.Id))!.PodPrefix,
            s.RouteTable));
        var nodes = file.Nodes.Select(n => new PlanNode(new NodeName(n.Name), new SubnetId(n.Subnet), Ipv4.Parse(n.Ip), n.Eni,
            healthy?.Invoke(n.Name) ?? n.Healthy));
        var blocks = state.Nodes.SelectMany(node => node.Blocks.Select(block =>
            new PlanBlock(block, node.Node, node.Allocations.Count(a => block.Contains(a.Address)))));
        var tables = file.RouteTables.Select(t => new PlanTable(t.Id, file.RouteLimit - t.ForeignRoutes));
        return new RoutingInput([.. subnets], [.. nodes], [.. blocks], [.. tables]);
    }

    /// <summary>The document `romana plan --json` prints, and `romana simulate --json` as its final state.</summary>
    public static PlanDocument Document(ClusterFile file, ClusterTopology topology, IpamStateView state, RoutingInput input, RoutePlan plan)
    {
        var blocksOf = state.Nodes.ToDictionary(n => n.Node.Value, n => n.Blocks);
        var health = input.Nodes.ToDictionary(n => n.Name.Value, n => n.Healthy);
        return PlanDocument.Of(topology.Subnets.Select(s => (s.Id.Value, s.PodPrefix)),
            file.Nodes.Select(n => new PlanDocument.Node(n.Name, n.Subnet, n.Ip, blocksOf.GetValueOrDefault(n.Name, []), health[n.Name])),
            file.RouteTables.Select(t => plan.Table(t.Id)).OfType<TablePlan>(), plan.ForwardedFraction);
    }

    private static void Check(IpamReply reply, string what)
    {
        if (reply is Failed failed) throw new ClusterFileException($"{what}: {failed.Error.Message}");
    }
}
