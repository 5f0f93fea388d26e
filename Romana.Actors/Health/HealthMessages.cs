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

    // Replies, and what the supervisor tells the route manager
    /// <summary>The nodes of a subnet judged failed now; sent on every change and every status interval.</summary>
    public sealed record SubnetHealth(SubnetId Subnet, ImmutableSortedSet<NodeName> Watched, ImmutableSortedSet<NodeName> Failed)
        : IRomanaMessage;

    // Between a probe and its supervisor (always local)
    public sealed record ProbeJudged(NodeName Node, bool Healthy, int Consecutive) : INoSerializationVerificationNeeded;

    // Events (persisted by the supervisor, and told to the route manager as they are)
    public sealed record ForwarderFailed(SubnetId Subnet, NodeName Node, DateTimeOffset At, string Reason) : IHealthEvent;
    public sealed record ForwarderRecovered(SubnetId Subnet, NodeName Node, DateTimeOffset At, string Reason) : IHealthEvent;
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
