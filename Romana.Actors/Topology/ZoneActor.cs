using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using static Romana.Actors.Topology.ZoneMessages;

namespace Romana.Actors.Topology;

/// <summary>
/// One zone: persists its prefix and its subnets' prefixes the first time they are configured, refuses a
/// configuration that would move them, and runs the actors of its subnets.
/// </summary>
public sealed class ZoneActor : ReceivePersistentActor
{
    private readonly ZoneLayout _layout;
    private readonly int _blockPrefixLength;
    private readonly IpamSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly bool _startSubnets;
    private ZoneState _state;

    /// <param name="startSubnets">Local placement: the zone runs its subnets' actors; in a cluster they are sharded entities.</param>
    public ZoneActor(ZoneLayout layout, int blockPrefixLength, IpamSettings settings, IClock clock, bool startSubnets = true)
    {
        _startSubnets = startSubnets;
        _layout = layout;
        _blockPrefixLength = blockPrefixLength;
        _settings = settings;
        _clock = clock;
        _state = ZoneState.Empty(layout.Name);

        Recover<IIpamEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ => Self.Tell(new DeclareLayout()));
        Command<DeclareLayout>(_ => Declare());
        CommandAny(_ => Stash.Stash());
    }

    public static Props Props(ZoneLayout layout, int blockPrefixLength, IpamSettings settings, IClock clock, bool startSubnets = true) =>
        Akka.Actor.Props.Create(() => new ZoneActor(layout, blockPrefixLength, settings, clock, startSubnets));

    public override string PersistenceId => $"zone-{_layout.Name.Value}";

    private void Declare()
    {
        var (events, error) = _state.DecideDeclare(_layout, _clock.Now);
        if (error is not null)
        {
            _log.Error("Zone {0}: {1}", _layout.Name, error.Message);
            Become(() => Command<GetSubnets>(_ => Sender.Tell(new ZoneFailed(_layout.Name, error))));
            Stash.UnstashAll();
            return;
        }
        if (events.IsEmpty) StartSubnets();
        else
        {
            var left = events.Length;
            PersistAll(events, e =>
            {
                _state = _state.Apply(e);
                if (--left == 0) StartSubnets();
            });
        }
    }

    private void StartSubnets()
    {
        var subnets = !_startSubnets ? ImmutableDictionary<SubnetId, IActorRef>.Empty : _layout.Subnets.ToImmutableDictionary(s => s.Id,
            s => Context.ActorOf(Supervision.RestartingOnStop(SubnetActor.Props(s, _blockPrefixLength, _settings, _clock),
                $"subnet {s.Id}'s actor", _settings),
                $"subnet-{Uri.EscapeDataString(s.Id.Value)}"));
        Become(() => Command<GetSubnets>(_ => Sender.Tell(new ZoneReady(_layout.Name, subnets))));
        Stash.UnstashAll();
    }

    private sealed record DeclareLayout : INoSerializationVerificationNeeded;
}
