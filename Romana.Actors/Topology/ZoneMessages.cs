using System.Collections.Immutable;
using Akka.Actor;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Ipam;
using Romana.Actors.Persistence;

namespace Romana.Actors.Topology;

public static class ZoneMessages
{
    // Queries
    /// <summary>Replies <see cref="ZoneReady"/> once the zone's prefixes are persisted, or <see cref="ZoneFailed"/>.</summary>
    public sealed record GetSubnets : IRomanaMessage;

    // Replies
    public sealed record ZoneReady(ZoneName Zone, ImmutableDictionary<SubnetId, IActorRef> Subnets) : IRomanaMessage;
    public sealed record ZoneFailed(ZoneName Zone, IpamError Error) : IRomanaMessage;

    // Events
    public sealed record ZoneDeclared(ZoneName Zone, Ipv4Cidr PodPrefix, DateTimeOffset At, string Reason) : IIpamEvent;
    public sealed record SubnetPrefixAssigned(ZoneName Zone, SubnetId Subnet, Ipv4Cidr PodPrefix, DateTimeOffset At, string Reason)
        : IIpamEvent;
}
