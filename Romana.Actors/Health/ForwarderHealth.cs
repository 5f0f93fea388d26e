using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Pattern;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using static Romana.Actors.Health.HealthMessages;

namespace Romana.Actors.Health;

/// <summary>
/// The forwarder supervisors of every subnet, one child each (restarted from its journal after a backoff when its
/// journal fails), and the one address for commands to them: each carries its subnet and is forwarded, sender kept.
/// </summary>
public sealed class ForwarderHealth : ReceiveActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public ForwarderHealth(ImmutableArray<SubnetId> subnets, IHealthProbe probe, HealthSettings settings, IActorRef routeManager,
        IClock clock)
    {
        var supervisors = subnets.ToImmutableDictionary(subnet => subnet, subnet => Context.ActorOf(
            BackoffSupervisor.Props(Backoff.OnStop(SubnetHealthSupervisor.Props(subnet, probe, settings, routeManager, clock),
                "supervisor", settings.ProbeInterval, settings.ProbeInterval * 20, 0.2, -1)),
            $"subnet-{Uri.EscapeDataString(subnet.Value)}"));
        Receive<ISubnetHealthCommand>(command =>
        {
            if (supervisors.TryGetValue(command.Subnet, out var supervisor)) supervisor.Forward(command);
            else _log.Warning("Forwarder health: {0} names subnet {1}, which is not in the topology", command.GetType().Name,
                command.Subnet);
        });
        Receive<SyncAll>(_ =>
        {
            var gather = Context.ActorOf(Akka.Actor.Props.Create(() => new SyncGatherer(Sender, supervisors.Count)));
            foreach (var (subnet, supervisor) in supervisors) supervisor.Tell(new Sync(subnet), gather);
        });
    }

    /// <summary>Answers <see cref="SyncedAll"/> to the asker once every supervisor answered its <see cref="Sync"/>, then stops.</summary>
    private sealed class SyncGatherer : ReceiveActor
    {
        private readonly List<SubnetHealth> _answers = new();

        public SyncGatherer(IActorRef asker, int expected)
        {
            if (expected == 0) Answer(asker);
            Receive<SubnetHealth>(health =>
            {
                _answers.Add(health);
                if (_answers.Count == expected) Answer(asker);
            });
        }

        private void Answer(IActorRef asker)
        {
            asker.Tell(new SyncedAll([.. _answers]));
            Context.Stop(Self);
        }
    }

    public static Props Props(ImmutableArray<SubnetId> subnets, IHealthProbe probe, HealthSettings settings, IActorRef routeManager,
        IClock clock) =>
        Akka.Actor.Props.Create(() => new ForwarderHealth(subnets, probe, settings, routeManager, clock));
}
