using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;

namespace Romana.Actors.Routing;

/// <summary>
/// Every subnet's block ownership as the subnets publish it (<see cref="OwnershipFeed"/>), kept on every member of a cluster
/// so that the route singleton reads the cluster without asking the subnets on each pass. A subnet's entity may live on a
/// member that has just died, and would not answer until the cluster downed that member and moved its shard (many
/// seconds); a failover must not wait for that: ownership does not change because a node failed.
/// <para>
/// The view asks each subnet once at start and again every <c>refreshEvery</c> (the feed is at-most-once), in the
/// background: a read is answered from the view at once when every subnet is known, and waits for the asks only before
/// that. A published change wins over an answer asked for before it.
/// </para>
/// </summary>
public sealed class OwnershipView : ReceiveActor, IWithTimers
{
    public sealed record Read : INoSerializationVerificationNeeded;

    public sealed record Known(ImmutableArray<SubnetSnapshot> Subnets) : INoSerializationVerificationNeeded;

    /// <summary>One subnet's members and owners as the view knows them now: Known with that subnet, or Unknown.</summary>
    public sealed record ReadSubnet(SubnetId Subnet) : INoSerializationVerificationNeeded;

    /// <summary>Subnets not yet known when the read gave up.</summary>
    public sealed record Unknown(ImmutableArray<SubnetId> Subnets) : INoSerializationVerificationNeeded;

    private sealed record Refresh : INoSerializationVerificationNeeded;

    private sealed record Fetched(SubnetId Subnet, SubnetSnapshot? View, long Changes) : INoSerializationVerificationNeeded;

    private sealed record ReadTimedOut(IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    private readonly ImmutableArray<SubnetId> _subnets;
    private readonly IpamPlacement _placement;
    private readonly TimeSpan _refreshEvery;
    private readonly Dictionary<SubnetId, SubnetSnapshot> _known = new();
    private readonly Dictionary<SubnetId, long> _changes = new();
    private readonly List<IActorRef> _waiting = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public ITimerScheduler Timers { get; set; } = null!;

    public OwnershipView(ClusterTopology topology, IpamPlacement placement, IActorRef ipam, TimeSpan askTimeout, TimeSpan refreshEvery)
    {
        _subnets = [.. topology.Subnets.Where(s => s.RouteTable is not null).Select(s => s.Id)];
        _placement = placement;
        _refreshEvery = refreshEvery;
        Receive<OwnershipFeed.OwnershipChanged>(changed =>
        {
            if (!_subnets.Contains(changed.Subnet.Subnet)) return;
            _changes[changed.Subnet.Subnet] = _changes.GetValueOrDefault(changed.Subnet.Subnet) + 1;
            Learn(changed.Subnet);
        });
        Receive<SubscribeAck>(_ => { });
        Receive<Refresh>(_ =>
        {
            foreach (var subnet in _subnets)
            {
                var changes = _changes.GetValueOrDefault(subnet);
                ipam.Ask<object>(new IpamMessages.GetSubnet(subnet), askTimeout).PipeTo(Self,
                    success: reply => new Fetched(subnet, (reply as IpamMessages.SubnetView)?.Subnet, changes),
                    failure: _ => new Fetched(subnet, null, changes));
            }
        });
        Receive<Fetched>(fetched =>
        {
            if (fetched.View is null)
            {
                if (!_known.ContainsKey(fetched.Subnet))
                    _log.Warning("Route view: subnet {0} did not say its ownership; asking again", fetched.Subnet);
                return;
            }
            if (fetched.Changes == _changes.GetValueOrDefault(fetched.Subnet)) Learn(fetched.View);
        });
        Receive<Read>(_ =>
        {
            if (Complete()) Sender.Tell(Snapshot());
            else
            {
                _waiting.Add(Sender);
                Timers.StartSingleTimer(Sender, new ReadTimedOut(Sender), askTimeout);
                Self.Tell(new Refresh());
            }
        });
        Receive<ReadSubnet>(read => Sender.Tell(_known.TryGetValue(read.Subnet, out var subnet)
            ? new Known([subnet]) : new Unknown([read.Subnet])));
        Receive<ReadTimedOut>(timedOut =>
        {
            if (!_waiting.Remove(timedOut.ReplyTo)) return;
            timedOut.ReplyTo.Tell(new Unknown([.. _subnets.Where(s => !_known.ContainsKey(s))]));
        });
    }

    protected override void PreStart()
    {
        if (_placement == IpamPlacement.Cluster)
            foreach (var subnet in _subnets)
                DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(OwnershipFeed.Topic(subnet), Self));
        else Context.System.EventStream.Subscribe(Self, typeof(OwnershipFeed.OwnershipChanged));
        Self.Tell(new Refresh());
        Timers.StartPeriodicTimer("refresh", new Refresh(), _refreshEvery);
    }

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    private bool Complete() => _subnets.All(_known.ContainsKey);

    private Known Snapshot() => new([.. _subnets.Select(s => _known[s])]);

    private void Learn(SubnetSnapshot subnet)
    {
        _known[subnet.Subnet] = subnet;
        if (!Complete() || _waiting.Count == 0) return;
        var answer = Snapshot();
        foreach (var waiting in _waiting)
        {
            Timers.Cancel(waiting);
            waiting.Tell(answer);
        }
        _waiting.Clear();
    }

    public static Props Props(ClusterTopology topology, IpamPlacement placement, IActorRef ipam, TimeSpan askTimeout,
        TimeSpan refreshEvery) =>
        Akka.Actor.Props.Create(() => new OwnershipView(topology, placement, ipam, askTimeout, refreshEvery));
}

/// <summary>
/// The route manager's cluster read from an <see cref="OwnershipView"/>: the subnets' members (with their ENIs) and block
/// owners. Pod counts are a node's own (each daemon decides its own node's addresses), so every block is weighed as if
/// full, as <see cref="IpamRoutingSource"/> weighs another node's block.
/// </summary>
public sealed class OwnershipRoutingSource(IActorRef view, ClusterTopology topology, TimeSpan timeout) : IRoutingSource
{
    public async Task<RoutingSnapshot> ReadAsync(CancellationToken cancellation = default)
    {
        var reply = await view.Ask<object>(new OwnershipView.Read(), timeout, cancellation);
        return reply switch
        {
            OwnershipView.Known known => IpamRoutingSource.Snapshot(new IpamMessages.IpamStateView(known.Subnets, []), topology),
            OwnershipView.Unknown unknown => throw new InvalidOperationException(
                $"the ownership of subnet(s) {string.Join(", ", unknown.Subnets)} is not known yet (their IPAM did not answer)"),
            _ => throw new InvalidOperationException($"the ownership view answered {reply}"),
        };
    }

    /// <summary>Each routed subnet publishes its changes on its topic, wherever its entity lives.</summary>
    public void Subscribe(IActorContext context)
    {
        foreach (var subnet in topology.Subnets.Where(s => s.RouteTable is not null))
            DistributedPubSub.Get(context.System).Mediator.Tell(new Subscribe(OwnershipFeed.Topic(subnet.Id), context.Self));
    }
}
