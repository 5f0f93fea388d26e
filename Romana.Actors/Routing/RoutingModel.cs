using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

// What the planner reads: the cluster as IPAM and health know it, and the route tables as EC2 shows them.

public sealed record PlanSubnet(SubnetId Id, Ipv4Cidr PodPrefix, string RouteTable);

public sealed record PlanNode(NodeName Name, SubnetId Subnet, Ipv4 Ip, string Eni, bool Healthy);

public sealed record PlanBlock(Ipv4Cidr Block, NodeName Owner, int Pods);

/// <summary>A managed route table and how many pod routes it may hold: its limit minus the routes Romana does not own.</summary>
public sealed record PlanTable(string Id, int Budget);

public sealed record RoutingInput(
    ImmutableArray<PlanSubnet> Subnets,
    ImmutableArray<PlanNode> Nodes,
    ImmutableArray<PlanBlock> Blocks,
    ImmutableArray<PlanTable> Tables);

// What it writes.

public sealed record PlannedRoute(Ipv4Cidr Cidr, NodeName Target, string Eni);

public sealed record TablePlan(string Table, int Budget, ImmutableArray<PlannedRoute> Routes);

/// <summary>
/// Routes per table, the share of pods reached through a forwarder (over every table and every pod of the subnets it
/// routes to), and the subnets that have blocks but no healthy node to forward for them.
/// </summary>
public sealed record RoutePlan(ImmutableArray<TablePlan> Tables, double ForwardedFraction, ImmutableArray<SubnetId> WithoutHealthyNode)
{
    public TablePlan? Table(string id) => Tables.FirstOrDefault(t => t.Table == id);
}

/// <summary>A table that cannot hold even one route per subnet it must reach.</summary>
public sealed record BudgetShortfall(string Table, int Needed, int Budget)
{
    public override string ToString() =>
        $"route table {Table} needs {Needed} routes (one per subnet with pods it must reach) but its budget is {Budget}";
}
