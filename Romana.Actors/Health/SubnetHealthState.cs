using System.Collections.Immutable;
using Romana.Actors.Addressing;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Health;

/// <summary>
/// The judgements of one subnet's forwarder supervisor, as a value: which nodes are judged failed. The supervisor decides
/// with it and folds its events into it; a journal replay folds the same events the same way.
/// </summary>
public sealed record SubnetHealthState(SubnetId Subnet, ImmutableSortedSet<NodeName> Failed)
{
    public static SubnetHealthState Empty(SubnetId subnet) => new(subnet, ImmutableSortedSet<NodeName>.Empty);

    public bool IsFailed(NodeName node) => Failed.Contains(node);

    public SubnetHealthState Apply(IHealthEvent e) => e switch
    {
        ForwarderFailed failed => this with { Failed = Failed.Add(failed.Node) },
        ForwarderRecovered recovered => this with { Failed = Failed.Remove(recovered.Node) },
        ForwarderRoutesMovedByStandby => this, // routes are the route manager's state; the judgement stands
        _ => throw new ArgumentException($"not a health event: {e.GetType().Name}", nameof(e)),
    };

    /// <summary>A watched node judged healthy or not: an event only when the judgement changes.</summary>
    public IHealthEvent? DecideJudgement(NodeName node, bool watched, bool healthy, string reason, DateTimeOffset now) =>
        !watched || healthy != IsFailed(node) ? null
        : healthy ? new ForwarderRecovered(Subnet, node, now, reason)
        : new ForwarderFailed(Subnet, node, now, reason);

    /// <summary>A node that leaves the subnet is no longer failed: its judgement ends with it.</summary>
    public IHealthEvent? DecideUnwatch(NodeName node, DateTimeOffset now) =>
        IsFailed(node) ? new ForwarderRecovered(Subnet, node, now, "node removed from the subnet") : null;
}
