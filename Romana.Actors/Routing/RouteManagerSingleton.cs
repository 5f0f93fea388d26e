using Akka.Actor;
using Akka.Cluster.Tools.Singleton;

namespace Romana.Actors.Routing;

/// <summary>
/// The route manager runs once per cluster, on the oldest member: every member starts the singleton manager and talks
/// to whichever member holds it through the proxy. On hand-over the new instance recovers from the journal.
/// </summary>
public static class RouteManagerSingleton
{
    public const string Name = "vpc-routes";

    public static IActorRef Start(ActorSystem system, Props routeManager) =>
        system.ActorOf(ClusterSingletonManager.Props(routeManager, PoisonPill.Instance, ClusterSingletonManagerSettings.Create(system)), Name);

    public static IActorRef Proxy(ActorSystem system) =>
        system.ActorOf(ClusterSingletonProxy.Props($"/user/{Name}", ClusterSingletonProxySettings.Create(system)), $"{Name}-proxy");
}
