using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Romana.Actors;
using Romana.Actors.Configuration;
using Romana.Actors.Health;
using Romana.Actors.Routing;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Host.Composition;

/// <summary>
/// Forwarder supervisors in a cluster: one sharded entity per subnet (type "health", entity and shard id = the subnet id),
/// placed by <see cref="AwayFromOwnSubnetAllocation"/> on a member that is not a node of that subnet. The region is
/// registered as <see cref="ForwarderHealth"/>: commands to a subnet's supervisor go there, from any member.
/// </summary>
public static class ClusterHealthHosting
{
    public const string TypeName = "health";

    public static AkkaConfigurationBuilder AddRomanaClusterHealth(this AkkaConfigurationBuilder akka) =>
        // The coordinator keeps where shards live in distributed data, not the journal: a supervisor recovers its own state
        // from the journal wherever it starts, and the journal holds only Romana's events.
        akka.AddHocon("akka.cluster.sharding.state-store-mode = ddata", HoconAddMode.Prepend).WithActors((system, registry, resolver) =>
        {
            var probe = resolver.GetService<IHealthProbe>();
            var settings = resolver.GetService<HealthSettings>();
            var clock = resolver.GetService<IClock>();
            var routeManager = registry.Get<VpcRouteActor>();
            var members = registry.TryGet<OwnershipView>(out var view) ? view : null;
            // Every cluster daemon has EC2 access (the route manager may run on any of them): with it, a supervisor moves the
            // routes of a node it judged failed itself when the route manager does not answer (the standby repair).
            var ec2 = resolver.GetService<IEc2RouteTables>();
            var region = ClusterSharding.Get(system).Start(TypeName,
                entity => SubnetHealthSupervisor.Props(new Actors.Addressing.SubnetId(entity), probe, settings, routeManager, clock,
                    members, ec2),
                ClusterShardingSettings.Create(system).WithRole(ClusterHosting.NodeRole), new SubnetMessageExtractor(),
                new AwayFromOwnSubnetAllocation(system), PoisonPill.Instance);
            registry.Register<ForwarderHealth>(region);
        });

    /// <summary>A subnet's commands go to the entity named by the subnet.</summary>
    private sealed class SubnetMessageExtractor : IMessageExtractor
    {
        public string? EntityId(object message) => (message as ISubnetHealthCommand)?.Subnet.Value;
        public object EntityMessage(object message) => message;
        public string? ShardId(object message) => EntityId(message);
        public string ShardId(string entityId, object? messageHint = null) => entityId;
    }
}

/// <summary>
/// Where a subnet's forwarder supervisor runs: never on a member with the role subnet:S of its own subnet S while another
/// member exists (a node that dies must not take the judge of its own failure with it), and not on the oldest member (the
/// route singleton's host) while another candidate exists; among the rest, the member with the fewest supervisors.
/// Only when every member is a node of S does S's supervisor run on one of them. Shards on a member of their own subnet
/// are moved away as soon as another member can take them (a member that joined later).
/// </summary>
public sealed class AwayFromOwnSubnetAllocation(ActorSystem system) : IShardAllocationStrategy
{
    private Cluster Cluster => Cluster.Get(system);

    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId,
        IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations) =>
        Task.FromResult(Choose(shardId, currentShardAllocations) ?? requester);

    public Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations,
        IImmutableSet<string> rebalanceInProgress)
    {
        if (rebalanceInProgress.Count > 0) return Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);
        var oldest = Oldest();
        foreach (var (region, shards) in currentShardAllocations)
        {
            var member = MemberOf(region);
            foreach (var shard in shards)
            {
                // Moved only off a member of its own subnet, or off the singleton's host, and only where Choose finds better.
                if (member is null || (!member.HasRole(RoleOf(shard)) && member.Address != oldest?.Address)) continue;
                if (Choose(shard, currentShardAllocations) is { } better && !better.Equals(region))
                    return Task.FromResult<IImmutableSet<string>>(ImmutableHashSet.Create(shard));
            }
        }
        return Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);
    }

    private static string RoleOf(string shard) => ClusterHosting.SubnetRole(new Actors.Addressing.SubnetId(shard));

    private IActorRef? Choose(string shard, IImmutableDictionary<IActorRef, IImmutableList<string>> allocations)
    {
        var state = Cluster.State;
        var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
        var oldest = Oldest();
        var candidates = allocations
            .Select(a => (Region: a.Key, Count: a.Value.Count, Member: MemberOf(a.Key)))
            .Where(c => c.Member is { Status: MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining }
                && !unreachable.Contains(c.Member.Address))
            .ToList();
        var away = candidates.Where(c => !c.Member!.HasRole(RoleOf(shard))).ToList();
        var pool = away.Count > 0 ? away : candidates;
        return pool
            .OrderBy(c => pool.Count > 1 && oldest is not null && c.Member!.Address == oldest.Address ? 1 : 0)
            .ThenBy(c => c.Count)
            .ThenBy(c => c.Member!.Address.ToString(), StringComparer.Ordinal)
            .Select(c => c.Region)
            .FirstOrDefault();
    }

    /// <summary>The oldest member with the role node: where the route singleton runs.</summary>
    private Member? Oldest() => Cluster.State.Members.Where(m => m.Status == MemberStatus.Up && m.HasRole(ClusterHosting.NodeRole))
        .OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();

    private Member? MemberOf(IActorRef region)
    {
        var address = region.Path.Address.HasGlobalScope ? region.Path.Address : Cluster.SelfAddress;
        return Cluster.State.Members.FirstOrDefault(m => m.Address == address);
    }
}
