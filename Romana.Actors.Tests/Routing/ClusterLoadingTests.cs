using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;
using Romana.Host.Composition;
using Romana.Host.Documents;
using Romana.Host.Persistence;
using Romana.Host.Routing;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Routing;

/// <summary>
/// Loading a cluster file into the real IPAM (`romana plan`, the start of `romana simulate`): subnets load side by side,
/// but each subnet's blocks go to its nodes in file order, so the plan is the same on every run and on every journal.
/// </summary>
public class ClusterLoadingTests
{
    private static string Example(string name) => Path.Combine(Paths.RepositoryRoot, "hocon", "examples", name);

    /// <summary>
    /// Six subnets whose nodes are interleaved in the file (a seeded shuffle), with 10 to 130 pods: one to three /26 blocks
    /// each, so a node asks its subnet for a block more than once.
    /// </summary>
    private static ClusterFile Interleaved()
    {
        var document = ClusterGenerator.Generate(new ClusterGenerator.Shape(Zones: 2, SubnetsPerZone: 3, NodesPerSubnet: 8));
        var random = new Random(7);
        var nodes = document.Nodes!.Select((node, i) => node! with { Pods = 10 + 40 * (i % 4) }).OrderBy(_ => random.Next()).ToList();
        return ClusterFileReader.FromDocument(document with { Nodes = nodes });
    }

    private static async Task<IpamStateView> LoadAsync(ClusterFile file, JournalSettings journal,
        Func<ClusterFile, IpamClient, Task> load)
    {
        await using var romana = await RomanaHost.StartIpamAsync(TopologyCarver.Carve(file.Topology), journal, TempJournal.Quiet);
        await load(file, romana.Ipam);
        return (IpamStateView)await romana.Ipam.AskAsync(new GetIpamState());
    }

    /// <summary>
    /// How the load went before subnets loaded side by side: every node joins in file order, then node after node gets its pods.
    /// </summary>
    private static async Task LoadOneByOneAsync(ClusterFile file, IpamClient ipam)
    {
        foreach (var node in file.Nodes) await ClusterPlanning.AddNodeAsync(ipam, node);
        foreach (var node in file.Nodes) await ClusterPlanning.AllocatePodsAsync(ipam, node);
    }

    private static Dictionary<string, (Ipv4Cidr[] Blocks, (string Key, Ipv4 Address)[] Allocations)> Holdings(IpamStateView state) =>
        state.Nodes.ToDictionary(n => n.Node.Value, n => (n.Blocks.Order().ToArray(),
            n.Allocations.Select(a => (a.Key.Value, a.Address)).Order().ToArray()));

    [Fact]
    public async Task Each_subnet_gives_its_blocks_to_its_nodes_in_file_order_and_each_node_its_addresses_in_pod_order()
    {
        var file = Interleaved();
        var topology = TopologyCarver.Carve(file.Topology);
        var state = await LoadAsync(file, JournalSettings.InMemory(), (f, ipam) => ClusterPlanning.LoadAsync(f, ipam));

        var held = state.Nodes.ToDictionary(n => n.Node.Value);
        Assert.Equal(file.Nodes.Count, held.Count);
        foreach (var subnet in file.Subnets)
        {
            // Lowest free block first, node after node in file order: each node's blocks follow the previous node's.
            var next = topology.FindSubnet(new SubnetId(subnet.Id))!.PodPrefix.Network.Value;
            foreach (var node in file.Nodes.Where(n => n.Subnet == subnet.Id))
            {
                var blocks = (node.Pods + 63) / 64;
                var expected = Enumerable.Range(0, blocks).Select(b => new Ipv4Cidr(new Ipv4(next + (uint)(64 * b)), 26)).ToArray();
                Assert.Equal(expected, held[node.Name].Blocks.Order().ToArray());
                next += (uint)(64 * blocks);
                // Pod p of the node holds the p-th address of its blocks.
                var addresses = held[node.Name].Allocations.ToDictionary(a => a.Key.Value, a => a.Address.Value);
                Assert.Equal(Enumerable.Range(0, node.Pods).Select(p => expected[0].Network.Value + (uint)p),
                    Enumerable.Range(0, node.Pods).Select(p => addresses[$"{node.Name}/pod-{p}"]));
            }
        }
    }

    [Fact]
    public async Task Loading_side_by_side_on_memory_ends_exactly_where_loading_one_by_one_on_a_SQLite_file_did()
    {
        var file = Interleaved();
        using var journal = new TempJournal();
        var reference = Holdings(await LoadAsync(file, journal.Settings, LoadOneByOneAsync));
        var loaded = Holdings(await LoadAsync(file, JournalSettings.InMemory(), (f, ipam) => ClusterPlanning.LoadAsync(f, ipam)));

        Assert.Equal(reference.Keys.Order(), loaded.Keys.Order());
        foreach (var (node, holding) in reference)
        {
            Assert.Equal(holding.Blocks, loaded[node].Blocks);
            Assert.Equal(holding.Allocations, loaded[node].Allocations);
        }
        Assert.Equal(file.Nodes.Sum(n => n.Pods), loaded.Values.Sum(h => h.Allocations.Length));
    }

    [Theory]
    [InlineData("three-zones.json")]
    [InlineData("one-zone-60-nodes.json")]
    public async Task The_plan_is_the_same_on_the_memory_journal_as_on_a_SQLite_file_and_on_every_run(string example)
    {
        var file = ClusterFileReader.Read(Example(example));
        async Task<string> PlanAsync(JournalSettings? journal)
        {
            var (topology, state, input, plan, _) = await ClusterPlanning.PlanAsync(file, journal: journal);
            return ClusterPlanning.Document(file, topology, state, input, plan!).ToJson();
        }

        using var sqlite = new TempJournal();
        var onFile = await PlanAsync(sqlite.Settings);
        Assert.Contains("\"routes\"", onFile);
        Assert.True(sqlite.CountEvents("NodeJoined") > 0, "the SQLite journal was not written");
        Assert.Equal(onFile, await PlanAsync(null));
        Assert.Equal(onFile, await PlanAsync(JournalSettings.InMemory()));
    }

    [Fact]
    public async Task Of_several_refused_nodes_the_one_first_in_the_file_is_reported_even_when_another_subnet_fails_sooner()
    {
        var document = ClusterGenerator.Generate(
            new ClusterGenerator.Shape(Zones: 1, SubnetsPerZone: 2, NodesPerSubnet: 3, PodsPerNode: 2));
        var file = ClusterFileReader.FromDocument(document);
        // File order: b01, b02, b03 (refused: third of its subnet), a01 (refused: first of its subnet, so it fails first).
        var b = file.Nodes.Where(n => n.Subnet == "subnet-a02").ToList();
        var a = file.Nodes.Where(n => n.Subnet == "subnet-a01").ToList();
        ClusterNode Outside(ClusterNode node) => node with { Ip = "192.168.0.1" };
        file = file with { Nodes = [b[0], b[1], Outside(b[2]), Outside(a[0]), a[1], a[2]] };

        var refused = await Assert.ThrowsAsync<ClusterFileException>(() =>
            LoadAsync(file, JournalSettings.InMemory(), (f, ipam) => ClusterPlanning.LoadAsync(f, ipam)));
        Assert.Equal($"node {b[2].Name}: ip: 192.168.0.1 is not inside subnet subnet-a02's VPC CIDR 10.0.0.16/28", refused.Message);
    }

    [Fact]
    public void The_generated_cluster_is_the_one_of_the_figures_and_reads_back_as_written()
    {
        var document = ClusterGenerator.Generate(new ClusterGenerator.Shape());
        var file = ClusterFileReader.Parse(ClusterGenerator.ToJson(document), "generated.json");

        Assert.Equal(5_040, file.Nodes.Count);
        Assert.Equal(60, file.Subnets.Count);
        Assert.Equal(["rtb-a", "rtb-b", "rtb-c"], file.RouteTables.Select(t => t.Id));
        Assert.All(file.RouteTables, t => Assert.Equal(0, t.ForeignRoutes));
        Assert.Equal(100, file.RouteLimit);
        Assert.All(file.Nodes, n => Assert.Equal(20, n.Pods));
        Assert.All(file.Subnets.GroupBy(s => s.Zone), zone => Assert.Single(zone.Select(s => s.RouteTable).Distinct()));
        Assert.All(file.Nodes.GroupBy(n => n.Subnet), subnet => Assert.Equal(84, subnet.Count()));
        Assert.Equal(file.Nodes, ClusterFileReader.FromDocument(document).Nodes);
        Assert.Equal(60, TopologyCarver.Carve(file.Topology).Subnets.Count());
    }

    [Fact]
    public async Task Plan_generate_writes_a_cluster_file_that_plan_reads_and_refuses_a_bad_count_in_one_line()
    {
        using var folder = new TempFolder();
        var romana = Path.Combine(AppContext.BaseDirectory, "romana.dll");
        var (exit, output, error) = await Processes.RunAsync("dotnet",
            [romana, "plan", "generate", "--zones", "2", "--subnets-per-zone", "2", "--nodes-per-subnet", "3", "--pods-per-node", "70"],
            Paths.RepositoryRoot);
        Assert.True(exit == 0, error);
        var file = ClusterFileReader.Parse(output);
        Assert.Equal(12, file.Nodes.Count);
        Assert.All(file.Nodes, n => Assert.Equal(70, n.Pods));

        // As a user runs it: `plan` runs again as a child with its runtime settings (BatchRuntime), whose output is the plan's.
        (exit, var plan, error) = await Processes.RunAsync("dotnet", [romana, "plan", "--input", folder.Write("generated.json", output),
            "--json"], Paths.RepositoryRoot);
        Assert.True(exit == 0, error);
        Assert.Equal(24, System.Text.Json.Nodes.JsonNode.Parse(plan)!["nodes"]!.AsArray().Sum(n => n!["blocks"]!.AsArray().Count));

        (exit, _, error) = await Processes.RunAsync("dotnet", [romana, "plan", "generate", "--zones", "0"], Paths.RepositoryRoot);
        Assert.Equal(2, exit);
        Assert.Equal("romana: --zones must be between 1 and 26 (not 0)", error.Trim().Split('\n')[0]);
        (exit, _, error) = await Processes.RunAsync("dotnet", [romana, "plan", "generate", "--nodes-per-subnet", "2000"],
            Paths.RepositoryRoot);
        Assert.Equal(2, exit);
        Assert.Equal("romana: plan generate: 60 subnets, 120,000 nodes, 2,400,000 pods: a cluster file holds at most 1,000 subnets, " +
            "100,000 nodes and 1,000,000 pods", error.Trim());
    }
}
