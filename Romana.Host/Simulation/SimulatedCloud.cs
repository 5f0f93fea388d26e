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
/// Hosts the route manager's current incarnation and forwards to it, as the cluster singleton proxy does in
/// production; "restart" stops the incarnation and starts a new one, which recovers from the journal.
/// </summary>
public sealed class RouteManagerHost : ReceiveActor, IWithUnboundedStash
{
    private readonly Props _manager;
    private IActorRef _current;
    private int _incarnation;

    public RouteManagerHost(Props manager)
    {
        _manager = manager;
        _current = Start();
        Serving();
    }

    public IStash Stash { get; set; } = null!;

    public static Props Props(Props manager) => Akka.Actor.Props.Create(() => new RouteManagerHost(manager));

    private IActorRef Start() => Context.Watch(Context.ActorOf(_manager, $"vpc-routes-{++_incarnation}"));

    private void Serving()
    {
        Receive<Restart>(_ =>
        {
            Context.Stop(_current);
            Become(() =>
            {
                Receive<Terminated>(t => t.ActorRef.Equals(_current), _ =>
                {
                    _current = Start();
                    Become(Serving);
                    Stash.UnstashAll();
                });
                ReceiveAny(_ => Stash.Stash());
            });
        });
        Receive<Terminated>(_ => { });
        ReceiveAny(message => _current.Forward(message));
    }

    public sealed record Restart;
}

/// <summary>Collects every persisted event the actors publish, in order, for the timeline.</summary>
public sealed class EventRecorder : ReceiveActor
{
    private readonly ConcurrentQueue<IRomanaEvent> _events;

    public EventRecorder(ConcurrentQueue<IRomanaEvent> events)
    {
        _events = events;
        Receive<IRomanaEvent>(e => _events.Enqueue(e));
    }

    public static Props Props(ConcurrentQueue<IRomanaEvent> events) => Akka.Actor.Props.Create(() => new EventRecorder(events));

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(IRomanaEvent));
}
