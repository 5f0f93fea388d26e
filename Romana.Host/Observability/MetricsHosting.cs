using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors;
using Romana.Actors.Health;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Topology;

namespace Romana.Host.Observability;

/// <summary>
/// Romana's metrics, composed the same way wherever Romana runs (the daemon, the simulation, a test): the collectors on a
/// registry of this host's own, the EC2 port and the health probe counted, and the feed actor on the event stream.
/// </summary>
public static class MetricsHosting
{
    /// <summary>
    /// The collectors (<see cref="RomanaMetrics"/>), and the EC2 port and health probe registered so far wrapped so that
    /// each call is counted: call it after the adapters are registered. Twice is once.
    /// </summary>
    public static IServiceCollection AddRomanaMetrics(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(RomanaMetrics))) return services;
        services.AddSingleton<RomanaMetrics>();
        Decorate<IEc2RouteTables>(services, (sp, inner) => new MeteredEc2RouteTables(inner, sp.GetRequiredService<RomanaMetrics>()));
        Decorate<IHealthProbe>(services, (sp, inner) => new MeteredHealthProbe(inner, sp.GetRequiredService<RomanaMetrics>(),
            sp.GetService<IClock>() ?? SystemClock.Instance));
        return services;
    }

    /// <summary>
    /// The feed (<see cref="MetricsFeed"/>): compose it before the IPAM, so that it hears the node actors as they recover.
    /// Needs <see cref="AddRomanaMetrics(IServiceCollection)"/> on the services.
    /// </summary>
    /// <param name="logEvents">romana.log.events: each persisted event also one log line with its cause.</param>
    public static AkkaConfigurationBuilder AddRomanaMetrics(this AkkaConfigurationBuilder akka, ClusterTopology? topology,
        IpamPlacement placement = IpamPlacement.Local, bool logEvents = false) =>
        akka.WithActors((system, registry, resolver) =>
        {
            var metrics = resolver.GetService<RomanaMetrics>()
                ?? throw new InvalidOperationException("AddRomanaMetrics on the actor system needs AddRomanaMetrics on the services");
            registry.Register<MetricsFeed>(system.ActorOf(MetricsFeed.Props(metrics, topology, placement,
                resolver.GetService<IClock>() ?? SystemClock.Instance, logEvents), "metrics-feed"));
        });

    private static void Decorate<T>(IServiceCollection services, Func<IServiceProvider, T, T> wrap) where T : class
    {
        if (services.LastOrDefault(d => d.ServiceType == typeof(T)) is not { } registered) return;
        services.Remove(registered);
        services.AddSingleton(sp => wrap(sp, registered switch
        {
            { ImplementationInstance: T instance } => instance,
            { ImplementationFactory: { } factory } => (T)factory(sp),
            _ => (T)ActivatorUtilities.CreateInstance(sp, registered.ImplementationType!),
        }));
    }
}
