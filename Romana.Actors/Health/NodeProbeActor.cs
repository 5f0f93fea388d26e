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
        Receive<Continue>(step => step.Run());
    }

    public static Props Props(NodeName node, Ipv4 ip, IHealthProbe probe, HealthSettings settings) =>
        Akka.Actor.Props.Create(() => new NodeProbeActor(node, ip, probe, settings));

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart() => Timers.StartPeriodicTimer("probe", new Tick(), _settings.ProbeInterval);

    private void Probe()
    {
        if (_probing) return; // the previous probe is still out: its timeout will count it
        _probing = true;
        Self.RunThen(_probe.ProbeAsync(_node, _ip, _settings.ProbeTimeout), Observe, _ => Observe(false));
    }

    private void Observe(bool answered)
    {
        _probing = false;
        var (next, changed) = _counter.Observe(answered, _settings.FailureThreshold, _settings.RecoveryThreshold);
        _counter = next;
        if (changed) Context.Parent.Tell(new ProbeJudged(_node, next.Healthy, next.Healthy ? next.Successes : next.Misses));
    }

    private sealed record Tick;
}
