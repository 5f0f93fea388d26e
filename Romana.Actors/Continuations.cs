using Akka.Actor;

namespace Romana.Actors;

/// <summary>A step of a protocol, run as a message to the actor itself, so it touches the actor's state on its own thread.</summary>
internal sealed record Continue(Action Run);

internal static class Continuations
{
    /// <summary>Asks <paramref name="target"/>; the reply (null when none came in time) is handled by <paramref name="then"/> as a later message to <paramref name="self"/>.</summary>
    public static void AskThen(this IActorRef self, IActorRef target, object message, TimeSpan timeout, Action<object?> then) =>
        target.Ask<object>(message, timeout)
            .ContinueWith(t => new Continue(() => then(t.IsCompletedSuccessfully ? t.Result : null)), TaskContinuationOptions.ExecuteSynchronously)
            .PipeTo(self);

    /// <summary>Asks every target at once; the replies come back in the targets' order, null where none came in time.</summary>
    public static void AskAllThen(this IActorRef self, IReadOnlyList<(IActorRef Target, object Message)> asks, TimeSpan timeout,
        Action<IReadOnlyList<object?>> then) =>
        Task.WhenAll(asks.Select(a => a.Target.Ask<object>(a.Message, timeout)
                .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null, TaskContinuationOptions.ExecuteSynchronously)))
            .ContinueWith(t => new Continue(() => then(t.Result)), TaskContinuationOptions.ExecuteSynchronously)
            .PipeTo(self);
}
