using Akka.Actor;
using Romana.Actors.Configuration;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Ipam;

/// <summary>The IPAM front door as callers outside the actors use it: every question answered, a missing answer an error.</summary>
public sealed class IpamClient(IActorRef ipam, IpamSettings settings)
{
    public IActorRef FrontDoor { get; } = ipam;
    public IpamSettings Settings { get; } = settings;

    /// <summary>Waits until every zone, subnet and node has recovered; a topology that contradicts the journal or a journal
    /// that cannot be read throws <see cref="IpamStartException"/>.</summary>
    public async Task AwaitReadyAsync(CancellationToken cancellation = default)
    {
        IpamReply ready;
        try
        {
            ready = await FrontDoor.Ask<IpamReply>(new AwaitReady(), Settings.StartupTimeout + TimeSpan.FromSeconds(5), cancellation);
        }
        catch (AskTimeoutException)
        {
            ready = new Failed(IpamError.Unavailable($"IPAM did not recover within {Settings.StartupTimeout.TotalSeconds:0}s"));
        }
        if (ready is Failed failed) throw new IpamStartException(failed.Error);
    }

    /// <summary>
    /// Sends a command or query to the front door; a missing answer becomes an "unavailable" failure. A reservation waits
    /// longer: the ledger holds, then records, in every subnet it touches.
    /// </summary>
    public async Task<IpamReply> AskAsync(object message)
    {
        var within = message is Reserve or Unreserve
            ? ReservationLedger.AnswerWithin(Settings) + Settings.AskTimeout
            : Settings.AskTimeout * 2;
        try
        {
            return await FrontDoor.Ask<IpamReply>(message, within);
        }
        catch (AskTimeoutException)
        {
            return new Failed(IpamError.Unavailable($"IPAM did not answer within {within.TotalSeconds:0.#}s"));
        }
    }
}

public sealed class IpamStartException(IpamError error) : Exception(error.Message)
{
    public IpamError Error { get; } = error;
}
