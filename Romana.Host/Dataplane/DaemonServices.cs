using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Ipam;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Dataplane;

/// <summary>
/// The CNI plugin's Unix socket, bound by <see cref="RomanaDaemon"/> before the journal is opened (a second daemon on the
/// node is refused before it touches anything), served once the daemon has started (plugins that connect earlier wait in
/// the backlog), and stopped first of all: no new connection, the requests in flight answered within
/// romana.cni.stop-timeout, and only then the actor system stops, so no request is taken that could not be answered.
/// </summary>
public sealed class CniSocketService(CniServer server, IServiceProvider services) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        var log = services.DaemonLog();
        var (ipam, node) = (services.GetRequiredService<IpamClient>(), services.GetRequiredService<NodeIdentity>());
        var handler = new CniRequestHandler(ipam, node, services.GetRequiredService<IHostNetwork>(), log);
        var cluster = services.GetService<ClusterPlacementMarker>() is null
            ? null
            : Akka.Cluster.Cluster.Get(services.GetRequiredService<ActorSystem>());
        server.Serve(new DaemonSocketRequests(handler, new DaemonAdminRequests(ipam, node, cluster, log)), log);
        return Task.CompletedTask;
    }

    public async Task StoppingAsync(CancellationToken cancellationToken) => await server.DisposeAsync();

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// The TCP port forwarder health probes connect to: a node is alive while its daemon accepts connections there. Bound
/// before the journal starts (a port in use is a start-up error naming the setting); nothing is read or written.
/// </summary>
public sealed class HealthProbeListener(int port) : IHostedLifecycleService
{
    private readonly TcpListener _listener = new(IPAddress.Any, port);
    private readonly CancellationTokenSource _stop = new();
    private Task _accepting = Task.CompletedTask;

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        try
        {
            _listener.Start();
        }
        catch (SocketException e)
        {
            throw new DaemonStartException($"romana.health.probe-port: cannot listen on TCP {port}: {e.Message}");
        }
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _accepting = AcceptAsync();
        return Task.CompletedTask;
    }

    /// <summary>Accepts and closes; a failing accept (out of descriptors, say) backs off, 10 ms doubling to 1 s, never spins.</summary>
    private async Task AcceptAsync()
    {
        var backoff = TimeSpan.Zero;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                using var probe = await _listener.AcceptSocketAsync(_stop.Token);
                backoff = TimeSpan.Zero;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested) return;
                backoff = TimeSpan.FromMilliseconds(Math.Clamp(backoff.TotalMilliseconds * 2, 10, 1000));
                try
                {
                    await Task.Delay(backoff, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Registered when the daemon's IPAM runs in cluster placement.</summary>
public sealed class ClusterPlacementMarker;

/// <summary>Once the IPAM has recovered, this host joins its subnet as a node; a refusal stops the start with the reason.</summary>
public sealed class NodeMembership(IServiceProvider services) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var ipam = services.GetRequiredService<IpamClient>();
        var node = services.GetRequiredService<NodeIdentity>();
        await ipam.AwaitReadyAsync(cancellationToken);
        var joined = await ipam.AskAsync(new AddNode(node.Name, node.Subnet, node.Ip.ToString(), node.Eni.Length > 0 ? node.Eni : null,
            node.InstanceId.Length > 0 ? node.InstanceId : null));
        // In a cluster a subnet that cannot be reached now is no reason to stop: the node's own blocks serve, and the front
        // door keeps announcing the node. A refusal (another live daemon holds this node name, say) is.
        if (joined is Failed { Error.Code: IpamErrorCode.Unavailable } later && services.GetService<ClusterPlacementMarker>() is not null)
            services.DaemonLog().Warning("romana.node: {0} not yet announced to subnet {1} ({2}); announcing again", node.Name, node.Subnet,
                later.Error.Message);
        else if (joined is Failed failed)
            throw new DaemonStartException($"romana.node: {node.Name} ({node.Ip}) cannot join subnet {node.Subnet}: {failed.Error}");
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

internal static class DaemonLogging
{
    public static ILoggingAdapter DaemonLog(this IServiceProvider services) =>
        Logging.GetLogger(services.GetRequiredService<ActorSystem>(), "romana.daemon");
}
