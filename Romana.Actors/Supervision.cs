using Akka.Actor;
using Akka.Pattern;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;

namespace Romana.Actors;

public static class Supervision
{
    /// <summary>
    /// A persistent actor stops when its journal fails; under this supervisor it comes back from its journal after a
    /// backoff, and whoever asks it in the meantime is told it is unavailable instead of waiting.
    /// </summary>
    public static Props RestartingOnStop(Props child, string what, IpamSettings settings) =>
        BackoffSupervisor.Props(Backoff.OnStop(child, "actor", settings.RestartMinBackoff, settings.RestartMaxBackoff, 0.2, -1)
            .WithReplyWhileStopped(new IpamMessages.Failed(IpamError.Unavailable(
                $"{what} is restarting after a journal failure; nothing was changed"))));
}
