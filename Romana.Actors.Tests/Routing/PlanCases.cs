using CsCheck;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Actors.Tests.Routing;

/// <summary>Clusters for the planner's tests, written by hand or generated, and a packet walk to check plans against.</summary>
public static class PlanCases
{
    /// <summary>A cluster: subnets (id, prefix, table), nodes as (name, subnet), blocks as (block, owner, pods).</summary>
    public static RoutingInput Cluster((string Id, string Prefix, string Table)[] subnets, (string Name, string Subnet)[] nodes,
        (string Block, string Owner, int Pods)[] blocks, params (string Id, int Budget)[] tables) =>
        new([.. subnets.Select(s => new PlanSubnet(new SubnetId(s.Id), Ipv4Cidr.Parse(s.Prefix), s.Table))],
            [.. nodes.Select((n, i) => new PlanNode(new NodeName(n.Name), new SubnetId(n.Subnet), new Ipv4(0xC0A80000u + (uint)i + 1),
                $"eni-{n.Name}", true))],
            [.. blocks.Select(b => new PlanBlock(Ipv4Cidr.Parse(b.Block), new NodeName(b.Owner), b.Pods))],
            [.. tables.Select(t => new PlanTable(t.Id, t.Budget))]);

    public static RoutingInput WithHealth(RoutingInput input, Func<NodeName, bool> healthy) =>
        input with { Nodes = [.. input.Nodes.Select(n => n with { Healthy = healthy(n.Name) })] };

    public static RoutingInput WithBudget(RoutingInput input, int budget) =>
        input with { Tables = [.. input.Tables.Select(t => t with { Budget = budget })] };

    public static string Describe(RoutePlan plan) =>
        string.Join("|", plan.Tables.Select(t => t.Table + ":" + string.Join(",", t.Routes.Select(r => $"{r.Cidr}>{r.Target}"))));

    /// <summary>The route a table sends an address to: its longest matching prefix.</summary>
    public static PlannedRoute? Lookup(TablePlan table, Ipv4 address) =>
        table.Routes.Where(r => r.Cidr.Contains(address)).MaxBy(r => r.Cidr.PrefixLength);

    /// <summary>Each route of a table with the nearest route of the table that covers it (null: none does).</summary>
    public static IEnumerable<(PlannedRoute Route, PlannedRoute? Covering)> WithCovering(TablePlan table) =>
        table.Routes.Select(r => (r, table.Routes.Where(c => c.Cidr != r.Cidr && c.Cidr.Contains(r.Cidr)).MaxBy(c => c.Cidr.PrefixLength)));

    /// <summary>
    /// A packet to <paramref name="address"/> sent from <paramref name="source"/>'s subnet, by a node of it (host routes to
    /// the other nodes' blocks of its subnet, default route into the VPC) or by an instance that is not a node
    /// (<paramref name="fromNode"/> null: everything goes into the VPC), walked hop by hop. Returns null once it reaches
    /// the owner of the address's block, else why it did not.
    /// </summary>
    public static string? Walk(RoutingInput input, RoutePlan plan, PlanSubnet source, NodeName? fromNode, Ipv4 address)
    {
        var nodes = input.Nodes.ToDictionary(n => n.Name);
        var owner = nodes[input.Blocks.Single(b => b.Block.Contains(address)).Owner];
        var subnet = source;
        var at = fromNode is { } name ? nodes[name] : null;
        var lookups = 0;
        while (true)
        {
            if (at is not null)
            {
                if (at.Name == owner.Name || at.Subnet == owner.Subnet) return null; // the owner, or one host route away
                subnet = input.Subnets.Single(s => s.Id == at.Subnet);
            }
            if (++lookups > 1) return $"a second VPC lookup at {at!.Name}";
            var table = plan.Table(subnet.RouteTable);
            if (table is null) return $"table {subnet.RouteTable} is not planned";
            var route = Lookup(table, address);
            if (route is null) return $"no route to {address} in {table.Table}";
            at = nodes[route.Target];
            if (!at.Healthy) return $"dropped at {at.Name}, not healthy";
        }
    }

    /// <summary>Every pod's address (the first addresses of each block, as many as it has pods).</summary>
    public static IEnumerable<Ipv4> PodAddresses(RoutingInput input) =>
        input.Blocks.SelectMany(b => Enumerable.Range(0, Math.Min(b.Pods, 1 << (32 - b.Block.PrefixLength)))
            .Select(i => new Ipv4(b.Block.Network.Value + (uint)i)));

    // ---- generated clusters -----------------------------------------------------------------------------------------

    public static readonly Gen<RoutingInput> Clusters =
        from subnetCount in Gen.Int[1, 5]
        from tableOfSubnet in Gen.Int[0, 2].Array[subnetCount]
        from nodeSubnets in Gen.Int[0, subnetCount - 1].Array[1, 25]
        from blockOwners in Gen.Int[0, 24].Array[0, 60]
        from pods in Gen.Int[0, 64].Array[60]
        from health in Gen.Bool.Array[25]
        from budgets in Gen.Int[0, 40].Array[3]
        select Build(subnetCount, tableOfSubnet, nodeSubnets, blockOwners, pods, health, budgets);

    /// <summary>Subnet i has pod prefix 10.i.0.0/24 with /28 blocks, handed to owners in order, lowest first.</summary>
    private static RoutingInput Build(int subnetCount, int[] tableOfSubnet, int[] nodeSubnets, int[] blockOwners, int[] pods, bool[] health,
        int[] budgets)
    {
        var nodes = nodeSubnets.Select((s, i) => new PlanNode(new NodeName($"n{i}"), new SubnetId($"s{s}"), new Ipv4(0xC0A80000u + (uint)i),
            $"eni-{i}", health[i] || i == 0)).ToList();
        var nextBlock = new int[subnetCount];
        var blocks = new List<PlanBlock>();
        foreach (var (owner, i) in blockOwners.Select((o, i) => (o % nodes.Count, i)))
        {
            var subnet = nodeSubnets[owner];
            if (nextBlock[subnet] == 16) continue;
            blocks.Add(new PlanBlock(new Ipv4Cidr(new Ipv4((10u << 24) | ((uint)subnet << 16) | (uint)(nextBlock[subnet]++ * 16)), 28),
                nodes[owner].Name, pods[i]));
        }
        return new RoutingInput(
            [.. Enumerable.Range(0, subnetCount).Select(i => new PlanSubnet(new SubnetId($"s{i}"),
                new Ipv4Cidr(new Ipv4((10u << 24) | ((uint)i << 16)), 24), $"rtb-{tableOfSubnet[i]}"))],
            [.. nodes], [.. blocks],
            [.. Enumerable.Range(0, 3).Select(t => new PlanTable($"rtb-{t}", budgets[t]))]);
    }
}
