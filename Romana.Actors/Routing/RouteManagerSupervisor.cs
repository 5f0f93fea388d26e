using Akka.Actor;
using Akka.Event;

namespace Romana.Actors.Routing;

/// <summary>
/// Keeps one incarnation of the route manager running and forwards to it. An incarnation stops when its journal fails
/// (a persistent actor does); a new one recovers from the journal after <c>restartBackoff</c>. Messages that arrive
/// meanwhile wait, so nobody talking to the route manager sees it missing. <see cref="Restart"/> ends the incarnation
/// on purpose (the simulation's restartRouteManager; a hand-over does the same across members).
/// </summary>
public sealed class RouteManagerSupervisor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private readonly Props _manager;
    private readonly TimeSpan _restartBackoff;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef _current = ActorRefs.Nobody;
    private int _incarnation;

    public RouteManagerSupervisor(Props manager, TimeSpan restartBackoff)
    {
        _manager = manager;
        _restartBackoff = restartBackoff;
        Spawn();
        Serving();
    }

    public static Props Props(Props manager, TimeSpan restartBackoff) =>
        Akka.Actor.Props.Create(() => new RouteManagerSupervisor(manager, restartBackoff));

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Stop the running incarnation now and start a new one from the journal.</summary>
    public sealed record Restart;

    private sealed record StartNext : INoSerializationVerificationNeeded;

    /// <summary>A stopped child is not restarted in place: the next incarnation is a new actor that recovers.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    private void Spawn() => _current = Context.Watch(Context.ActorOf(_manager, $"incarnation-{++_incarnation}"));

    private void StartIncarnation()
    {
        Spawn();
        Become(Serving);
        Stash.UnstashAll();
    }

    private void Serving()
    {
        Receive<Restart>(_ =>
        {
            Context.Stop(_current);
            Become(() => Stopping(onPurpose: true));
        });
        Receive<Terminated>(t => t.ActorRef.Equals(_current), _ =>
        {
            _log.Warning("Route manager stopped (a journal failure); a new incarnation recovers from the journal in {0}", _restartBackoff);
            Timers.StartSingleTimer("restart", new StartNext(), _restartBackoff);
            Become(() => Stopping(onPurpose: false));
        });
        Receive<Terminated>(_ => { });
        ReceiveAny(message => _current.Forward(message));
    }

    private void Stopping(bool onPurpose)
    {
        if (onPurpose) Receive<Terminated>(t => t.ActorRef.Equals(_current), _ => StartIncarnation());
        Receive<StartNext>(_ => StartIncarnation());
        Receive<Terminated>(_ => { });
        ReceiveAny(_ => Stash.Stash());
    }
}
