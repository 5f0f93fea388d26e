using System.Collections.Immutable;
using Akka.Actor;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Persistence;

namespace Romana.Actors.Health;

/// <summary>Events about node health; tagged "health".</summary>
public interface IHealthEvent : IRomanaEvent
{
    SubnetId Subnet { get; }
    NodeName Node { get; }
}

public static class HealthMessages
{
    /// <summary>What is addressed to one subnet's supervisor; <see cref="ForwarderHealth"/> routes it by subnet.</summary>
    public interface ISubnetHealthCommand
    {
        SubnetId Subnet { get; }
    }

    // Commands to a subnet's health supervisor (across the network in a cluster: each daemon asks for itself to be watched)
    /// <param name="Member">The node's cluster member address (akka.tcp://romana@host:port) when it is one: its reachability
    /// counts too.</param>
    public sealed record WatchNode(SubnetId Subnet, NodeName Node, Ipv4 Ip, string? Member = null) : ISubnetHealthCommand, IRomanaMessage;
    public sealed record UnwatchNode(SubnetId Subnet, NodeName Node) : ISubnetHealthCommand, IRomanaMessage;

    // Queries
    public sealed record GetSubnetHealth(SubnetId Subnet) : ISubnetHealthCommand, IRomanaMessage;
    /// <summary>
    /// Answered with <see cref="SubnetHealth"/> once every probe has handled what it was sent before:
    /// a simulation's barrier.
    /// </summary>
    public sealed record Sync(SubnetId Subnet) : ISubnetHealthCommand, IRomanaMessage;
    /// <summary>
    /// <see cref="Sync"/> to every subnet's supervisor at once, answered with <see cref="SyncedAll"/> once all have answered:
    /// the simulation's barrier with one ask instead of one per subnet.
    /// </summary>
    public sealed record SyncAll : IRomanaMessage;
    public sealed record SyncedAll(ImmutableArray<SubnetHealth> Subnets) : IRomanaMessage;

    // Replies, and what the supervisor tells the route manager
    /// <summary>The nodes of a subnet judged failed now; sent on every change and every status interval.</summary>
    /// <param name="RoutesThroughVersion">The <see cref="RoutesThrough.Version"/> the supervisor holds, 0 for none: the route
    /// manager sends its list again when its own differs.</param>
    public sealed record SubnetHealth(SubnetId Subnet, ImmutableSortedSet<NodeName> Watched, ImmutableSortedSet<NodeName> Failed,
        long RoutesThroughVersion = 0) : IRomanaMessage;

    // What the route manager tells a subnet's supervisor, for the standby repair (see SubnetHealthSupervisor)
    /// <summary>
    /// The routes Romana owns (confirmed in the route manager's journal) whose target is a node of the subnet, and the ENI
    /// of each node of the subnet from the manager's last cluster read. Sent to the supervisor when it changes and when the
    /// supervisor's status names another <paramref name="Version"/> (a hash of the content, never 0).
    /// </summary>
    public sealed record RoutesThrough(SubnetId Subnet, ImmutableArray<RouteThrough> Routes, ImmutableDictionary<NodeName, string> Enis,
        long Version) : IRomanaMessage
    {
        /// <summary>The list with its version computed from its content, so that any incarnation of the manager agrees.</summary>
        public static RoutesThrough Of(SubnetId subnet, IEnumerable<RouteThrough> routes, IEnumerable<KeyValuePair<NodeName, string>> enis)
        {
            var sorted = routes.OrderBy(r => r.Table, StringComparer.Ordinal).ThenBy(r => r.Cidr).ToImmutableArray();
            var byNode = enis.ToImmutableDictionary();
            var hash = 14695981039346656037UL;
            void Add(string text)
            {
                foreach (var c in text) hash = (hash ^ c) * 1099511628211UL;
                hash = (hash ^ '|') * 1099511628211UL;
            }
            Add(subnet.Value);
            foreach (var route in sorted)
            {
                Add(route.Table);
                Add(route.Cidr.ToString());
                Add(route.Node.Value);
            }
            foreach (var (node, eni) in byNode.OrderBy(e => e.Key.Value, StringComparer.Ordinal))
            {
                Add(node.Value);
                Add(eni);
            }
            return new RoutesThrough(subnet, sorted, byNode, hash == 0 ? 1 : (long)hash);
        }
    }

    /// <summary>A route of Romana's in <paramref name="Table"/> whose target in the manager's journal is <paramref name="Node"/>.</summary>
    public sealed record RouteThrough(string Table, Ipv4Cidr Cidr, NodeName Node);

    /// <summary>
    /// The route manager's receipt of a <see cref="ForwarderFailed"/>, sent before it starts the pass that moves the routes.
    /// </summary>
    public sealed record FailoverNoted(SubnetId Subnet, NodeName Node) : IRomanaMessage;

    // Between a probe and its supervisor (always local)
    public sealed record ProbeJudged(NodeName Node, bool Healthy, int Consecutive) : INoSerializationVerificationNeeded;

    // Events (persisted by the supervisor, and told to the route manager as they are)
    public sealed record ForwarderFailed(SubnetId Subnet, NodeName Node, DateTimeOffset At, string Reason) : IHealthEvent;
    public sealed record ForwarderRecovered(SubnetId Subnet, NodeName Node, DateTimeOffset At, string Reason) : IHealthEvent;
    /// <summary>
    /// The supervisor moved the routes through <paramref name="Node"/>, judged failed, to <paramref name="To"/> itself, because
    /// the route manager did not answer (or had not moved them long after it did): written after the EC2 calls succeeded,
    /// with only the routes whose call did.
    /// </summary>
    public sealed record ForwarderRoutesMovedByStandby(SubnetId Subnet, NodeName Node, NodeName To,
        ImmutableArray<StandbyMovedRoute> Routes, DateTimeOffset At, string Reason) : IHealthEvent;
}

/// <summary>Checks whether a node's Romana daemon answers. Real: a TCP connect; simulated: the simulation's say.</summary>
public interface IHealthProbe
{
    Task<bool> ProbeAsync(NodeName node, Ipv4 ip, TimeSpan timeout, CancellationToken cancellation = default);
}

/// <summary>
/// Consecutive probe results, as a value: a healthy node is judged failed after <c>failureThreshold</c> misses in a
/// row, a failed one recovered after <c>recoveryThreshold</c> successes in a row. One lost probe never fails a node.
/// </summary>
public sealed record ProbeCounter(bool Healthy, int Misses, int Successes)
{
    public static readonly ProbeCounter Initial = new(true, 0, 0);

    /// <summary>The counter after one probe, and whether the judgement changed.</summary>
    public (ProbeCounter Next, bool Changed) Observe(bool answered, int failureThreshold, int recoveryThreshold)
    {
        var next = answered ? this with { Misses = 0, Successes = Successes + 1 } : this with { Misses = Misses + 1, Successes = 0 };
        if (Healthy && next.Misses >= failureThreshold) return (next with { Healthy = false }, true);
        if (!Healthy && next.Successes >= recoveryThreshold) return (next with { Healthy = true }, true);
        return (next, false);
    }
}
