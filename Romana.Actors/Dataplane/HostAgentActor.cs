using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using static Romana.Actors.Dataplane.HostAgentMessages;

namespace Romana.Actors.Dataplane;

/// <summary>
/// Keeps this host's routes to the other nodes of its subnet (DESIGN.md section 2). It owns no state of its own: it
/// applies the subnet's block ownership to the kernel through <see cref="IHostNetwork"/>, one change at a time, only
/// the difference, and re-reads the kernel every resync interval so a route deleted or changed by hand comes back.
/// Until the first ownership arrives it removes nothing: routes left by an earlier run keep forwarding meanwhile.
/// </summary>
public sealed class HostAgentActor : ReceiveActor, IWithTimers
{
    private sealed record Prepared(IReadOnlyDictionary<Ipv4Cidr, Ipv4> Kernel) : INoSerializationVerificationNeeded;
    private sealed record KernelRead(IReadOnlyDictionary<Ipv4Cidr, Ipv4> Kernel) : INoSerializationVerificationNeeded;
    private sealed record Applied(HostRouteChanges Changes, string Reason) : INoSerializationVerificationNeeded;
    private sealed record AttemptFailed(string What, Exception Cause) : INoSerializationVerificationNeeded;
    private sealed record Resync : INoSerializationVerificationNeeded;

    private readonly NodeName _self;
    private readonly Ipv4Cidr _podCidr;
    private readonly IHostNetwork _network;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<IActorRef> _waiting = [];
    private ImmutableSortedDictionary<Ipv4Cidr, Ipv4> _kernel = ImmutableSortedDictionary<Ipv4Cidr, Ipv4>.Empty;
    private ImmutableSortedDictionary<Ipv4Cidr, Ipv4>? _wanted;
    private string _reason = "";
    private bool _prepared;
    private bool _busy;
    private string? _lastError;

    public ITimerScheduler Timers { get; set; } = null!;

    public HostAgentActor(NodeName self, Ipv4Cidr podCidr, IHostNetwork network, HostAgentSettings settings)
    {
        _self = self;
        _podCidr = podCidr;
        _network = network;
        Receive<ApplyOwnership>(command =>
        {
            _wanted = HostRoutes.Wanted(command.Subnet, _self);
            _reason = command.Reason;
            Next();
        });
        Receive<GetHostRoutes>(_ =>
        {
            _waiting.Add(Sender);
            Next();
        });
        Receive<Prepared>(prepared =>
        {
            _busy = false;
            _prepared = true;
            _lastError = null;
            _kernel = prepared.Kernel.ToImmutableSortedDictionary();
            _log.Info("Host agent of {0} ready: forwarding on, rule for {1} installed, {2} routes found in its table", _self, _podCidr,
                _kernel.Count);
            Next();
        });
        Receive<KernelRead>(read =>
        {
            _busy = false;
            var kernel = read.Kernel.ToImmutableSortedDictionary();
            if (!kernel.SequenceEqual(_kernel))
                _log.Warning("Host routes differ from what the agent applied ({0} found, {1} expected): repairing", kernel.Count,
                    _kernel.Count);
            _kernel = kernel;
            _reason = "drift repair";
            Next();
        });
        Receive<Applied>(applied =>
        {
            _busy = false;
            _lastError = null;
            foreach (var route in applied.Changes.Put)
                _log.Info("Host route {0} via {1} {2} ({3})", route.Block, route.Via,
                    _kernel.ContainsKey(route.Block) ? "re-pointed" : "added", applied.Reason);
            foreach (var block in applied.Changes.Remove)
                _log.Info("Host route {0} via {1} removed ({2})", block, _kernel[block], applied.Reason);
            _kernel = _kernel.SetItems(applied.Changes.Put.Select(r => KeyValuePair.Create(r.Block, r.Via)))
                .RemoveRange(applied.Changes.Remove);
            Next();
        });
        Receive<AttemptFailed>(failed =>
        {
            _busy = false;
            _lastError = $"{failed.What}: {failed.Cause.Message}";
            _log.Error("Host agent of {0}: {1}; retrying at the next resync", _self, _lastError);
            Answer();
        });
        Receive<Resync>(_ =>
        {
            if (_busy) return;
            _busy = true;
            if (!_prepared) Prepare();
            else _network.ReadRoutesAsync()
                .PipeTo(Self, success: kernel => new KernelRead(kernel), failure: e => new AttemptFailed("reading host routes", e));
        });
        Timers.StartPeriodicTimer("resync", new Resync(), settings.ResyncInterval);
    }

    protected override void PreStart()
    {
        _busy = true;
        Prepare();
    }

    private void Prepare() =>
        PrepareThenRead().PipeTo(Self, success: kernel => new Prepared(kernel), failure: e => new AttemptFailed("preparing the host", e));

    private async Task<IReadOnlyDictionary<Ipv4Cidr, Ipv4>> PrepareThenRead()
    {
        await _network.PrepareAsync(_podCidr);
        return await _network.ReadRoutesAsync();
    }

    /// <summary>Applies the next difference, or answers the waiting queries when there is none.</summary>
    private void Next()
    {
        if (_busy || !_prepared) return;
        var changes = _wanted is null ? HostRouteChanges.None : HostRoutes.Diff(_kernel, _wanted);
        if (changes.IsEmpty)
        {
            Answer();
            return;
        }
        _busy = true;
        var reason = _reason;
        _network.ApplyAsync(changes)
            .PipeTo(Self, success: () => new Applied(changes, reason), failure: e => new AttemptFailed($"applying {changes}", e));
    }

    private void Answer()
    {
        foreach (var asker in _waiting) asker.Tell(new HostRoutesNow(_kernel, _lastError));
        _waiting.Clear();
    }

    public static Props Props(NodeName self, Ipv4Cidr podCidr, IHostNetwork network, HostAgentSettings settings) =>
        Akka.Actor.Props.Create(() => new HostAgentActor(self, podCidr, network, settings));
}
