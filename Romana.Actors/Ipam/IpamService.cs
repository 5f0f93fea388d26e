using Akka.Actor;
using Akka.Configuration;
using Romana.Actors.Configuration;
using Romana.Actors.Persistence;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Ipam;

/// <summary>An actor system running the IPAM actors on a journal, ready once every zone, subnet and node has recovered.</summary>
public sealed class IpamService : IAsyncDisposable
{
    private IpamService(ActorSystem system, IActorRef ipam, IpamSettings settings)
    {
        System = system;
        Ipam = ipam;
        Settings = settings;
    }

    public ActorSystem System { get; }
    public IActorRef Ipam { get; }
    public IpamSettings Settings { get; }

    /// <summary>Starts the system; a topology that contradicts the journal or a journal that cannot be read throws <see cref="IpamStartException"/>.</summary>
    public static async Task<IpamService> StartAsync(ClusterTopology topology, JournalSettings persistence,
        IpamSettings? settings = null, Config? config = null, IClock? clock = null, string name = "romana")
    {
        var full = (config ?? Config.Empty).WithFallback(PersistenceConfig.For(persistence)).WithFallback(RomanaConfig.Reference);
        return await StartOnAsync(ActorSystem.Create(name, full), topology, settings, clock ?? SystemClock.Instance);
    }

    /// <summary>Starts the IPAM on an actor system made by the caller (a simulation's, with its virtual clock); disposing stops the system.</summary>
    public static async Task<IpamService> StartOnAsync(ActorSystem system, ClusterTopology topology, IpamSettings? settings, IClock clock)
    {
        settings ??= IpamSettings.Default;
        var ipam = system.ActorOf(IpamActor.Props(topology, settings, clock), "ipam");
        IpamReply ready;
        try
        {
            ready = await ipam.Ask<IpamReply>(new AwaitReady(), settings.StartupTimeout + TimeSpan.FromSeconds(5));
        }
        catch (AskTimeoutException)
        {
            ready = new Failed(IpamError.Unavailable($"IPAM did not recover within {settings.StartupTimeout.TotalSeconds:0}s"));
        }
        if (ready is Failed failed)
        {
            await system.Terminate();
            throw new IpamStartException(failed.Error);
        }
        return new IpamService(system, ipam, settings);
    }

    /// <summary>Sends a command or query to the front door; a missing answer becomes an "unavailable" failure.</summary>
    public async Task<IpamReply> AskAsync(object message)
    {
        try
        {
            return await Ipam.Ask<IpamReply>(message, Settings.AskTimeout * 2);
        }
        catch (AskTimeoutException)
        {
            return new Failed(IpamError.Unavailable($"IPAM did not answer within {(Settings.AskTimeout * 2).TotalSeconds:0.#}s"));
        }
    }

    public async ValueTask DisposeAsync() => await CoordinatedShutdown.Get(System).Run(CoordinatedShutdown.ClrExitReason.Instance);
}

public sealed class IpamStartException(IpamError error) : Exception(error.Message)
{
    public IpamError Error { get; } = error;
}
