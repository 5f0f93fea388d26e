using Akka.Actor;
using Akka.Cluster.Hosting;
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
    /// <summary>The IPAM: zones, subnets and nodes under the front door (<see cref="IpamActor"/>).</summary>
    public static AkkaConfigurationBuilder AddRomanaIpam(this AkkaConfigurationBuilder akka, ClusterTopology topology) =>
        akka.WithActors((system, registry, resolver) =>
            registry.Register<IpamActor>(system.ActorOf(
                IpamActor.Props(topology, resolver.GetService<IpamSettings>(), resolver.GetService<IClock>()), "ipam")));

    /// <summary>
    /// The VPC route manager (<see cref="VpcRouteActor"/>) under its restarting supervisor. It reads the cluster from the
    /// IPAM unless an <see cref="IRoutingSource"/> is registered.
    /// </summary>
    /// <param name="source">Wraps the cluster view where the manager runs (the daemon: its own node is no forwarder).</param>
    public static AkkaConfigurationBuilder AddRomanaRoutes(this AkkaConfigurationBuilder akka, ClusterTopology? topology,
        RouteManagerPlacement placement = RouteManagerPlacement.Local, Func<IRoutingSource, IRoutingSource>? source = null)
    {
        Props Manager(IActorRegistry registry, IDependencyResolver resolver)
        {
            var settings = resolver.GetService<RouteSettings>();
            var cluster = resolver.GetService<IRoutingSource>()
                ?? new IpamRoutingSource(registry.Get<IpamActor>(), topology ?? throw new ArgumentNullException(nameof(topology)),
                    resolver.GetService<IpamSettings>().AskTimeout * 6);
            return RouteManagerSupervisor.Props(
                VpcRouteActor.Props(resolver.GetService<IEc2RouteTables>(), source?.Invoke(cluster) ?? cluster, settings,
                    resolver.GetService<IClock>()),
                settings.RetryMaxBackoff);
        }
        return placement == RouteManagerPlacement.Local
            ? akka.WithActors((system, registry, resolver) =>
                registry.Register<VpcRouteActor>(system.ActorOf(Manager(registry, resolver), VpcRouteActor.Id)))
            : akka.WithSingleton<VpcRouteActor>(VpcRouteActor.Id, (_, registry, resolver) => Manager(registry, resolver),
                new ClusterSingletonOptions(), createProxyToo: true);
    }

    /// <summary>The forwarder supervisors of every subnet (<see cref="ForwarderHealth"/>), telling the route manager.</summary>
    public static AkkaConfigurationBuilder AddRomanaHealth(this AkkaConfigurationBuilder akka, ClusterTopology topology) =>
        akka.WithActors((system, registry, resolver) =>
            registry.Register<ForwarderHealth>(system.ActorOf(ForwarderHealth.Props([.. topology.Subnets.Select(s => s.Id)],
                resolver.GetService<IHealthProbe>(), resolver.GetService<HealthSettings>(), registry.Get<VpcRouteActor>(),
                resolver.GetService<IClock>()), "forwarder-health")));

    /// <summary>This host's agent (<see cref="HostAgentActor"/>): routes to the blocks of the other nodes of its subnet.</summary>
    public static AkkaConfigurationBuilder AddRomanaDataplane(this AkkaConfigurationBuilder akka, NodeName node, Ipv4Cidr podCidr) =>
        akka.WithActors((system, registry, resolver) =>
            registry.Register<HostAgentActor>(system.ActorOf(HostAgentActor.Props(node, podCidr,
                resolver.GetService<IHostNetwork>(), resolver.GetService<HostAgentSettings>()), "host-agent")));
}
