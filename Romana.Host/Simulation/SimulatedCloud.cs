using System.Collections.Concurrent;
using Akka.Actor;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Health;

namespace Romana.Host.Simulation;

/// <summary>Simulated nodes whose daemons answer probes, or do not, as the scenario says.</summary>
public sealed class SimulatedNodes : IHealthProbe
{
    private readonly ConcurrentDictionary<NodeName, bool> _down = new();

    public void Fail(NodeName node) => _down[node] = true;
    public void Recover(NodeName node) => _down.TryRemove(node, out _);
    public bool IsDown(NodeName node) => _down.ContainsKey(node);
    public IReadOnlyCollection<NodeName> Down => [.. _down.Keys];

    public Task<bool> ProbeAsync(NodeName node, Ipv4 ip, TimeSpan timeout, CancellationToken cancellation = default) =>
        Task.FromResult(!_down.ContainsKey(node));
}

/// <summary>
/// Collects every persisted event the actors publish, in order, for the timeline: the route manager's and the health
/// supervisors' (the IPAM's node events, published for the metrics and logs, are not the timeline's).
/// </summary>
public sealed class EventRecorder : ReceiveActor
{
    private readonly ConcurrentQueue<IRomanaEvent> _events;

    public EventRecorder(ConcurrentQueue<IRomanaEvent> events)
    {
        _events = events;
        Receive<IRomanaEvent>(e =>
        {
            if (e is not IIpamEvent) _events.Enqueue(e);
        });
    }

    public static Props Props(ConcurrentQueue<IRomanaEvent> events) => Akka.Actor.Props.Create(() => new EventRecorder(events));

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(IRomanaEvent));
}
