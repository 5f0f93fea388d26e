using Romana.Actors.Addressing;
using Romana.Actors.Persistence;

namespace Romana.Actors.Ipam;

/// <summary>
/// Where the IPAM's actors run. Local: every zone, subnet and node actor in this process under one front door (plan,
/// simulate, the vectors, the demo, a single daemon). Cluster: zones and subnets are Cluster Sharding entities (one
/// incarnation cluster-wide), each daemon runs the actor of its own node and serves that node only.
/// </summary>
public enum IpamPlacement { Local, Cluster }

/// <summary>
/// The subnets' block ownership as a feed: a subnet publishes its snapshot after each persisted change, on the cluster's
/// DistributedPubSub topic <see cref="Topic"/> (Cluster) or on the actor system's event stream (Local).
/// </summary>
public static class OwnershipFeed
{
    public static string Topic(SubnetId subnet) => $"ownership-{subnet.Value}";

    /// <summary>What a subnet holds now: members and block owners.</summary>
    public sealed record OwnershipChanged(SubnetSnapshot Subnet) : IRomanaMessage;
}
