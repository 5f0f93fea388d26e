using Akka.Actor;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Actors.Observability;

/// <summary>
/// What the actors tell the local event stream besides their persisted events, for the metrics and logs of the process they
/// run in: never persisted, never sent to another member. Published after the journal write they describe.
/// </summary>
public static class Observed
{
    /// <summary>
    /// A node's addresses as its actor holds them: after each journal write and after recovery. <paramref name="Held"/>:
    /// allocated; <paramref name="Free"/>: neither allocated nor fenced by a reservation, in the node's blocks;
    /// <paramref name="FirstBlock"/>: one of its blocks (it tells the subnet), null while it has none.
    /// </summary>
    public sealed record NodeUsage(NodeName Node, int Blocks, int Held, int Free, Ipv4Cidr? FirstBlock)
        : INoSerializationVerificationNeeded;

    /// <summary>
    /// A supervisor's judgement as the route manager received it (from whichever member the supervisor runs on), so that
    /// the failover's repair is timed where the routes are moved.
    /// </summary>
    public sealed record HealthNoted(Health.IHealthEvent Judgement) : INoSerializationVerificationNeeded;

    /// <summary>The route manager's journal state after each write and after recovery (immutable: published as it is).</summary>
    public sealed record RoutesNow(RouteManagerState State) : INoSerializationVerificationNeeded;

    /// <summary>
    /// A journal write of <paramref name="Writer"/> ("node", "routes", "health") stored, <paramref name="Took"/> from the
    /// persist call to its handler (real time, Stopwatch), several events of one batch counted as one write.
    /// </summary>
    public sealed record JournalWritten(string Writer, TimeSpan Took) : INoSerializationVerificationNeeded;

    /// <summary>A journal write of <paramref name="Writer"/> failed or was rejected.</summary>
    public sealed record JournalWriteFailed(string Writer, string Cause) : INoSerializationVerificationNeeded;
}
