using System.Collections.Immutable;
using Akka.Actor;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;

namespace Romana.Actors.Dataplane;

public static class HostAgentMessages
{
    // Commands
    /// <summary>The subnet's members and block owners as they are now; the agent routes to every other node's blocks.</summary>
    public sealed record ApplyOwnership(SubnetSnapshot Subnet, string Reason) : INoSerializationVerificationNeeded;

    // Queries
    /// <summary>Replies <see cref="HostRoutesNow"/> once every change asked so far has reached the kernel (or failed).</summary>
    public sealed record GetHostRoutes : INoSerializationVerificationNeeded;

    // Replies
    /// <param name="Routes">What the agent last read back from or applied to the kernel.</param>
    /// <param name="LastError">Why the last attempt failed, when it did; the agent retries at the next resync.</param>
    public sealed record HostRoutesNow(ImmutableSortedDictionary<Ipv4Cidr, Ipv4> Routes, string? LastError)
        : INoSerializationVerificationNeeded;
}
