using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Ipam;
using Romana.Contracts.Cni;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Dataplane;

/// <summary>
/// The per-host daemon: the IPAM on its journal with this host as a node, the CNI socket that hands out and takes back
/// pod addresses, the host agent that keeps routes to the other nodes of the subnet, and the TCP port forwarder health
/// probes connect to.
/// </summary>
public sealed class RomanaDaemon : IAsyncDisposable
{
    private readonly IpamService _ipam;
    private readonly NodeIdentity _node;
    private readonly IActorRef _hostAgent;
    private readonly ILoggingAdapter _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly TcpListener _healthListener;
    private readonly Task _background;
    private readonly TimeSpan _refreshInterval;
    private readonly CniServer _cni;

    private RomanaDaemon(CniServer cni, IpamService ipam, NodeIdentity node, IActorRef hostAgent, TcpListener healthListener, TimeSpan refreshInterval)
    {
        _cni = cni;
        _ipam = ipam;
        _node = node;
        _hostAgent = hostAgent;
        _healthListener = healthListener;
        _refreshInterval = refreshInterval;
        _log = Logging.GetLogger(ipam.System, "romana.daemon");
        _background = Task.WhenAll(RefreshOwnershipAsync(), AnswerProbesAsync());
    }

    public NodeIdentity Node => _node;

    /// <summary>The IPAM front door of this daemon (what other nodes of a cluster, or a test, speak to).</summary>
    public IpamService Ipam => _ipam;

    /// <param name="hostNetwork">The host port; the Linux adapter unless a caller (a test) gives another.</param>
    public static async Task<RomanaDaemon> StartAsync(Config config, string? socketPath = null, IHostNetwork? hostNetwork = null)
    {
        var topology = RomanaConfig.ReadTopology(config);
        var journal = JournalSettings.From(config);
        var agentSettings = HostAgentSettings.From(config);
        var health = HealthSettings.From(config);
        var node = NodeIdentity.Resolve(config, topology);
        socketPath ??= config.GetString("romana.cni.socket");
        if (journal.Journal == JournalKind.Sqlite && Path.GetDirectoryName(Path.GetFullPath(journal.SqlitePath)) is { } folder)
        {
            try
            {
                Directory.CreateDirectory(folder);
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                throw new DaemonStartException($"romana.persistence.sqlite.path: cannot create {folder}: {e.Message} (the daemon runs as root; or choose another path)");
            }
        }

        var cni = CniServer.Bind(socketPath);
        var healthListener = new TcpListener(IPAddress.Any, health.ProbePort);
        IpamService? ipam = null;
        try
        {
            try
            {
                healthListener.Start();
            }
            catch (SocketException e)
            {
                throw new DaemonStartException($"romana.health.probe-port: cannot listen on TCP {health.ProbePort}: {e.Message}");
            }
            ipam = await IpamService.StartAsync(topology, journal, IpamSettings.From(config), config, name: "romana-daemon");
            if (await ipam.AskAsync(new AddNode(node.Name, node.Subnet, node.Ip.ToString())) is Failed failed)
                throw new DaemonStartException($"romana.node: {node.Name} ({node.Ip}) cannot join subnet {node.Subnet}: {failed.Error}");
        }
        catch
        {
            healthListener.Stop();
            if (ipam is not null) await ipam.DisposeAsync();
            await cni.DisposeAsync();
            throw;
        }
        var agent = ipam.System.ActorOf(HostAgentActor.Props(node.Name, topology.PodCidr, hostNetwork ?? new LinuxHostNetwork(agentSettings), agentSettings), "host-agent");
        var daemon = new RomanaDaemon(cni, ipam, node, agent, healthListener, agentSettings.RefreshInterval);
        cni.Serve(daemon.HandleAsync, daemon._log);
        daemon._log.Info("Romana daemon: node {0} ({1}) of subnet {2}; CNI socket {3}; health port {4}; journal {5}",
            node.Name, node.Ip, node.Subnet, socketPath, health.ProbePort, journal.Describe());
        return daemon;
    }

    /// <summary>What a CNI request becomes: the allocation key is container id + interface, the node is this host.</summary>
    public async Task<DaemonReply> HandleAsync(DaemonRequest request)
    {
        if (request.Command == DaemonProtocol.Status) return new DaemonReply(true);
        if (request.Command == DaemonProtocol.Gc) return await CollectGarbageAsync(request.Valid ?? []);
        if (string.IsNullOrWhiteSpace(request.ContainerId)) return DaemonReply.Failure("invalid", "containerId: empty");
        if (string.IsNullOrWhiteSpace(request.IfName)) return DaemonReply.Failure("invalid", "ifName: empty");
        var key = new AllocationKey(DaemonProtocol.KeyOf(request.ContainerId, request.IfName));
        var started = Stopwatch.GetTimestamp();
        DaemonReply reply = request.Command switch
        {
            DaemonProtocol.Add => await _ipam.AskAsync(new Allocate(_node.Name, key, request.Pod)) switch
            {
                AddressAssigned assigned => new DaemonReply(true, assigned.Address.ToString()),
                var other => Failure(other),
            },
            // A DEL of what is not held succeeds: the runtime may repeat it, and after a failed ADD it always comes.
            DaemonProtocol.Del => await _ipam.AskAsync(new Release(key, null, $"CNI DEL {request.Pod ?? request.ContainerId}")) switch
            {
                Succeeded => new DaemonReply(true),
                Failed { Error.Code: IpamErrorCode.NotFound } => new DaemonReply(true),
                var other => Failure(other),
            },
            DaemonProtocol.Check => await _ipam.AskAsync(new GetAddress(key)) switch
            {
                AddressAssigned held => new DaemonReply(true, held.Address.ToString()),
                var other => Failure(other),
            },
            _ => DaemonReply.Failure("invalid", $"command: '{request.Command}' is none of ADD, DEL, CHECK, STATUS, GC"),
        };
        var millis = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (reply.Ok) _log.Info("CNI {0} {1}{2}: {3} ({4:0.0} ms)", request.Command, key, request.Pod is null ? "" : $" pod {request.Pod}", reply.Address ?? "ok", millis);
        else _log.Warning("CNI {0} {1}: {2}: {3}", request.Command, key, reply.Code, reply.Error);
        return reply;
    }

    /// <summary>
    /// CNI GC: releases every address of this node whose key is a CNI attachment (container id/interface) that the runtime
    /// no longer lists, such as one whose DEL never came. Each release is an event saying so.
    /// </summary>
    private async Task<DaemonReply> CollectGarbageAsync(IReadOnlyCollection<string> valid)
    {
        if (await _ipam.AskAsync(new GetAllocations(_node.Name)) is not AllocationsOf held) return DaemonReply.Failure("unavailable", "GC: the node's addresses could not be read");
        var keep = valid.ToHashSet(StringComparer.Ordinal);
        var stale = held.Allocations.Where(a => a.Key.Value.Contains('/') && !keep.Contains(a.Key.Value)).ToList();
        var released = 0;
        foreach (var allocation in stale)
        {
            var reply = await _ipam.AskAsync(new Release(allocation.Key, null, "CNI GC: not among the runtime's valid attachments"));
            if (reply is Succeeded) released++;
            else if (reply is Failed { Error.Code: not IpamErrorCode.NotFound } failed) return Failure(failed) with { Released = released };
        }
        _log.Info("CNI GC: {0} valid attachments; released {1} of {2} addresses held by this node: {3}", keep.Count, released, held.Allocations.Length,
            string.Join(", ", stale.Select(a => $"{a.Address} ({a.Key})")));
        return new DaemonReply(true, Released: released);
    }

    private static DaemonReply Failure(IpamReply reply) => reply is Failed failed
        ? DaemonReply.Failure(failed.Error.CodeText, failed.Error.Message)
        : DaemonReply.Failure("unavailable", $"unexpected IPAM answer {reply.GetType().Name}");

    /// <summary>Hands the subnet's block ownership to the host agent every refresh interval; the agent applies only differences.</summary>
    private async Task RefreshOwnershipAsync()
    {
        using var timer = new PeriodicTimer(_refreshInterval);
        do
        {
            if (await _ipam.AskAsync(new GetSubnet(_node.Subnet)) is SubnetView view)
                _hostAgent.Tell(new HostAgentMessages.ApplyOwnership(view.Subnet, $"block ownership of subnet {_node.Subnet}"));
        } while (await Tick(timer));
    }

    private async Task<bool> Tick(PeriodicTimer timer)
    {
        try { return await timer.WaitForNextTickAsync(_stop.Token); }
        catch (OperationCanceledException) { return false; }
    }

    /// <summary>A forwarder is alive while its daemon accepts TCP connections on the probe port; nothing is read or written.</summary>
    private async Task AnswerProbesAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                using var probe = await _healthListener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested) return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _log.Info("Romana daemon stopping: CNI socket closed; host routes stay in place for the next start");
        await _stop.CancelAsync();
        await _cni.DisposeAsync();
        _healthListener.Stop();
        await _background;
        await _ipam.DisposeAsync();
    }
}
