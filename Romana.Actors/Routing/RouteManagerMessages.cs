using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;

namespace Romana.Actors.Routing;

/// <summary>Events about VPC routes; tagged "routes".</summary>
public interface IRouteEvent : IRomanaEvent;

public static class RouteManagerMessages
{
    // Commands
    /// <summary>
    /// Compare the wanted routes with EC2 and send the calls that differ;
    /// several requests during a pass make one more pass.
    /// </summary>
    public sealed record Reconcile(string Reason);

    // Queries
    public sealed record GetRouteState;

    // Replies
    /// <summary>
    /// The manager's state; <paramref name="Busy"/> while work waits or is under way; <paramref name="Passes"/>: the times it
    /// became idle after a plan (or after a reconcile that could not plan) since it started.
    /// </summary>
    public sealed record RouteManagerView(ImmutableSortedSet<string> Tables, ImmutableArray<(string Table, OwnedRoute Route)> Routes,
        RoutePlan? LastPlan, string? Refusal, DateTimeOffset? LastPassAt, long Passes, bool Busy,
        ImmutableSortedSet<NodeName> Failed, ImmutableSortedSet<SubnetId> WithoutHealthyForwarder, string? WaitingFor);

    // Events (reasons: plan, failover, drift repair, budget)
    public sealed record RouteTableAdopted(string Table, DateTimeOffset At, string Reason) : IRouteEvent;
    /// <summary>
    /// Written before CreateRoute is sent:
    /// from here the route is Romana's, so a crash cannot leave one it does not know.
    /// </summary>
    public sealed record RouteClaimed(string Table, Ipv4Cidr Cidr, NodeName Target, string Eni, DateTimeOffset At, string Reason)
        : IRouteEvent;
    public sealed record RouteCreated(string Table, Ipv4Cidr Cidr, NodeName Target, string Eni, DateTimeOffset At, string Reason)
        : IRouteEvent;
    public sealed record RouteReplaced(string Table, Ipv4Cidr Cidr, NodeName PreviousTarget, NodeName Target, string Eni, DateTimeOffset At,
        string Reason) : IRouteEvent;
    public sealed record RouteDeleted(string Table, Ipv4Cidr Cidr, NodeName Target, DateTimeOffset At, string Reason) : IRouteEvent;
    /// <summary>A claimed route turned out to exist with another target: it is not Romana's and is left alone.</summary>
    public sealed record RouteClaimDropped(string Table, Ipv4Cidr Cidr, DateTimeOffset At, string Reason) : IRouteEvent;
    public sealed record RouteLimitLearned(string Table, int Limit, DateTimeOffset At, string Reason) : IRouteEvent;
    public sealed record Ec2CallFailed(string Action, string Table, string Code, string Message, DateTimeOffset At, string Reason)
        : IRouteEvent;
    public sealed record PlanRefused(string Shortfalls, DateTimeOffset At, string Reason) : IRouteEvent;
    public sealed record SourceDestCheckDisabled(NodeName Node, string Eni, DateTimeOffset At, string Reason) : IRouteEvent;
    /// <summary>
    /// What each managed table may hold for pod routes (limit minus routes Romana does not own),
    /// recorded when it changes.
    /// </summary>
    /// <summary>Also which subnets each table serves, so that a replay can tell which pods a table's routes reach.</summary>
    public sealed record RouteBudgetsObserved(ImmutableDictionary<string, int> Budgets, DateTimeOffset At, string Reason,
        ImmutableDictionary<string, ImmutableArray<SubnetId>>? Serves = null) : IRouteEvent;
    /// <summary>Every node of a subnet is judged failed: its routes are kept where they are, and this is said loudly.</summary>
    public sealed record NoHealthyForwarder(SubnetId Subnet, ImmutableArray<NodeName> Failed, DateTimeOffset At, string Reason)
        : IRouteEvent;
}

/// <summary>A route Romana owns; unconfirmed while its CreateRoute has been sent but not seen to succeed.</summary>
public sealed record OwnedRoute(Ipv4Cidr Cidr, NodeName Target, string Eni, bool Confirmed);

/// <summary>What the planner needs from the cluster: subnets, nodes with their ENI and health, blocks with their pods.</summary>
public sealed record RoutingSnapshot(ImmutableArray<PlanSubnet> Subnets, ImmutableArray<PlanNode> Nodes, ImmutableArray<PlanBlock> Blocks);

/// <summary>Where the route manager reads the cluster from (IPAM in production; a fixed view in tests).</summary>
public interface IRoutingSource
{
    Task<RoutingSnapshot> ReadAsync(CancellationToken cancellation = default);

    /// <summary>
    /// Subscribes the route manager (<paramref name="context"/>'s actor) to the subnets' ownership changes
    /// (<see cref="Ipam.OwnershipFeed.OwnershipChanged"/>), so that its view follows IPAM between reads; a fixed view publishes none.
    /// </summary>
    void Subscribe(Akka.Actor.IActorContext context)
    {
    }
}
