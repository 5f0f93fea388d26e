using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Ipam;

/// <summary>
/// The IPAM front door of one daemon in a cluster (<see cref="IpamPlacement.Cluster"/>). It runs the actor of its own node
/// (node-N: one writer, in the daemon of node N) and serves that node only: a CNI ADD is decided here with one local
/// journal write, and a key is checked on this node only (a CNI key, container id and interface, is unique by
/// construction). Zones, subnets and the reservation ledger are sharded entities reached through their regions; only
/// block grants, surrenders and fences cross the network. Reservations go to the ledger, whichever daemon is asked.
///
/// Start: the node actor recovers from the journal alone (its blocks are its own: no subnet needs to answer for the
/// addresses in them); the zone is asked in the background and <see cref="AddNode"/> waits for it. AddNode claims the node
/// with its subnet (this actor is the holder the subnet speaks to the node through) and announces it again every
/// register interval. A refused claim (another live daemon holds the node) stops the node actor: never two writers.
/// </summary>
public sealed class NodeIpamActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private readonly ClusterTopology _topology;
    private readonly NodeName _node;
    private readonly SubnetLayout _layout;
    private readonly IActorRef _zones;
    private readonly IActorRef _subnets;
    // Other nodes' holders, as their subnets listed them (written from ask continuations, hence concurrent).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<NodeName, IActorRef> _holders = new();
    private readonly IActorRef _ledger;
    private readonly IpamSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<(AddNode Command, IActorRef ReplyTo)> _waitingForZone = [];
    private IActorRef _nodeActor = ActorRefs.Nobody;
    private SubnetMessages.AddNode? _announcement;
    private bool _zoneDeclared;

    /// <param name="ledger">The reservation ledger's shard region.</param>
    public NodeIpamActor(ClusterTopology topology, NodeName node, SubnetId subnet, IActorRef zones, IActorRef subnets, IActorRef ledger,
        IpamSettings settings, IClock clock)
    {
        _ledger = ledger;
        _topology = topology;
        _node = node;
        _layout = topology.FindSubnet(subnet) ?? throw new ArgumentException($"subnet {subnet} is not in the topology");
        _zones = zones;
        _subnets = subnets;
        _settings = settings;
        _clock = clock;
        Starting();
    }

    public static Props Props(ClusterTopology topology, NodeName node, SubnetId subnet, IActorRef zones, IActorRef subnets,
        IActorRef ledger, IpamSettings settings, IClock clock) =>
        Akka.Actor.Props.Create(() => new NodeIpamActor(topology, node, subnet, zones, subnets, ledger, settings, clock));

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record StartupTimedOut : INoSerializationVerificationNeeded;
    private sealed record AskZone : INoSerializationVerificationNeeded;
    private sealed record ZoneAnswer(object? Reply) : INoSerializationVerificationNeeded;
    private sealed record Announce : INoSerializationVerificationNeeded;
    /// <summary>The subnet's answer to a claim; <paramref name="ReplyTo"/> is null for the periodic announcement.</summary>
    private sealed record Claimed(object? Reply, IActorRef? ReplyTo) : INoSerializationVerificationNeeded;

    private object ToSubnet(SubnetId subnet, object message) => new ShardingEnvelope(subnet.Value, message);

    private static object ToLedger(object message) => new ShardingEnvelope(IpamShards.LedgerEntity, message);

    protected override void PreStart()
    {
        var link = Context.ActorOf(IpamShards.EntityLink.Props(_subnets, _layout.Id.Value), "subnet-link");
        _nodeActor = Context.ActorOf(Supervision.RestartingOnStop(
            NodeActor.Props(_node, _topology.BlockPrefixLength, link, _settings, _clock), $"node {_node}'s actor", _settings),
            $"node-{Uri.EscapeDataString(_node.Value)}");
        _nodeActor.Tell(new NodeMessages.GetNodeState(_node));
        // Starts the ledger wherever sharding places it, so it reconciles with the subnets before anyone needs it.
        _ledger.Tell(ToLedger(new ReservationMessages.GetLedger()), ActorRefs.NoSender);
        Self.Tell(new AskZone());
        Timers.StartSingleTimer("startup", new StartupTimedOut(), _settings.StartupTimeout);
    }

    private void Starting()
    {
        Receive<NodeSnapshot>(view =>
        {
            Timers.Cancel("startup");
            _log.Info("IPAM of node {0} ready: {1} blocks, {2} addresses held", _node, view.Blocks.Length, view.Allocations.Length);
            Become(Ready);
            Stash.UnstashAll();
        });
        Receive<Failed>(failed => Fail(failed.Error));
        Receive<StartupTimedOut>(_ => Fail(IpamError.Unavailable($"node {_node}'s actor did not recover in time")));
        ZoneProtocol();
        ReceiveAny(_ => Stash.Stash());
    }

    /// <summary>The zone declares its prefixes (refusing a topology that contradicts the journal) before the node joins.</summary>
    private void ZoneProtocol()
    {
        Receive<AskZone>(_ => _zones
            .Ask<object>(new ShardingEnvelope(_layout.Zone.Value, new ZoneMessages.GetSubnets()), _settings.AskTimeout)
            .PipeTo(Self, success: r => new ZoneAnswer(r), failure: _ => new ZoneAnswer(null)));
        Receive<ZoneAnswer>(answer =>
        {
            switch (answer.Reply)
            {
                case ZoneMessages.ZoneReady:
                    _zoneDeclared = true;
                    foreach (var (command, replyTo) in _waitingForZone) Self.Tell(command, replyTo);
                    _waitingForZone.Clear();
                    break;
                case ZoneMessages.ZoneFailed failed:
                    Fail(failed.Error);
                    break;
                default: // not reachable yet (the cluster is forming): ask again
                    Timers.StartSingleTimer("zone", new AskZone(), _settings.RegisterInterval);
                    break;
            }
        });
    }

    private void Fail(IpamError error)
    {
        Timers.CancelAll();
        _log.Error("IPAM of node {0} stops serving: {1}", _node, error.Message);
        Context.Stop(_nodeActor);
        foreach (var (_, replyTo) in _waitingForZone) replyTo.Tell(new Failed(error));
        _waitingForZone.Clear();
        Become(() => ReceiveAny(_ => Sender.Tell(new Failed(error))));
        Stash.UnstashAll();
    }

    // ---- serving -------------------------------------------------------------------------------------------------

    private void Ready()
    {
        ZoneProtocol();
        Receive<AwaitReady>(_ => Sender.Tell(Succeeded.Instance));
        Receive<AddNode>(AddNode);
        Receive<Announce>(_ =>
        {
            if (_announcement is { } announcement) Claim(announcement, null);
        });
        Receive<Claimed>(OnClaimed);
        Receive<RemoveNode>(command =>
        {
            if (command.Node == _node)
            {
                Sender.Tell(new Failed(IpamError.Conflict($"node {_node} is served by this daemon; stop its daemon first")));
                return;
            }
            RemoveAsync(command).PipeTo(Sender);
        });
        Receive<Allocate>(command =>
        {
            if (string.IsNullOrWhiteSpace(command.Key.Value)) Sender.Tell(Invalid("key: an allocation needs a key"));
            else if (Own(command.Node))
                _nodeActor.Forward(new NodeMessages.AllocateAddress(command.Node, command.Key, command.Pod, command.Netns, command.PodUid));
        });
        Receive<SetAside>(command =>
        {
            if (Own(command.Node))
                _nodeActor.Forward(new NodeMessages.SetAsideAddress(command.Node, command.Key, command.Address, command.Reason));
        });
        Receive<Release>(Release);
        // Questions about a node's state, this one's or another daemon's (the policy files source reads every node's pods).
        Receive<GetBlocks>(query => FromNode(query.Node, view => new BlocksOf(query.Node, view.Blocks)).PipeTo(Sender));
        Receive<GetAllocations>(query => FromNode(query.Node, view => new AllocationsOf(query.Node, view.Allocations)).PipeTo(Sender));
        Receive<GetAddress>(query => FromNode(view => view.Allocations.FirstOrDefault(a => a.Key == query.Key) is { } held
            ? new AddressAssigned(_node, held.Key, held.Address, held.Netns)
            : new Failed(IpamError.NotFound($"key '{query.Key}' holds no address on node {_node}"))).PipeTo(Sender));
        Receive<GetSubnet>(query =>
        {
            if (_topology.FindSubnet(query.Subnet) is null)
                Sender.Tell(new Failed(IpamError.NotFound($"subnet: '{query.Subnet}' is not in the topology")));
            else SubnetAsync(query.Subnet).PipeTo(Sender);
        });
        Receive<Reserve>(Reserve);
        Receive<Unreserve>(Unreserve);
        Receive<GetPrefixes>(_ => Sender.Tell(new PrefixList([.. _topology.Prefixes()])));
        Receive<GetIpamState>(_ => StateAsync().PipeTo(Sender));
        // The subnet's side of the block protocols, through this holder to the node's actor.
        Receive<NodeMessages.SurrenderBlock>(m => _nodeActor.Forward(m));
        Receive<NodeMessages.FenceRange>(m => _nodeActor.Forward(m));
        Receive<NodeMessages.UnfenceRange>(m => _nodeActor.Forward(m));
        Receive<NodeMessages.RetireNode>(m => _nodeActor.Forward(m));
        Receive<NodeMessages.GetNodeState>(m => _nodeActor.Forward(m));
        Receive<NodeSnapshot>(_ => { });
    }

    private bool Own(NodeName node)
    {
        if (node == _node) return true;
        Sender.Tell(new Failed(IpamError.NotFound(
            $"node: '{node}' is not served by this daemon (node {_node}); a daemon serves its own node only")));
        return false;
    }

    private void AddNode(AddNode command)
    {
        if (command.Node != _node || command.MembershipOnly)
        {
            JoinOther(command);
            return;
        }
        if (command.Subnet != _layout.Id)
        {
            Sender.Tell(Invalid($"subnet: node {_node} belongs to subnet {_layout.Id} here, not '{command.Subnet}'"));
            return;
        }
        if (IpIn(_layout, command.Ip) is not { } ip) return;
        if (!_zoneDeclared)
        {
            _waitingForZone.Add((command, Sender));
            return;
        }
        _announcement = new SubnetMessages.AddNode(_node, new NodeEndpoint(ip, command.Eni, command.InstanceId), Self, command.Reason);
        Timers.StartPeriodicTimer("announce", new Announce(), _settings.RegisterInterval);
        Claim(_announcement, Sender);
    }

    /// <summary>
    /// Another node's membership (the Kubernetes Node watch, a cluster singleton that may run in any daemon): its subnet
    /// records the join without a holder; the node's own daemon claims it when it starts. Idempotent as every AddNode is.
    /// </summary>
    private void JoinOther(AddNode command)
    {
        if (_topology.FindSubnet(command.Subnet) is not { } layout)
        {
            Sender.Tell(Invalid($"subnet: '{command.Subnet}' is not in the topology"));
            return;
        }
        if (IpIn(layout, command.Ip) is not { } ip) return;
        var join = new SubnetMessages.AddNode(command.Node, new NodeEndpoint(ip, command.Eni, command.InstanceId), null, command.Reason);
        JoinAsync(layout.Id, join).PipeTo(Sender);
    }

    /// <summary>A node's IP, inside its subnet's VPC CIDR when the topology gives one; null (the sender told why) otherwise.</summary>
    private Ipv4? IpIn(SubnetLayout layout, string text)
    {
        if (!Ipv4.TryParse(text, out var ip)) Sender.Tell(Invalid($"ip: '{text}' is not an IPv4 address"));
        else if (layout.VpcCidr is { } vpc && !vpc.Contains(ip))
            Sender.Tell(Invalid($"ip: {ip} is not inside subnet {layout.Id}'s VPC CIDR {vpc}"));
        else return ip;
        return null;
    }

    private async Task<IpamReply> JoinAsync(SubnetId subnet, SubnetMessages.AddNode join) =>
        await AskRawAsync(_subnets, ToSubnet(subnet, join), _settings.AskTimeout) switch
        {
            SubnetMessages.NodeAdded => Succeeded.Instance,
            Failed failed => failed,
            _ => Unanswered($"subnet {subnet}"),
        };

    private void Claim(SubnetMessages.AddNode announcement, IActorRef? replyTo) =>
        _subnets.Ask<object>(ToSubnet(_layout.Id, announcement), _settings.AskTimeout)
            .PipeTo(Self, success: r => new Claimed(r, replyTo), failure: _ => new Claimed(null, replyTo));

    private void OnClaimed(Claimed claimed)
    {
        switch (claimed.Reply)
        {
            case SubnetMessages.NodeAdded:
                claimed.ReplyTo?.Tell(Succeeded.Instance);
                break;
            case Failed { Error.Code: IpamErrorCode.Conflict } refused:
                claimed.ReplyTo?.Tell(refused);
                Fail(refused.Error);
                break;
            case Failed failed:
                claimed.ReplyTo?.Tell(failed);
                break;
            default:
                claimed.ReplyTo?.Tell(Unanswered($"subnet {_layout.Id}"));
                break;
        }
    }

    private void Release(Release command)
    {
        if (command.Key.HasValue == command.Address is not null)
        {
            Sender.Tell(Invalid("release: give either a key or an address"));
            return;
        }
        if (command.Key is { } key)
        {
            _nodeActor.Forward(new NodeMessages.ReleaseAddress(_node, key, command.Reason));
            return;
        }
        if (!Ipv4.TryParse(command.Address, out var address))
        {
            Sender.Tell(Invalid($"address: '{command.Address}' is not an IPv4 address"));
            return;
        }
        ReleaseAddressAsync(address, command.Reason).PipeTo(Sender);
    }

    private async Task<IpamReply> ReleaseAddressAsync(Ipv4 address, string reason)
    {
        var view = await NodeViewAsync();
        if (view is null) return Unanswered($"node {_node}");
        if (view.Allocations.FirstOrDefault(a => a.Address == address) is not { } held)
            return new Failed(IpamError.NotFound($"address {address} is not allocated on node {_node}"));
        return await AskAsync(_nodeActor, new NodeMessages.ReleaseAddress(_node, held.Key, reason), $"node {_node}");
    }

    /// <summary>The ledger decides reservations (any range strictly inside the pod CIDR); here only the CIDR is read.</summary>
    private void Reserve(Reserve command)
    {
        if (ParseCidr(command.Cidr) is { } range) LedgerAsync(new ReservationMessages.Reserve(range)).PipeTo(Sender);
    }

    private void Unreserve(Unreserve command)
    {
        if (ParseCidr(command.Cidr) is { } range) LedgerAsync(new ReservationMessages.Unreserve(range)).PipeTo(Sender);
    }

    private Ipv4Cidr? ParseCidr(string text)
    {
        if (Ipv4Cidr.TryParse(text, out var range)) return range;
        Sender.Tell(Invalid($"cidr: '{text}' is not an IPv4 CIDR"));
        return null;
    }

    private async Task<IpamReply> LedgerAsync(object command)
    {
        var within = ReservationLedger.AnswerWithin(_settings);
        return await AskRawAsync(_ledger, ToLedger(command), within) as IpamReply ?? new Failed(IpamError.Unavailable(
            $"the reservation ledger did not answer within {within.TotalSeconds:0.#}s; the outcome is unknown, and retrying is safe"));
    }

    /// <summary>`romana node remove`: the subnet that lists the node retires it (refused while a live daemon holds it).</summary>
    private async Task<IpamReply> RemoveAsync(RemoveNode command)
    {
        foreach (var subnet in _topology.Subnets)
        {
            var reply = await AskAsync(_subnets, ToSubnet(subnet.Id, new SubnetMessages.GetSubnetState()), $"subnet {subnet.Id}");
            if (reply is not SubnetView view) return reply;
            if (view.Subnet.Members.All(m => m.Node != command.Node)) continue;
            var removed = await AskRawAsync(_subnets, ToSubnet(subnet.Id, new SubnetMessages.RemoveNode(command.Node, command.Reason)),
                _settings.AskTimeout * 2);
            return removed is SubnetMessages.NodeRemoved done
                ? new NodeRemoved(command.Node, subnet.Id, done.Released)
                : removed as Failed ?? Unanswered($"subnet {subnet.Id}");
        }
        return new Failed(IpamError.NotFound($"node: '{command.Node}' is not a member of any subnet"));
    }

    private async Task<IpamReply> FromNode(Func<NodeSnapshot, IpamReply> answer) =>
        await NodeViewAsync() is { } view ? answer(view) : Unanswered($"node {_node}");

    /// <summary>
    /// Another node's state comes from the daemon that holds it: its subnet lists the holder (the member's node actor), which
    /// answers for its node as it does for the subnet's protocols. Holders learned from one pass over the subnets are kept,
    /// so a reader asking about every node (the policy files source) does not scan every subnet per node; a holder that
    /// does not answer is forgotten and looked up again.
    /// </summary>
    private async Task<IpamReply> FromNode(NodeName node, Func<NodeSnapshot, IpamReply> answer)
    {
        if (node == _node) return await FromNode(answer);
        if (!_holders.TryGetValue(node, out var holder))
        {
            foreach (var subnet in _topology.Subnets)
            {
                if (await AskRawAsync(_subnets, ToSubnet(subnet.Id, new SubnetMessages.GetMembers()), _settings.AskTimeout)
                    is not SubnetMessages.Members members) return Unanswered($"subnet {subnet.Id}");
                foreach (var held in members.Nodes.Where(m => !m.NodeActor.IsNobody())) _holders[held.Node] = held.NodeActor;
                if (members.Nodes.FirstOrDefault(m => m.Node == node) is not { } member) continue;
                if (member.NodeActor.IsNobody())
                    return new Failed(IpamError.Unavailable(
                        $"node: '{node}' is a member of subnet {subnet.Id}, but no daemon holds it now"));
                holder = member.NodeActor;
                break;
            }
            if (holder is null) return new Failed(IpamError.NotFound($"node: '{node}' is not a member of any subnet"));
        }
        if (await AskRawAsync(holder, new NodeMessages.GetNodeState(node), _settings.AskTimeout) is NodeSnapshot view)
            return answer(view);
        _holders.TryRemove(node, out _);
        return Unanswered($"node {node}'s daemon");
    }

    private async Task<NodeSnapshot?> NodeViewAsync() =>
        await AskRawAsync(_nodeActor, new NodeMessages.GetNodeState(_node), _settings.AskTimeout) as NodeSnapshot;

    private Task<IpamReply> SubnetAsync(SubnetId subnet) =>
        AskAsync(_subnets, ToSubnet(subnet, new SubnetMessages.GetSubnetState()), $"subnet {subnet}");

    /// <summary>Every subnet's state, the reservation ledger's list, and this node's state.</summary>
    private async Task<IpamReply> StateAsync()
    {
        var subnets = ImmutableArray.CreateBuilder<SubnetSnapshot>();
        foreach (var subnet in _topology.Subnets)
        {
            if (await SubnetAsync(subnet.Id) is not SubnetView view) return Unanswered($"subnet {subnet.Id}");
            subnets.Add(view.Subnet);
        }
        if (await AskRawAsync(_ledger, ToLedger(new ReservationMessages.GetLedger()), _settings.AskTimeout)
            is not ReservationMessages.Ledger ledger) return Unanswered("the reservation ledger");
        return await NodeViewAsync() is { } node
            ? new IpamStateView(subnets.ToImmutable(), [node]) { Reservations = ledger.Reservations }
            : Unanswered($"node {_node}");
    }

    private async Task<IpamReply> AskAsync(IActorRef target, object message, string who)
    {
        var reply = await AskRawAsync(target, message, _settings.AskTimeout);
        return reply switch
        {
            SubnetSnapshot snapshot => new SubnetView(snapshot),
            IpamReply answer => answer,
            _ => Unanswered(who),
        };
    }

    private static async Task<object?> AskRawAsync(IActorRef target, object message, TimeSpan timeout)
    {
        try
        {
            return await target.Ask<object>(message, timeout);
        }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
        {
            return null;
        }
    }

    private static Failed Invalid(string message) => new(IpamError.Invalid(message));

    private Failed Unanswered(string who) => new(IpamError.Unavailable(
        $"{who} did not answer within {_settings.AskTimeout.TotalSeconds:0.#}s; the outcome is unknown, and retrying is safe"));
}
