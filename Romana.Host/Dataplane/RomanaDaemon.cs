using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Health;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Host.Audit;
using Romana.Host.Aws;
using Romana.Host.Composition;
using Romana.Host.Health;
using Romana.Host.Kubernetes;
using Romana.Host.Observability;
using Romana.Host.Persistence;
using Romana.Host.Policy;
using Romana.Host.Routing;

namespace Romana.Host.Dataplane;

/// <summary>
/// The per-host daemon, composed at the composition root: the IPAM on its journal with this host as a node, the CNI
/// socket that hands out and takes back pod addresses, the host agent that keeps routes to the other nodes of the subnet,
/// and the TCP port forwarder health probes connect to. Each outside edge is a hosted service with an orderly start
/// (socket and port bound first, served last) and stop (socket closed first, journal last).
/// </summary>
public sealed class RomanaDaemon : IAsyncDisposable
{
    private readonly RomanaHost _host;
    private readonly JournalLock? _journalLock;

    private RomanaDaemon(RomanaHost host, JournalLock? journalLock)
    {
        _host = host;
        _journalLock = journalLock;
        Terminated = host.System.WhenTerminated;
    }

    public NodeIdentity Node => _host.Services.GetRequiredService<NodeIdentity>();

    /// <summary>The daemon's actor system (a cluster member when romana.cluster.enabled = on).</summary>
    public Akka.Actor.ActorSystem System => _host.System;

    /// <summary>
    /// Completes when the actor system has terminated: after <see cref="DisposeAsync"/>, or without being asked to (the cluster
    /// downed or removed this member; <see cref="DaemonSupervisor"/> then starts a new daemon).
    /// </summary>
    public Task Terminated { get; }

    /// <summary>The port of /metrics, /healthz and /readyz (romana.http.port, or the one taken for port 0).</summary>
    public int HttpPort => _host.Services.GetRequiredService<RomanaHttpServer>().Port;

    /// <summary>The collectors /metrics shows.</summary>
    public RomanaMetrics Metrics => _host.Services.GetRequiredService<RomanaMetrics>();

    /// <summary>The IPAM front door of this daemon (what other nodes of a cluster, or a test, speak to).</summary>
    public IpamClient Ipam => _host.Ipam;

    /// <param name="socketPath">--socket: serve the CNI plugin there instead of romana.cni.socket.</param>
    /// <param name="hostNetwork">The host port; the Linux adapter unless a caller (a test) gives another.</param>
    /// <param name="masquerade">The masquerade port; nft unless a caller (a test) gives another.</param>
    public static async Task<RomanaDaemon> StartAsync(Config config, string? socketPath = null, IHostNetwork? hostNetwork = null,
        IMasqueradeRules? masquerade = null)
    {
        // The daemon stops in its own order (DisposeAsync): Akka must not start its coordinated shutdown on SIGTERM by itself,
        // or the IPAM would be gone while the CNI socket still answers the requests in flight.
        config = ConfigurationFactory.ParseString("akka.coordinated-shutdown.run-by-clr-shutdown-hook = off").WithFallback(config);
        var topology = RomanaConfig.ReadTopology(config);
        var journal = JournalSettings.From(config);
        var agentSettings = HostAgentSettings.From(config);
        var health = HealthSettings.From(config);
        var cni = CniSettings.From(config, socketPath);
        var http = HttpSettings.From(config);
        var logs = LogSettings.From(config);
        config = logs.AkkaConfig().WithFallback(config);
        // A shutdown the daemon did not ask for (the cluster downed this member) closes the CNI socket in its first phase
        // (below): that phase waits for the requests in flight as long as the daemon's own stop does.
        config = ConfigurationFactory.ParseString("akka.coordinated-shutdown.phases.before-service-unbind.timeout = " +
            $"{(long)(cni.StopTimeout + TimeSpan.FromSeconds(1)).TotalMilliseconds}ms").WithFallback(config);
        var cluster = ClusterSettings.From(config);
        cluster.RequireSharedJournal(config, journal);
        var kubernetes = KubernetesSettings.From(config);
        if (kubernetes.Enabled && !cluster.Enabled)
            throw ConfigValues.Error(config, "romana.kubernetes.enabled", "on with romana.cluster.enabled = off; the Node watch is a " +
                "cluster singleton (turn the cluster on)");
        var policy = PolicySettings.From(config);
        var auditSettings = AuditSettings.From(config);
        if (policy is { Runs: true, Source: PolicySourceKind.Kubernetes } && !kubernetes.Enabled)
            throw ConfigValues.Error(config, "romana.policy.source", "kubernetes with romana.kubernetes.enabled = off (turn the watches " +
                "on, or use source = files)");
        var aws = cluster.Enabled ? AwsSettings.From(config) : null;
        var node = cluster.Enabled
            ? await NodeIdentity.ResolveInClusterAsync(config, topology, InstanceMetadata.From(config))
            : NodeIdentity.Resolve(config, topology);
        var masqueradeRules = MasqueradeSettings.From(config).RulesFor(topology);
        var imdsRules = ImdsSettings.From(config).RulesFor(topology);
        CreateJournalFolder(journal);

        // The node's socket, then the journal's lock, before the journal is opened: a second daemon on the node (same
        // socket) or on the journal (another namespace, same file) is refused before it touches anything.
        var server = CniServer.Bind(cni);
        JournalLock? journalLock = null;
        try
        {
            journalLock = JournalLock.Acquire(journal);
            var placement = cluster.Enabled ? IpamPlacement.Cluster : IpamPlacement.Local;
            var builder = RomanaHost.CreateBuilder(config, akka =>
            {
                akka.AddRomanaPersistence(journal)
                    .AddRomanaMetrics(topology, placement, logs.Events)
                    .AddRomanaIpam(topology, placement, node.Name, node.Subnet)
                    .AddRomanaDataplane(node.Name, topology.PodCidr, node.Subnet, placement);
                // A member of the cluster: the route manager as the cluster singleton (never a forwarder itself while its
                // subnet has another healthy node), the forwarder supervisors sharded away from their own subnets.
                if (cluster.Enabled)
                    akka.AddRomanaCluster(cluster, [ClusterHosting.NodeRole, ClusterHosting.SubnetRole(node.Subnet),
                            ClusterHosting.NameRole(node.Name)])
                        .AddRomanaRoutes(topology, RouteManagerPlacement.ClusterSingleton, node.Name)
                        .AddRomanaClusterHealth();
                // Kubernetes drives membership: the Node watch (a cluster singleton) and this node's Pod watch.
                if (kubernetes.Enabled) akka.AddRomanaKubernetes(kubernetes, topology, node.Name);
                // NetworkPolicy: this node's agent, fed by the Kubernetes view (a singleton) or by policy files.
                akka.AddRomanaPolicy(policy, node.Name, topology, kubernetes.Enabled ? kubernetes : null);
                // The audit's projections (checkpoints): one runner per journal, so a cluster singleton in a cluster.
                akka.AddRomanaProjections(journal, auditSettings,
                    cluster.Enabled ? ProjectionPlacement.ClusterSingleton : ProjectionPlacement.Local);
            }, services =>
            {
                // The HTTP endpoint first: bound before anything else starts, and stopped last (/healthz answers throughout).
                services.AddSingleton(sp => new RomanaHttpServer(http, sp));
                services.AddHostedService(sp => sp.GetRequiredService<RomanaHttpServer>());
                services.AddSingleton<IReadinessCheck>(sp => new JournalReadiness(sp.GetRequiredService<RomanaMetrics>()));
                services.AddSingleton<IReadinessCheck>(new CniSocketReadiness(server));
                if (cluster.Enabled) services.AddSingleton<IReadinessCheck>(sp => new ClusterMemberReadiness(sp));
                services.AddSingleton(node);
                if (placement == IpamPlacement.Cluster) services.AddSingleton(new ClusterPlacementMarker());
                services.AddSingleton(agentSettings);
                services.AddSingleton(cni);
                services.AddSingleton(hostNetwork ?? new LinuxHostNetwork(agentSettings));
                services.AddSingleton(masquerade ?? NftMasqueradeRules.BesideHostNetwork(hostNetwork));
                // Stopped in reverse order: the CNI socket first (no request is taken that the IPAM could not answer), and the
                // health port keeps answering probes while the requests in flight are answered.
                services.AddHostedService(_ => new HealthProbeListener(health.ProbePort));
                services.AddHostedService(sp => new CniSocketService(server, sp));
                if (aws is not null)
                {
                    services.AddSingleton<IEc2RouteTables>(new AwsEc2RouteTables(aws.CreateClient()));
                    services.AddSingleton<IHealthProbe>(new TcpHealthProbe(health.ProbePort));
                    services.AddHostedService<SourceDestCheckAtStart>();
                    services.AddHostedService(sp => new ForwarderHealthRegistration(sp, health.ProbeInterval * 2));
                }
                // NetworkPolicy in this namespace's nftables (table inet romana_policy only), when the agent runs.
                if (policy.Runs)
                    services.AddSingleton<Romana.Actors.Policy.IPolicyDataplane>(_ => new NftablesPolicyDataplane((string?)null));
                services.AddRomanaMetrics();
            }, cluster.Enabled ? ClusterSettings.SystemName : "romana-daemon");
            builder.Services.AddHostedService<NodeMembership>();
            builder.Services.AddHostedService(sp => new MasqueradeService(sp, masqueradeRules, imdsRules));

            var daemon = new RomanaDaemon(await RomanaHost.StartAsync(builder), journalLock);
            // When the cluster downs or removes this member, Akka runs its coordinated shutdown by itself: the CNI socket is
            // closed first there too, and the requests in flight are answered while the IPAM still runs. (On the daemon's own
            // stop the socket is already closed when Akka's shutdown begins.)
            CoordinatedShutdown.Get(daemon.System).AddTask(CoordinatedShutdown.PhaseBeforeServiceUnbind, "romana-cni-socket",
                async () =>
                {
                    await server.DisposeAsync();
                    return Akka.Done.Instance;
                });
            daemon._host.Services.DaemonLog().Info(
                "Romana daemon: node {0} ({1}) of subnet {2}; CNI socket {3}; {4}; {5}",
                node.Name, node.Ip, node.Subnet, cni.Socket, $"health port {health.ProbePort}; HTTP port {daemon.HttpPort}",
                $"journal {journal.Describe()}{(journalLock is null ? "" : $", locked by {journalLock.LockPath}")}" +
                (cluster.Enabled ? $"; cluster member {Akka.Cluster.Cluster.Get(daemon._host.System).SelfAddress}" +
                    $"{(node.Eni.Length > 0 ? $", instance {node.InstanceId}, ENI {node.Eni}" : "")}" : ""));
            return daemon;
        }
        catch
        {
            await server.DisposeAsync();
            journalLock?.Dispose();
            throw;
        }
    }

    private static void CreateJournalFolder(JournalSettings journal)
    {
        if (journal.Journal != JournalKind.Sqlite || Path.GetDirectoryName(Path.GetFullPath(journal.SqlitePath)) is not { } folder) return;
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new DaemonStartException(
                $"{journal.SqlitePathSetting}: cannot create {folder}: {e.Message} (the daemon runs as root; or choose another path)");
        }
    }

    /// <summary>
    /// The stop: the CNI socket first (no new connection; the requests in flight answered within romana.cni.stop-timeout),
    /// then the other edges, then the actor system and its journal; the journal's lock last.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _host.Services.DaemonLog().Info(
            "Romana daemon stopping: CNI socket closed to new requests; host routes stay in place for the next start");
        try
        {
            await _host.DisposeAsync();
        }
        finally
        {
            _journalLock?.Dispose();
        }
    }
}
