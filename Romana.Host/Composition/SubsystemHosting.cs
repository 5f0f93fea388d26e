using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.DependencyInjection;
using Akka.Hosting;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Health;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Topology;

namespace Romana.Host.Composition;

/// <summary>Where the route manager runs: in this process, or once per cluster (the oldest member) behind a proxy.</summary>
public enum RouteManagerPlacement { Local, ClusterSingleton }

/// <summary>
/// One extension per subsystem on Akka.Hosting's builder. Each starts its actors with the adapters and settings the
/// service provider holds (the clock, EC2, probes, the host network: real ones by default, simulated ones where a
/// simulation or a test registered them) and registers its entry point in the actor registry under the actor's type.
/// Order matters where one subsystem talks to another: IPAM, then routes, then health.
/// </summary>
public static class SubsystemHosting
{
    /// <summary>
    /// The IPAM. Local: zones, subnets, nodes and the reservation ledger under the front door (<see cref="IpamActor"/>).
    /// Cluster: zones, subnets and the ledger are Cluster Sharding entities (types "zone", "subnet" and "reservations", one
    /// incarnation cluster-wide) and the front door
    /// (<see cref="NodeIpamActor"/>, registered under <see cref="IpamActor"/>) runs <paramref name="node"/>'s actor and serves
    /// that node only. Cluster placement needs the cluster provider (akka.actor.provider = cluster) and the journal.
    /// </summary>
    public static AkkaConfigurationBuilder AddRomanaIpam(this AkkaConfigurationBuilder akka, ClusterTopology topology,
        IpamPlacement placement = IpamPlacement.Local, NodeName? node = null, SubnetId? subnet = null)
    {
        if (placement == IpamPlacement.Local)
            return akka.WithActors((system, registry, resolver) =>
                registry.Register<IpamActor>(system.ActorOf(
                    IpamActor.Props(topology, resolver.GetService<IpamSettings>(), resolver.GetService<IClock>()), "ipam")));
        var self = node ?? throw new ArgumentNullException(nameof(node));
        var ownSubnet = subnet ?? throw new ArgumentNullException(nameof(subnet));
        // Entities stay up while idle: a subnet keeps who holds its nodes in memory.
        var shardOptions = new ShardOptions { StateStoreMode = StateStoreMode.DData, PassivateIdleEntityAfter = TimeSpan.Zero };
        return akka
            .WithShardRegion<ZoneActor>(IpamShards.ZoneType, (_, _, resolver) => id =>
                    topology.Zones.FirstOrDefault(z => z.Name.Value == id) is { } zone
                        ? ZoneActor.Props(zone, topology.BlockPrefixLength, resolver.GetService<IpamSettings>(),
                            resolver.GetService<IClock>(), startSubnets: false)
                        : Props.Create(() => new IpamShards.UnknownEntity(IpamShards.ZoneType, id)),
                new IpamShards.Extractor(IpamShards.Shards), shardOptions)
            .WithShardRegion<SubnetActor>(IpamShards.SubnetType, (_, _, resolver) => id =>
                    topology.FindSubnet(new SubnetId(id)) is { } layout
                        ? Supervision.RestartingOnStop(SubnetActor.Props(layout, topology.BlockPrefixLength,
                            resolver.GetService<IpamSettings>(), resolver.GetService<IClock>(), IpamPlacement.Cluster),
                            $"subnet {id}'s actor", resolver.GetService<IpamSettings>())
                        : Props.Create(() => new IpamShards.UnknownEntity(IpamShards.SubnetType, id)),
                new IpamShards.Extractor(IpamShards.Shards), shardOptions)
            .WithShardRegion<ReservationLedger>(IpamShards.LedgerType, (_, registry, resolver) => id =>
                    id == IpamShards.LedgerEntity
                        ? Supervision.RestartingOnStop(ReservationLedger.ShardedProps(topology, registry.Get<SubnetActor>(),
                            resolver.GetService<IpamSettings>(), resolver.GetService<IClock>()), "the reservation ledger",
                            resolver.GetService<IpamSettings>())
                        : Props.Create(() => new IpamShards.UnknownEntity(IpamShards.LedgerType, id)),
                new IpamShards.Extractor(IpamShards.Shards), shardOptions)
            .WithDistributedPubSub("")
            .WithActors((system, registry, resolver) =>
                registry.Register<IpamActor>(system.ActorOf(NodeIpamActor.Props(topology, self, ownSubnet, registry.Get<ZoneActor>(),
                    registry.Get<SubnetActor>(), registry.Get<ReservationLedger>(), resolver.GetService<IpamSettings>(),
                    resolver.GetService<IClock>()), "ipam")));
    }

    /// <summary>
    /// The VPC route manager (<see cref="VpcRouteActor"/>) under its restarting supervisor. It reads the cluster from the
    /// IPAM unless an <see cref="IRoutingSource"/> is registered.
    /// </summary>
    /// <param name="host">The node of the daemon that composes it: no route target while its subnet has another healthy node.</param>
    public static AkkaConfigurationBuilder AddRomanaRoutes(this AkkaConfigurationBuilder akka, ClusterTopology? topology,
        RouteManagerPlacement placement = RouteManagerPlacement.Local, NodeName? host = null)
    {
        Props Manager(ActorSystem system, IActorRegistry registry, IDependencyResolver resolver)
        {
            var settings = resolver.GetService<RouteSettings>();
            var ask = resolver.GetService<IpamSettings>().AskTimeout;
            var cluster = resolver.GetService<IRoutingSource>()
                ?? (placement == RouteManagerPlacement.ClusterSingleton
                    ? new OwnershipRoutingSource(registry.Get<OwnershipView>(), topology!, ask * 3)
                    : new IpamRoutingSource(registry.Get<IpamActor>(), topology ?? throw new ArgumentNullException(nameof(topology)),
                        ask * 6));
            return RouteManagerSupervisor.Props(
                VpcRouteActor.Props(resolver.GetService<IEc2RouteTables>(), cluster, settings, resolver.GetService<IClock>(), host,
                    placement == RouteManagerPlacement.ClusterSingleton ? node => ClusterHosting.IsLiveMember(system, node) : null),
                settings.RetryMaxBackoff);
        }
        if (placement == RouteManagerPlacement.Local)
            return akka.WithActors((system, registry, resolver) =>
                registry.Register<VpcRouteActor>(system.ActorOf(Manager(system, registry, resolver), VpcRouteActor.Id)));
        // Every member keeps the ownership view, so the singleton reads a current one wherever it starts or moves to (unless
        // a fixed routing source is registered: a test's).
        return akka.WithActors((system, registry, resolver) =>
            {
                if (topology is null) return;
                registry.Register<OwnershipView>(system.ActorOf(OwnershipView.Props(topology, IpamPlacement.Cluster,
                    registry.Get<IpamActor>(), resolver.GetService<IpamSettings>().AskTimeout * 2, TimeSpan.FromSeconds(30)),
                    "ownership-view"));
            })
            .WithSingleton<VpcRouteActor>(VpcRouteActor.Id, (system, registry, resolver) => Manager(system, registry, resolver),
                new ClusterSingletonOptions(), createProxyToo: true);
    }

    /// <summary>The forwarder supervisors of every subnet (<see cref="ForwarderHealth"/>), telling the route manager.</summary>
    public static AkkaConfigurationBuilder AddRomanaHealth(this AkkaConfigurationBuilder akka, ClusterTopology topology) =>
        akka.WithActors((system, registry, resolver) =>
            registry.Register<ForwarderHealth>(system.ActorOf(ForwarderHealth.Props([.. topology.Subnets.Select(s => s.Id)],
                resolver.GetService<IHealthProbe>(), resolver.GetService<HealthSettings>(), registry.Get<VpcRouteActor>(),
                resolver.GetService<IClock>()), "forwarder-health")));

    /// <summary>
    /// This host's agent (<see cref="HostAgentActor"/>): routes to the blocks of the other nodes of its subnet. With
    /// <paramref name="subnet"/>, it learns that subnet's block ownership by subscription (<see cref="OwnershipSubscriber"/>),
    /// from the IPAM composed before it in <paramref name="placement"/>.
    /// </summary>
    public static AkkaConfigurationBuilder AddRomanaDataplane(this AkkaConfigurationBuilder akka, NodeName node, Ipv4Cidr podCidr,
        SubnetId? subnet = null, IpamPlacement placement = IpamPlacement.Local) =>
        akka.WithActors((system, registry, resolver) =>
        {
            var agent = system.ActorOf(HostAgentActor.Props(node, podCidr, resolver.GetService<IHostNetwork>(),
                resolver.GetService<HostAgentSettings>()), "host-agent");
            registry.Register<HostAgentActor>(agent);
            if (subnet is not { } own) return;
            var ask = resolver.GetService<IpamSettings>().AskTimeout;
            system.ActorOf(OwnershipSubscriber.Props(own, placement, registry.Get<IpamActor>(), agent, ask, TimeSpan.FromSeconds(3)),
                "ownership-subscriber");
        });
}
