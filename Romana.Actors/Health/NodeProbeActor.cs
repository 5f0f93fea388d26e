using Akka.Actor;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Health;

/// <summary>Probes one node every interval and tells its supervisor when the judgement changes.</summary>
public sealed class NodeProbeActor : ReceiveActor, IWithTimers
{
    private readonly NodeName _node;
    private readonly Ipv4 _ip;
    private readonly IHealthProbe _probe;
    private readonly HealthSettings _settings;
    private ProbeCounter _counter = ProbeCounter.Initial;
    private bool _probing;

    public NodeProbeActor(NodeName node, Ipv4 ip, IHealthProbe probe, HealthSettings settings)
    {
        _node = node;
        _ip = ip;
        _probe = probe;
        _settings = settings;
        Receive<Tick>(_ => Probe());
        Receive<ProbeAnswered>(probe => Observe(probe.Answered));
    }

    public static Props Props(NodeName node, Ipv4 ip, IHealthProbe probe, HealthSettings settings) =>
        Akka.Actor.Props.Create(() => new NodeProbeActor(node, ip, probe, settings));

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>
    /// Each node probes at its own phase of the interval, from a stable hash of its name: probes of many nodes do not
    /// all fire at once, and the moment a probe runs does not depend on when its actor happened to start.
    /// </summary>
    protected override void PreStart()
    {
        var interval = _settings.ProbeInterval.Ticks;
        var phase = (long)(Hash(_node.Value) % (ulong)interval);
        var now = Context.System.Scheduler.Now.UtcTicks;
        var first = interval - ((now - phase) % interval + interval) % interval;
        Timers.StartPeriodicTimer("probe", new Tick(), TimeSpan.FromTicks(first), _settings.ProbeInterval);
    }

    private static ulong Hash(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in text) hash = (hash ^ c) * 1099511628211UL;
        return hash;
    }

    private void Probe()
    {
        if (_probing) return; // the previous probe is still out: its timeout will count it
        _probing = true;
        var probe = _probe.ProbeAsync(_node, _ip, _settings.ProbeTimeout);
        if (probe.IsCompleted) Observe(probe.IsCompletedSuccessfully && probe.Result); // simulated probes answer at once
        else probe.PipeTo(Self, success: answered => new ProbeAnswered(answered), failure: _ => new ProbeAnswered(false));
    }

    private void Observe(bool answered)
    {
        _probing = false;
        var (next, changed) = _counter.Observe(answered, _settings.FailureThreshold, _settings.RecoveryThreshold);
        _counter = next;
        if (changed) Context.Parent.Tell(new ProbeJudged(_node, next.Healthy, next.Healthy ? next.Successes : next.Misses));
    }

    private sealed record Tick : INoSerializationVerificationNeeded;

    /// <summary>How a probe that took its time ended; one that failed counts as unanswered.</summary>
    private sealed record ProbeAnswered(bool Answered) : INoSerializationVerificationNeeded;
}
