using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using static Romana.Actors.Dataplane.HostAgentMessages;

namespace Romana.Actors.Dataplane;

/// <summary>
/// Hands the host agent its subnet's block ownership as the subnet publishes it (<see cref="OwnershipFeed"/>): no periodic
/// poll of the IPAM. It asks the IPAM once when its subscription stands, and once more a few seconds later (a cluster's
/// publish/subscribe registry spreads by gossip, so a change in between might not reach it); a published change always
/// wins over an answer asked for before it.
/// </summary>
public sealed class OwnershipSubscriber : ReceiveActor, IWithTimers
{
    private sealed record AskIpam : INoSerializationVerificationNeeded;
    private sealed record Asked(object? Reply, long Changes) : INoSerializationVerificationNeeded;

    private readonly SubnetId _subnet;
    private readonly IpamPlacement _placement;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _changes;

    public ITimerScheduler Timers { get; set; } = null!;

    public OwnershipSubscriber(SubnetId subnet, IpamPlacement placement, IActorRef ipam, IActorRef agent, TimeSpan askTimeout,
        TimeSpan askAgainAfter)
    {
        _subnet = subnet;
        _placement = placement;
        var reason = $"block ownership of subnet {subnet}";
        Receive<SubscribeAck>(_ =>
        {
            Self.Tell(new AskIpam());
            Timers.StartSingleTimer("again", new AskIpam(), askAgainAfter);
        });
        Receive<OwnershipFeed.OwnershipChanged>(changed =>
        {
            if (changed.Subnet.Subnet != _subnet) return;
            _changes++;
            agent.Tell(new ApplyOwnership(changed.Subnet, reason));
        });
        Receive<AskIpam>(_ => ipam.Ask<object>(new IpamMessages.GetSubnet(_subnet), askTimeout)
            .PipeTo(Self, success: r => new Asked(r, _changes), failure: _ => new Asked(null, _changes)));
        Receive<Asked>(asked =>
        {
            if (asked.Reply is IpamMessages.SubnetView view)
            {
                if (asked.Changes == _changes) agent.Tell(new ApplyOwnership(view.Subnet, reason));
                return;
            }
            _log.Warning("Host agent: the IPAM did not say subnet {0}'s ownership ({1}); asking again", _subnet, asked.Reply);
            Timers.StartSingleTimer("retry", new AskIpam(), askTimeout);
        });
    }

    protected override void PreStart()
    {
        if (_placement == IpamPlacement.Cluster)
            DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(OwnershipFeed.Topic(_subnet), Self));
        else
        {
            Context.System.EventStream.Subscribe(Self, typeof(OwnershipFeed.OwnershipChanged));
            Self.Tell(new AskIpam());
        }
    }

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    public static Props Props(SubnetId subnet, IpamPlacement placement, IActorRef ipam, IActorRef agent, TimeSpan askTimeout,
        TimeSpan askAgainAfter) =>
        Akka.Actor.Props.Create(() => new OwnershipSubscriber(subnet, placement, ipam, agent, askTimeout, askAgainAfter));
}
