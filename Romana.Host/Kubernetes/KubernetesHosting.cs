using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Configuration;
using Akka.Hosting;
using k8s;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Kubernetes;
using Romana.Actors.Topology;
using Romana.Host.Composition;

namespace Romana.Host.Kubernetes;

/// <summary><c>romana.kubernetes</c>: where the API server is, and how the watches behave.</summary>
public sealed record KubernetesSettings(bool Enabled, string ApiServer, TimeSpan WatchTimeout, InformerSettings Backoff,
    TimeSpan NodeRetryInterval, TimeSpan PodGrace, TimeSpan PodCheckInterval, int ListPageSize = KubeSources.DefaultPageSize)
{
    private const string Section = "romana.kubernetes";

    public static KubernetesSettings From(Config config)
    {
        var enabled = config.GetBoolean($"{Section}.enabled", false);
        var watchTimeout = Positive(config, "watch-timeout");
        var idle = Positive(config, "watch-idle-timeout");
        if (idle <= watchTimeout)
            throw ConfigValues.Error(config, $"{Section}.watch-idle-timeout",
                $"{idle} must be longer than watch-timeout {watchTimeout} (the server ends a quiet watch at watch-timeout)");
        var backoff = new InformerSettings(Positive(config, "backoff.min"), Positive(config, "backoff.max"),
            ConfigValues.Double(config, $"{Section}.backoff.jitter"), idle);
        if (backoff.Max < backoff.Min)
            throw ConfigValues.Error(config, $"{Section}.backoff.max", $"{backoff.Max} is less than backoff.min {backoff.Min}");
        if (backoff.Jitter is < 0 or >= 1)
            throw ConfigValues.Error(config, $"{Section}.backoff.jitter", $"{backoff.Jitter} must be at least 0 and less than 1");
        var apiServer = ConfigValues.Text(config, $"{Section}.api-server");
        if (apiServer.Length > 0 && !Uri.TryCreate(apiServer, UriKind.Absolute, out _))
            throw ConfigValues.Error(config, $"{Section}.api-server", $"{Quoting.Quote(apiServer)} is not a URL");
        var pageSize = ConfigValues.Int(config, $"{Section}.list-page-size");
        if (pageSize < 1)
            throw ConfigValues.Error(config, $"{Section}.list-page-size", $"{pageSize} must be at least 1");
        return new KubernetesSettings(enabled, apiServer, watchTimeout, backoff,
            Positive(config, "nodes.retry-interval"), Positive(config, "pods.grace"), Positive(config, "pods.check-interval"), pageSize);
    }

    private static TimeSpan Positive(Config config, string setting)
    {
        var value = ConfigValues.Duration(config, $"{Section}.{setting}");
        return value > TimeSpan.Zero ? value : throw ConfigValues.Error(config, $"{Section}.{setting}", $"{value} must be positive");
    }

    /// <summary>KubernetesClient for <see cref="ApiServer"/>, or the in-cluster configuration (the pod's service account).</summary>
    public IKubernetes CreateClient() => new k8s.Kubernetes(ApiServer.Length > 0
        ? new KubernetesClientConfiguration { Host = ApiServer }
        : KubernetesClientConfiguration.InClusterConfig());
}

/// <summary>
/// The Kubernetes watches of a daemon in a cluster: the Node watch as a cluster singleton (one per cluster: Nodes are few
/// and every join or removal is a cluster-wide decision), and the Pod watch of this daemon's own node (only this node's
/// pods, <c>fieldSelector=spec.nodeName</c>: the addresses it checks are decided and released on this node only).
/// </summary>
public static class KubernetesHosting
{
    public const string NodeWatchName = "kubernetes-nodes";

    public static AkkaConfigurationBuilder AddRomanaKubernetes(this AkkaConfigurationBuilder akka, KubernetesSettings settings,
        ClusterTopology topology, NodeName node)
    {
        var client = new Lazy<IKubernetes>(settings.CreateClient);
        return akka
            .WithSingleton<NodeWatchActor>(NodeWatchName, (system, registry, resolver) =>
            {
                var source = new NodeSource(client.Value, settings.WatchTimeout, settings.ListPageSize);
                return NodeWatchActor.Props(topology, registry.Get<IpamActor>(), n => DaemonMemberOf(system, n),
                    new NodeWatchSettings(settings.NodeRetryInterval, resolver.GetService<IpamSettings>().AskTimeout * 2),
                    (emit, token) => new Informer<KubeNode>(source, settings.Backoff, emit).RunAsync(token));
            }, new ClusterSingletonOptions(), createProxyToo: false)
            .WithActors((system, registry, resolver) =>
            {
                var source = new PodSource(client.Value, settings.WatchTimeout, node.Value, settings.ListPageSize);
                system.ActorOf(PodWatchActor.Props(node, registry.Get<IpamActor>(),
                    new PodWatchSettings(settings.PodGrace, settings.PodCheckInterval, resolver.GetService<IpamSettings>().AskTimeout * 2),
                    resolver.GetService<IClock>(), (emit, token) => new Informer<KubePod>(source, settings.Backoff, emit).RunAsync(token)),
                    "kubernetes-pods");
            });
    }

    /// <summary>
    /// The cluster address of the node's daemon while it is a member in any state but Down or Removed (an unreachable one too,
    /// until the split-brain resolver downs it); null when it is none.
    /// </summary>
    public static string? DaemonMemberOf(ActorSystem system, NodeName node)
    {
        var role = ClusterHosting.NameRole(node);
        return Cluster.Get(system).State.Members
            .FirstOrDefault(m => m.HasRole(role) && m.Status is not (MemberStatus.Down or MemberStatus.Removed))?.Address.ToString();
    }
}
