using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using Romana.Contracts.Cni;
using Romana.Host.Composition;
using Romana.Host.Persistence;
using ClusterSettings = Romana.Host.Composition.ClusterSettings;

namespace Romana.Host.Dataplane;

/// <summary>
/// How long a daemon whose actor system stopped on its own waits before it starts again (romana.cluster.rejoin-backoff),
/// doubled after each start that fails, up to romana.cluster.rejoin-max-backoff.
/// </summary>
public sealed record RejoinSettings(TimeSpan Backoff, TimeSpan MaxBackoff)
{
    public const string BackoffSetting = $"{ClusterSettings.Section}.rejoin-backoff";
    public const string MaxBackoffSetting = $"{ClusterSettings.Section}.rejoin-max-backoff";

    public static RejoinSettings From(Config config)
    {
        if (!ReferenceEquals(config, RomanaConfig.Reference)) config = config.WithFallback(RomanaConfig.Reference);
        var backoff = ConfigValues.Duration(config, BackoffSetting);
        if (backoff <= TimeSpan.Zero)
            throw ConfigValues.Error(config, BackoffSetting, $"{ConfigValues.Text(config, BackoffSetting)} must be positive");
        var max = ConfigValues.Duration(config, MaxBackoffSetting);
        if (max < backoff)
            throw ConfigValues.Error(config, MaxBackoffSetting, $"{ConfigValues.Text(config, MaxBackoffSetting)} is shorter than " +
                $"{BackoffSetting} ({ConfigValues.Text(config, BackoffSetting)})");
        return new RejoinSettings(backoff, max);
    }

    /// <summary>The wait after one that ended in a failed start: twice as long, at most <see cref="MaxBackoff"/>.</summary>
    public TimeSpan After(TimeSpan wait) => wait * 2 < MaxBackoff ? wait * 2 : MaxBackoff;
}

/// <summary>
/// Keeps `romana daemon` running in its process. When the daemon's actor system stops without a stop being asked — the
/// cluster downed this member (the split-brain resolver on the minority side of a partition, or another member's Down), or
/// removed it — the supervisor says so in one line, stops the old daemon in its orderly way (CNI socket first, journal
/// last: plugins are told no daemon is there, and the runtime tries again), waits <see cref="RejoinSettings.Backoff"/>,
/// and starts a new daemon from the same configuration: a new actor system, hence a new incarnation that the cluster lets
/// join, on the same remoting address, CNI socket and journal. The old actor system has terminated before the new one
/// starts, so the node's IPAM actor (node-N) never has two writers. A start that fails is tried again after a wait twice
/// as long (up to <see cref="RejoinSettings.MaxBackoff"/>); only the first start's failure ends the process. A stop asked
/// for (SIGTERM, Ctrl-C: the token given to <see cref="RunAsync"/>) ends the loop wherever it is: during a wait nothing
/// more is started; a start under way is let finish, and what it started is stopped.
/// <para>
/// A rejoin joins an existing cluster and never starts one: this member's own address is left out of the seed nodes,
/// and the members its old incarnation last saw up are added to them. A first seed node that restarts while still cut off
/// would otherwise start a second cluster on the same journal after seed-node-timeout (two writers per subnet, two route
/// managers). Only a member that knows no other member (the only seed, alone) starts the cluster again, as it did at its
/// first start.
/// </para>
/// </summary>
public sealed class DaemonSupervisor
{
    private readonly Config _config;
    private readonly Func<Config, Task<RomanaDaemon>> _start;
    private readonly RejoinSettings _settings;
    private readonly TextWriter _log;
    private RomanaDaemon? _current;
    private int _starts;

    private DaemonSupervisor(Config config, Func<Config, Task<RomanaDaemon>> start, RejoinSettings settings, TextWriter log)
    {
        _config = config;
        _start = start;
        _settings = settings;
        _log = log;
    }

    /// <summary>The daemon running now; null between the stop of one and the start of the next.</summary>
    public RomanaDaemon? Current => Volatile.Read(ref _current);

    /// <summary>How many daemons have started, the first included.</summary>
    public int Starts => Volatile.Read(ref _starts);

    public RejoinSettings Settings => _settings;

    /// <summary>
    /// Starts the first daemon with <paramref name="start"/> on <paramref name="config"/>; its failure is thrown, as a daemon
    /// that never ran has nothing to rejoin. <paramref name="log"/> receives the supervisor's lines (standard error).
    /// </summary>
    public static async Task<DaemonSupervisor> StartAsync(Config config, Func<Config, Task<RomanaDaemon>> start, TextWriter log)
    {
        var supervisor = new DaemonSupervisor(config, start, RejoinSettings.From(config), log);
        supervisor._current = await start(config);
        supervisor._starts = 1;
        return supervisor;
    }

    /// <summary>Runs until <paramref name="stop"/> is cancelled, starting the daemon again whenever it stops on its own.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var stopAsked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var registration = stop.Register(() => stopAsked.TrySetResult());
        var daemon = Current ?? throw new InvalidOperationException("the supervisor runs once");
        while (true)
        {
            if (await Task.WhenAny(stopAsked.Task, daemon.Terminated) == stopAsked.Task)
            {
                Volatile.Write(ref _current, null);
                await daemon.DisposeAsync();
                return;
            }
            var wait = _settings.Backoff;
            var rejoin = RejoinConfig(daemon);
            await WriteAsync($"{WhatHappened(daemon)}; the daemon stops (CNI socket closed, journal last) and starts again in " +
                $"{Seconds(wait)}{(ClusterSettings.From(_config).Enabled ? ", joining the cluster anew" : "")}");
            Volatile.Write(ref _current, null);
            await daemon.DisposeAsync();
            while (true)
            {
                try
                {
                    await Task.Delay(wait, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                try
                {
                    daemon = await _start(rejoin);
                    break;
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    if (stop.IsCancellationRequested) return;
                    wait = _settings.After(wait);
                    await WriteAsync($"starting again: cannot start: {Describe(e)}; trying again in {Seconds(wait)}");
                }
            }
            Interlocked.Increment(ref _starts);
            Volatile.Write(ref _current, daemon);
        }
    }

    private async Task WriteAsync(string line)
    {
        await _log.WriteLineAsync($"romana: {line}");
        await _log.FlushAsync();
    }

    private static string Seconds(TimeSpan wait) => $"{wait.TotalSeconds:0.###}s";

    /// <summary>Why the actor system stopped, from the reason its coordinated shutdown was run with.</summary>
    private string WhatHappened(RomanaDaemon daemon)
    {
        var member = ClusterSettings.From(_config).Enabled ? $" ({Cluster.Get(daemon.System).SelfAddress})" : "";
        return CoordinatedShutdown.Get(daemon.System).ShutdownReason switch
        {
            CoordinatedShutdown.ClusterDowningReason => $"this member{member} was downed by the cluster",
            CoordinatedShutdown.ClusterLeavingReason => $"this member{member} was removed from the cluster",
            CoordinatedShutdown.ClusterJoinUnsuccessfulReason => $"this member{member} could not join its seed nodes",
            null => $"the daemon's actor system{member} stopped",
            var reason => $"the daemon's actor system{member} stopped ({reason.GetType().Name})",
        };
    }

    /// <summary>
    /// The configuration of the next start: the same, with the seed nodes of a rejoin (this member left out; the members the
    /// old incarnation last saw up added), so the new actor system joins the cluster that is there and never starts one.
    /// </summary>
    private Config RejoinConfig(RomanaDaemon old)
    {
        var settings = ClusterSettings.From(_config);
        if (!settings.Enabled) return _config;
        var cluster = Cluster.Get(old.System);
        var self = cluster.SelfAddress;
        bool IsSelf(Address address) =>
            address.Port is { } port
            && ((port == self.Port && string.Equals(address.Host, self.Host, StringComparison.OrdinalIgnoreCase))
                || (port == settings.Port && string.Equals(address.Host, settings.Hostname, StringComparison.OrdinalIgnoreCase)));
        var configured = settings.SeedNodes.Select(seed => ActorPath.TryParseAddress(seed, out var address) ? address : null)
            .OfType<Address>();
        var seen = cluster.State.Members.Where(m => m.Status is MemberStatus.Up or MemberStatus.WeaklyUp).Select(m => m.Address);
        var seeds = configured.Concat(seen)
            .Where(address => !IsSelf(address))
            .DistinctBy(address => $"{address.Host?.ToLowerInvariant()}:{address.Port}")
            .ToList();
        if (seeds.Count == 0) return _config;
        var list = string.Join(", ", seeds.Select(seed => System.Text.Json.JsonSerializer.Serialize(seed.ToString())));
        return ConfigurationFactory.ParseString($"{ClusterSettings.Section}.seed-nodes = [{list}]").WithFallback(_config);
    }

    /// <summary>A failed start in one line, as the command line reports the first one.</summary>
    private static string Describe(Exception e) => e switch
    {
        IpamStartException ipam => Printable.Text(ipam.Error.ToString()),
        DaemonStartException or JournalUnavailableException or ConfigurationError or TopologyException => Printable.Text(e.Message),
        _ => $"unexpected {e.GetType().Name}: {Printable.Text(e.Message)}",
    };
}
