using Akka.Configuration;
using Akka.Event;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Ipam;
using Romana.Host.Composition;
using Romana.Host.Persistence;

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

    private RomanaDaemon(RomanaHost host) => _host = host;

    public NodeIdentity Node => _host.Services.GetRequiredService<NodeIdentity>();

    /// <summary>The IPAM front door of this daemon (what other nodes of a cluster, or a test, speak to).</summary>
    public IpamClient Ipam => _host.Ipam;

    /// <param name="hostNetwork">The host port; the Linux adapter unless a caller (a test) gives another.</param>
    public static async Task<RomanaDaemon> StartAsync(Config config, string? socketPath = null, IHostNetwork? hostNetwork = null)
    {
        var topology = RomanaConfig.ReadTopology(config);
        var journal = JournalSettings.From(config);
        var agentSettings = HostAgentSettings.From(config);
        var health = HealthSettings.From(config);
        var node = NodeIdentity.Resolve(config, topology);
        socketPath ??= config.GetString("romana.cni.socket");
        CreateJournalFolder(journal);

        var builder = RomanaHost.CreateBuilder(config, akka => akka
            .AddRomanaPersistence(journal)
            .AddRomanaIpam(topology)
            .AddRomanaDataplane(node.Name, topology.PodCidr), services =>
        {
            services.AddSingleton(node);
            services.AddSingleton(agentSettings);
            services.AddSingleton(hostNetwork ?? new LinuxHostNetwork(agentSettings));
            // Started before the actor system: a second daemon, or a port in use, is refused before the journal is touched.
            services.AddHostedService(sp => new CniSocketService(socketPath, sp));
            services.AddHostedService(_ => new HealthProbeListener(health.ProbePort));
        }, "romana-daemon");
        builder.Services.AddHostedService<NodeMembership>();
        builder.Services.AddHostedService<HostAgentService>();

        var daemon = new RomanaDaemon(await RomanaHost.StartAsync(builder));
        daemon._host.Services.DaemonLog().Info("Romana daemon: node {0} ({1}) of subnet {2}; CNI socket {3}; health port {4}; journal {5}",
            node.Name, node.Ip, node.Subnet, socketPath, health.ProbePort, journal.Describe());
        return daemon;
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
                $"romana.persistence.sqlite.path: cannot create {folder}: {e.Message} (the daemon runs as root; or choose another path)");
        }
    }

    public async ValueTask DisposeAsync()
    {
        _host.Services.DaemonLog().Info("Romana daemon stopping: CNI socket closed; host routes stay in place for the next start");
        await _host.DisposeAsync();
    }
}
