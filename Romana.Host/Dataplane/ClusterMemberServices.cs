using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Romana.Actors.Health;
using Romana.Actors.Routing;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Host.Dataplane;

/// <summary>
/// A pod's packet leaves its node with the pod's source address, and a forwarded one with another node's pods' addresses:
/// EC2 drops both unless the node's ENI has its source/destination check off. Turned off once at start; a failure is
/// logged and left to the route manager, which turns it off for every node's ENI it routes to.
/// </summary>
public sealed class SourceDestCheckAtStart(IServiceProvider services) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var node = services.GetRequiredService<NodeIdentity>();
        var log = services.DaemonLog();
        if (node.Eni.Length == 0) return;
        try
        {
            await services.GetRequiredService<IEc2RouteTables>().DisableSourceDestCheckAsync(node.Eni, cancellationToken);
            log.Info("Source/destination check off on {0} (instance {1})", node.Eni, node.InstanceId);
        }
        catch (Exception e) when (e is Ec2Error or HttpRequestException or TaskCanceledException)
        {
            log.Warning("Source/destination check on {0} not changed now ({1}); the route manager will turn it off", node.Eni, e.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// This node asks its subnet's forwarder supervisor, wherever the cluster placed it, to watch it: at start and every
/// interval after, so a supervisor that moved to another member (a new incarnation knows no node) learns its nodes again
/// within one interval. The message is the same each time; a supervisor that already watches the node ignores it.
/// </summary>
public sealed class ForwarderHealthRegistration(IServiceProvider services, TimeSpan interval) : IHostedService
{
    private readonly CancellationTokenSource _stop = new();
    private Task _running = Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var node = services.GetRequiredService<NodeIdentity>();
        var system = services.GetRequiredService<ActorSystem>();
        var watch = new WatchNode(node.Subnet, node.Name, node.Ip, Cluster.Get(system).SelfAddress.ToString());
        _running = RunAsync(services.GetRequiredService<ActorRegistry>(), watch);
        return Task.CompletedTask;
    }

    private async Task RunAsync(ActorRegistry registry, WatchNode watch)
    {
        IActorRef supervisors;
        try
        {
            // Hosted services start before the actor system has registered its actors.
            supervisors = await registry.GetAsync<ForwarderHealth>(_stop.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        using var timer = new PeriodicTimer(interval);
        do supervisors.Tell(watch);
        while (await NextAsync(timer));
    }

    private async Task<bool> NextAsync(PeriodicTimer timer)
    {
        try
        {
            return await timer.WaitForNextTickAsync(_stop.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        await _running;
    }
}
