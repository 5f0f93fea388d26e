using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Configuration;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Topology;
using Romana.Host.Composition;
using Romana.Host.Documents;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Routing;

/// <summary>
/// From a cluster file to a route plan:
/// the nodes join and get their pods' addresses through the real IPAM, then the planner runs.
/// </summary>
public static class ClusterPlanning
{
    /// <summary>Allocations asked and not yet answered, at most, in all: enough for every node actor's batched writes.</summary>
    private const int AllocationsInFlight = 1_000;

    /// <summary>
    /// Subnets loading at once: enough to keep two cores busy while each subnet waits for its actors' answers. On these two
    /// busy cores, 2 to 64 at once loaded the 5,040-node cluster within the machine's noise; more at once keep more asks in
    /// flight, and more of them outlive a gen0 collection.
    /// </summary>
    private const int SubnetsAtOnce = 4;

    /// <summary>
    /// Adds every node and allocates its pods' addresses. Within a subnet, node after node in file order, each joining and
    /// then getting its pods' addresses (pod 0 first), so that the subnet hands out its blocks the same way on every run;
    /// up to <see cref="SubnetsAtOnce"/> subnets proceed side by side, as their blocks do not depend on each other, with
    /// at most <see cref="AllocationsInFlight"/> allocations waiting in all. A subnet stops at its first refusal; of all
    /// refusals, the one of the node first in the file is reported, naming the node. <paramref name="cancel"/> stops it
    /// between asks (an interrupted command).
    /// </summary>
    public static async Task LoadAsync(ClusterFile file, IpamClient ipam, CancellationToken cancel = default)
    {
        var order = file.Nodes.Select((node, index) => (node.Name, index)).ToDictionary(n => n.Name, n => n.index);
        // Not disposed: asks still under way when the load is cancelled release it later (it holds no handle).
        var inFlight = new SemaphoreSlim(AllocationsInFlight);
        var refusals = new ConcurrentBag<(int Node, ClusterFileException Refusal)>();
        await Parallel.ForEachAsync(file.Nodes.GroupBy(n => n.Subnet),
            new ParallelOptions { MaxDegreeOfParallelism = SubnetsAtOnce, CancellationToken = cancel }, async (subnet, token) =>
            {
                foreach (var node in subnet)
                {
                    try
                    {
                        await AddNodeAsync(ipam, node).WaitAsync(token);
                        await AllocatePodsAsync(ipam, node, inFlight, token);
                    }
                    catch (ClusterFileException refused)
                    {
                        refusals.Add((order[node.Name], refused));
                        return;
                    }
                }
            });
        if (!refusals.IsEmpty) throw refusals.MinBy(r => r.Node).Refusal;
    }

    public static async Task AddNodeAsync(IpamClient ipam, ClusterNode node) =>
        Check(await ipam.AskAsync(new AddNode(new NodeName(node.Name), new SubnetId(node.Subnet), node.Ip, node.Eni, node.InstanceId)),
            $"node {node.Name}");

    /// <summary>The node's pods, asked in order, with at most <see cref="AllocationsInFlight"/> asks waiting at a time.</summary>
    public static Task AllocatePodsAsync(IpamClient ipam, ClusterNode node, CancellationToken cancel = default) =>
        AllocatePodsAsync(ipam, node, new SemaphoreSlim(AllocationsInFlight), cancel);

    /// <summary>The node's pods, asked in order (pod 0 gets the lowest address), each once <paramref name="inFlight"/> lets it.</summary>
    private static async Task AllocatePodsAsync(IpamClient ipam, ClusterNode node, SemaphoreSlim inFlight, CancellationToken cancel)
    {
        var replies = new Task<IpamReply>[node.Pods];
        for (var p = 0; p < node.Pods; p++)
        {
            await inFlight.WaitAsync(cancel);
            replies[p] = AskAsync(new Allocate(new NodeName(node.Name), new AllocationKey($"{node.Name}/pod-{p}"),
                $"default/{node.Name}-pod-{p}"));
        }
        foreach (var reply in await Task.WhenAll(replies).WaitAsync(cancel)) Check(reply, $"pods of node {node.Name}");

        async Task<IpamReply> AskAsync(Allocate allocate)
        {
            try
            {
                return await ipam.AskAsync(allocate);
            }
            finally
            {
                inFlight.Release();
            }
        }
    }

    /// <summary>
    /// Loads the cluster into an IPAM and plans it: what `romana plan` does. A dry run keeps nothing, so its journal is in
    /// memory unless <paramref name="journal"/> names another (the tests compare the two).
    /// </summary>
    public static async Task<(ClusterTopology Topology, IpamStateView State, RoutingInput Input, RoutePlan? Plan,
        ImmutableArray<BudgetShortfall> Shortfalls)> PlanAsync(ClusterFile file, CancellationToken cancel = default,
        JournalSettings? journal = null)
    {
        var topology = TopologyCarver.Carve(file.Topology);
        await using var romana = await RomanaHost.StartIpamAsync(topology, journal ?? JournalSettings.InMemory(),
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
