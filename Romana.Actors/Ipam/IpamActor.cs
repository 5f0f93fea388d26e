using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;
using static Romana.Actors.Topology.ZoneMessages;

namespace Romana.Actors.Ipam;

/// <summary>
/// The IPAM front door: validates requests, routes them to the zone, subnet and node actors and the reservation ledger
/// (<see cref="ReservationLedger"/>, its child), and keeps two derived
/// indexes (node to subnet, key to node and address) that it rebuilds from those actors when it starts. It owns no
/// state of its own: everything it knows can be recovered from the journal.
///
/// Protocol. Starting, it asks every zone for its subnets, every subnet for its members, and every node for its
/// addresses, in three rounds, and the ledger whether it has reconciled with the subnets (<see cref="Startup"/> holds who
/// has not answered yet); commands wait meanwhile. Serving,
/// a command that needs a child's answer sends it and goes on; the answer comes back as <see cref="Answered"/> naming
/// the <see cref="Step"/> it answers, which says whom to reply to and what the answer changes in the indexes. Whatever
/// the child answers, or a timeout (no answer), the requester gets exactly one reply.
/// </summary>
public sealed class IpamActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private readonly ClusterTopology _topology;
    private readonly IpamSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<SubnetId, IActorRef> _subnets = new();
    private readonly Dictionary<NodeName, (SubnetId Subnet, IActorRef Actor)> _nodes = new();
    private readonly Dictionary<AllocationKey, (NodeName Node, Ipv4 Address, string? Netns)> _keys = new();
    private readonly Dictionary<Ipv4, AllocationKey> _addresses = new();
    /// <summary>Allocations sent to a node and not yet answered: a key may be on its way to only one node.</summary>
    private readonly Dictionary<AllocationKey, (NodeName Node, int Count)> _pending = new();
    /// <summary>Nodes being added or removed: a second change to them waits for the first to finish.</summary>
    private readonly HashSet<NodeName> _changing = new();
    private Startup _startup = Startup.Nobody;
    private IActorRef _ledger = ActorRefs.Nobody;

    public IpamActor(ClusterTopology topology, IpamSettings settings, IClock clock)
    {
        _topology = topology;
        _settings = settings;
        _clock = clock;
        Starting();
    }

    public static Props Props(ClusterTopology topology, IpamSettings settings, IClock clock) =>
        Akka.Actor.Props.Create(() => new IpamActor(topology, settings, clock));

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    // ---- the protocol's own messages -----------------------------------------------------------------------------

    /// <summary>Who has not answered yet in the start-up round under way.</summary>
    private sealed record Startup(ImmutableHashSet<ZoneName> Zones, ImmutableHashSet<SubnetId> Subnets, ImmutableHashSet<NodeName> Nodes,
        bool Ledger = false)
    {
        public static readonly Startup Nobody = new([], [], []);
        public bool Done => Zones.IsEmpty && Subnets.IsEmpty && Nodes.IsEmpty && !Ledger;
    }

    private sealed record StartupTimedOut : INoSerializationVerificationNeeded;

    /// <summary>A request to a child under way: what it was for, and whom to answer.</summary>
    private abstract record Step
    {
        public sealed record AddingNode(AddNode Command, IActorRef ReplyTo) : Step;
        public sealed record RemovingNode(RemoveNode Command, SubnetId Subnet, IActorRef NodeActor, IActorRef ReplyTo) : Step;
        public sealed record Allocating(Allocate Command, IActorRef ReplyTo) : Step;
        public sealed record Releasing(AllocationKey Key, NodeName Node, IActorRef ReplyTo) : Step;
        public sealed record SettingAside(SetAside Command, IActorRef ReplyTo) : Step;
        /// <summary>A query about one node or subnet: the child's view becomes the reply.</summary>
        public sealed record Relaying(string Who, Func<object, IpamReply?> Reply, IActorRef ReplyTo, TimeSpan? Within = null) : Step;
        /// <summary>A subnet came back from its journal with new node actors.</summary>
        public sealed record RefreshingMembers(SubnetId Subnet) : Step;
        public sealed record GatheringState(IActorRef ReplyTo) : Step;
    }

    /// <summary>A child's answer to a step; null when none came in time.</summary>
    private sealed record Answered(Step Step, object? Reply) : INoSerializationVerificationNeeded;

    private sealed record RefreshSubnet(SubnetId Subnet) : INoSerializationVerificationNeeded;

    private void Send(IActorRef child, object request, Step step, TimeSpan? timeout = null) =>
        child.Ask<object>(request, timeout ?? _settings.AskTimeout)
            .PipeTo(Self, success: reply => new Answered(step, reply), failure: _ => new Answered(step, null));

    // ---- start-up: rebuild the indexes from the actors -----------------------------------------------------------

    protected override void PreStart()
    {
        foreach (var zone in _topology.Zones)
            Context.ActorOf(ZoneActor.Props(zone, _topology.BlockPrefixLength, _settings, _clock),
                $"zone-{Uri.EscapeDataString(zone.Name.Value)}")
                .Tell(new GetSubnets());
        _startup = Startup.Nobody with { Zones = [.. _topology.Zones.Select(z => z.Name)] };
        Timers.StartSingleTimer("startup", new StartupTimedOut(), _settings.StartupTimeout);
    }

    private void Starting()
    {
        Receive<ZoneFailed>(failed => Fail(failed.Error));
        Receive<ZoneReady>(ready =>
        {
            foreach (var (id, subnet) in ready.Subnets) _subnets[id] = subnet;
            _startup = _startup with { Zones = _startup.Zones.Remove(ready.Zone) };
            if (!_startup.Zones.IsEmpty) return;
            foreach (var subnet in _subnets.Values) subnet.Tell(new SubnetMessages.GetMembers());
            _ledger = Context.ActorOf(Supervision.RestartingOnStop(
                ReservationLedger.Props(_topology, _subnets.ToImmutableDictionary(), _settings, _clock), "the reservation ledger",
                _settings), "reservations");
            _ledger.Tell(new ReservationMessages.AwaitLedger());
            _startup = _startup with { Subnets = [.. _subnets.Keys], Ledger = true };
            ContinueStartup();
        });
        Receive<ReservationMessages.Ledger>(_ =>
        {
            _startup = _startup with { Ledger = false };
            ContinueStartup();
        });
        Receive<SubnetMessages.Members>(members =>
        {
            foreach (var member in members.Nodes) Track(member.Node, members.Subnet, member.NodeActor);
            _startup = _startup with { Subnets = _startup.Subnets.Remove(members.Subnet) };
            if (!_startup.Subnets.IsEmpty) return;
            foreach (var (node, known) in _nodes) known.Actor.Tell(new NodeMessages.GetNodeState(node));
            _startup = _startup with { Nodes = [.. _nodes.Keys] };
            ContinueStartup();
        });
        Receive<NodeSnapshot>(view =>
        {
            foreach (var allocation in view.Allocations) Index(view.Node, allocation.Key, allocation.Address, allocation.Netns);
            _startup = _startup with { Nodes = _startup.Nodes.Remove(view.Node) };
            ContinueStartup();
        });
        Receive<Failed>(failed => Fail(failed.Error)); // a zone, subnet or node restarting after a journal failure
        Receive<StartupTimedOut>(_ => Fail(IpamError.Unavailable(
            !_startup.Zones.IsEmpty ? "a zone actor did not recover in time"
            : !_startup.Subnets.IsEmpty ? "a subnet actor did not recover in time"
            : !_startup.Nodes.IsEmpty ? "a node actor did not recover in time"
            : "the reservation ledger did not reconcile with the subnets in time")));
        ReceiveAny(_ => Stash.Stash());
    }

    private void ContinueStartup()
    {
        if (!_startup.Done) return;
        Timers.Cancel("startup");
        _log.Info("IPAM ready: {0} zones, {1} subnets, {2} nodes, {3} addresses held", _topology.Zones.Length, _subnets.Count, _nodes.Count,
            _keys.Count);
        Become(Ready);
        Stash.UnstashAll();
    }

    private void Fail(IpamError error)
    {
        Timers.Cancel("startup");
        _log.Error("IPAM cannot start: {0}", error.Message);
        Become(() =>
        {
            Receive<ZoneReady>(_ => { });
            Receive<SubnetMessages.Members>(_ => { });
            Receive<NodeSnapshot>(_ => { });
            Receive<ReservationMessages.Ledger>(_ => { });
            ReceiveAny(_ => Sender.Tell(new Failed(error)));
        });
        Stash.UnstashAll();
    }

    // ---- serving -------------------------------------------------------------------------------------------------

    private void Ready()
    {
        Receive<AwaitReady>(_ => Sender.Tell(Succeeded.Instance));
        Receive<AddNode>(AddNode);
        Receive<RemoveNode>(RemoveNode);
        Receive<Allocate>(Allocate);
        Receive<Release>(Release);
        Receive<SetAside>(SetAside);
        Receive<Reserve>(Reserve);
        Receive<Unreserve>(Unreserve);
        Receive<GetBlocks>(query => AnswerFromNode(query.Node, view => new BlocksOf(query.Node, view.Blocks)));
        Receive<GetAddress>(query => Sender.Tell(_keys.TryGetValue(query.Key, out var held)
            ? new AddressAssigned(held.Node, query.Key, held.Address, held.Netns)
            : new Failed(IpamError.NotFound($"key '{query.Key}' holds no address"))));
        Receive<GetSubnet>(GetSubnet);
        Receive<GetAllocations>(query => AnswerFromNode(query.Node, view => new AllocationsOf(query.Node, view.Allocations)));
        Receive<GetPrefixes>(_ => Sender.Tell(new PrefixList([.. _topology.Prefixes()])));
        Receive<GetIpamState>(_ => GetState());
        Receive<Answered>(Answer);
        Receive<Terminated>(terminated =>
        {
            foreach (var subnet in _nodes.Where(n => n.Value.Actor.Equals(terminated.ActorRef)).Select(n => n.Value.Subnet).Distinct()
                .ToList())
                RefreshMembers(subnet);
        });
        Receive<RefreshSubnet>(refresh => RefreshMembers(refresh.Subnet));
    }

    /// <summary>A subnet that came back from its journal runs new node actors: learn their references.</summary>
    private void RefreshMembers(SubnetId subnet) =>
        Send(_subnets[subnet], new SubnetMessages.GetMembers(), new Step.RefreshingMembers(subnet));

    private void Track(NodeName node, SubnetId subnet, IActorRef actor)
    {
        _nodes[node] = (subnet, actor);
        Context.Watch(actor);
    }

    private void AddNode(AddNode command)
    {
        if (string.IsNullOrWhiteSpace(command.Node.Value)) { Sender.Tell(Invalid("node: a node needs a name")); return; }
        if (!Ipv4.TryParse(command.Ip, out var ip)) { Sender.Tell(Invalid($"ip: '{command.Ip}' is not an IPv4 address")); return; }
        if (_topology.FindSubnet(command.Subnet) is not { } layout)
        {
            Sender.Tell(new Failed(IpamError.NotFound($"subnet: '{command.Subnet}' is not in the topology")));
            return;
        }
        if (layout.VpcCidr is { } vpc && !vpc.Contains(ip))
        {
            Sender.Tell(Invalid($"ip: {ip} is not inside subnet {layout.Id}'s VPC CIDR {vpc}"));
            return;
        }
        if (_nodes.TryGetValue(command.Node, out var known) && known.Subnet != command.Subnet)
        {
            Sender.Tell(new Failed(IpamError.Conflict($"node {command.Node} is already a member of subnet {known.Subnet}")));
            return;
        }
        if (!_changing.Add(command.Node)) { Sender.Tell(Busy(command.Node)); return; }
        Send(_subnets[command.Subnet], new SubnetMessages.AddNode(command.Node, new NodeEndpoint(ip, command.Eni, command.InstanceId), null,
                command.Reason),
            new Step.AddingNode(command, Sender));
    }

    private void RemoveNode(RemoveNode command)
    {
        if (!_nodes.TryGetValue(command.Node, out var node)) { Sender.Tell(UnknownNode(command.Node)); return; }
        if (!_changing.Add(command.Node)) { Sender.Tell(Busy(command.Node)); return; }
        Send(_subnets[node.Subnet], new SubnetMessages.RemoveNode(command.Node, command.Reason),
            new Step.RemovingNode(command, node.Subnet, node.Actor, Sender));
    }

    private void Allocate(Allocate command)
    {
        var key = command.Key;
        if (string.IsNullOrWhiteSpace(key.Value)) { Sender.Tell(Invalid("key: an allocation needs a key")); return; }
        if (!_nodes.TryGetValue(command.Node, out var node)) { Sender.Tell(UnknownNode(command.Node)); return; }
        if (_keys.TryGetValue(key, out var held) && held.Node != command.Node)
        {
            Sender.Tell(new Failed(IpamError.Conflict($"key '{key}' already holds {held.Address} on node {held.Node}")));
            return;
        }
        if (_pending.TryGetValue(key, out var pending) && pending.Node != command.Node)
        {
            Sender.Tell(new Failed(IpamError.Conflict($"key '{key}' is being allocated on node {pending.Node}")));
            return;
        }
        _pending[key] = (command.Node, pending.Count + 1);
        Send(node.Actor, new NodeMessages.AllocateAddress(command.Node, key, command.Pod, command.Netns, command.PodUid),
            new Step.Allocating(command, Sender));
    }

    private void SetAside(SetAside command)
    {
        if (!_keys.TryGetValue(command.Key, out var held) || held.Node != command.Node || held.Address != command.Address)
        {
            Sender.Tell(new Failed(IpamError.NotFound($"key '{command.Key}' does not hold {command.Address} on node {command.Node}")));
            return;
        }
        Send(_nodes[held.Node].Actor, new NodeMessages.SetAsideAddress(command.Node, command.Key, command.Address, command.Reason),
            new Step.SettingAside(command, Sender));
    }

    private void Release(Release command)
    {
        AllocationKey key;
        if (command.Key.HasValue == command.Address is not null)
        {
            Sender.Tell(Invalid("release: give either a key or an address"));
            return;
        }
        if (command.Address is { } text)
        {
            if (!Ipv4.TryParse(text, out var address)) { Sender.Tell(Invalid($"address: '{text}' is not an IPv4 address")); return; }
            if (!_addresses.TryGetValue(address, out key))
            {
                Sender.Tell(new Failed(IpamError.NotFound($"address {address} is not allocated")));
                return;
            }
        }
        else key = command.Key!.Value;
        if (!_keys.TryGetValue(key, out var held))
        {
            Sender.Tell(new Failed(IpamError.NotFound($"key '{key}' holds no address")));
            return;
        }
        Send(_nodes[held.Node].Actor, new NodeMessages.ReleaseAddress(held.Node, key, command.Reason),
            new Step.Releasing(key, held.Node, Sender));
    }

    /// <summary>The ledger decides reservations (any range strictly inside the pod CIDR); here only the CIDR is read.</summary>
    private void Reserve(Reserve command)
    {
        if (ParseCidr(command.Cidr) is { } range) ToLedger(new ReservationMessages.Reserve(range));
    }

    private void Unreserve(Unreserve command)
    {
        if (ParseCidr(command.Cidr) is { } range) ToLedger(new ReservationMessages.Unreserve(range));
    }

    private Ipv4Cidr? ParseCidr(string text)
    {
        if (Ipv4Cidr.TryParse(text, out var range)) return range;
        Sender.Tell(Invalid($"cidr: '{text}' is not an IPv4 CIDR"));
        return null;
    }

    private void ToLedger(object command)
    {
        var within = ReservationLedger.AnswerWithin(_settings);
        Send(_ledger, command, new Step.Relaying("the reservation ledger", reply => reply as IpamReply, Sender, within), within);
    }

    /// <summary>Answers a query about one node from its actor's state (blocks, allocations).</summary>
    private void AnswerFromNode(NodeName node, Func<NodeSnapshot, IpamReply> answer)
    {
        if (!_nodes.TryGetValue(node, out var known)) { Sender.Tell(UnknownNode(node)); return; }
        Relay(known.Actor, new NodeMessages.GetNodeState(node), $"node {node}", reply => reply is NodeSnapshot view ? answer(view) : null);
    }

    private void GetSubnet(GetSubnet query)
    {
        if (!_subnets.TryGetValue(query.Subnet, out var subnet))
        {
            Sender.Tell(new Failed(IpamError.NotFound($"subnet: '{query.Subnet}' is not in the topology")));
            return;
        }
        Relay(subnet, new SubnetMessages.GetSubnetState(), $"subnet {query.Subnet}",
            reply => reply is SubnetSnapshot snapshot ? new SubnetView(snapshot) : null);
    }

    private void Relay(IActorRef child, object request, string who, Func<object, IpamReply?> reply) =>
        Send(child, request, new Step.Relaying(who, reply, Sender));

    /// <summary>Every subnet's and node's state, gathered by a child of its own so the front door keeps serving.</summary>
    private void GetState() => Context.ActorOf(StateGatherer.Props(
        [.. _subnets.OrderBy(s => s.Key).Select(s => (s.Value, (object)new SubnetMessages.GetSubnetState())),
         .. _nodes.OrderBy(n => n.Key).Select(n => (n.Value.Actor, (object)new NodeMessages.GetNodeState(n.Key))),
         (_ledger, new ReservationMessages.GetLedger())],
        Sender, _settings.AskTimeout));

    // ---- answers -------------------------------------------------------------------------------------------------

    private void Answer(Answered answered)
    {
        var reply = answered.Reply;
        switch (answered.Step)
        {
            case Step.AddingNode(var command, var replyTo):
                _changing.Remove(command.Node);
                if (reply is SubnetMessages.NodeAdded added)
                {
                    Track(command.Node, command.Subnet, added.NodeActor);
                    replyTo.Tell(Succeeded.Instance);
                }
                else replyTo.Tell(AsFailure(reply, $"subnet {command.Subnet}"));
                break;
            case Step.RemovingNode(var command, var subnet, var nodeActor, var replyTo):
                _changing.Remove(command.Node);
                if (reply is SubnetMessages.NodeRemoved removed)
                {
                    foreach (var key in removed.Released) Unindex(key);
                    Context.Unwatch(nodeActor);
                    _nodes.Remove(command.Node);
                    replyTo.Tell(new NodeRemoved(command.Node, subnet, removed.Released));
                }
                else replyTo.Tell(AsFailure(reply, $"subnet {subnet}"));
                break;
            case Step.Allocating(var command, var replyTo):
                var (_, count) = _pending[command.Key];
                if (count == 1) _pending.Remove(command.Key);
                else _pending[command.Key] = (command.Node, count - 1);
                if (reply is AddressAssigned assigned) Index(command.Node, command.Key, assigned.Address, assigned.Netns);
                replyTo.Tell(reply as IpamReply ?? AsFailure(reply, $"node {command.Node}"));
                break;
            case Step.Releasing(var key, var node, var replyTo):
                if (reply is Succeeded) Unindex(key);
                replyTo.Tell(reply as IpamReply ?? AsFailure(reply, $"node {node}"));
                break;
            case Step.SettingAside(var command, var replyTo):
                if (reply is Succeeded)
                {
                    Unindex(command.Key);
                    Index(command.Node, Ipam.IpamMessages.SetAside.KeyOf(command.Address), command.Address, null);
                }
                replyTo.Tell(reply as IpamReply ?? AsFailure(reply, $"node {command.Node}"));
                break;
            case Step.Relaying(var who, var toReply, var replyTo, var within):
                replyTo.Tell((reply is null ? null : reply as Failed ?? toReply(reply)) ?? AsFailure(reply, who, within));
                break;
            case Step.RefreshingMembers(var subnet):
                if (reply is not SubnetMessages.Members members)
                {
                    Timers.StartSingleTimer($"refresh-{subnet}", new RefreshSubnet(subnet), _settings.RestartMaxBackoff);
                    break;
                }
                foreach (var member in members.Nodes)
                    if (_nodes.TryGetValue(member.Node, out var known) && !known.Actor.Equals(member.NodeActor))
                        Track(member.Node, subnet, member.NodeActor);
                _log.Info("IPAM: node actors of subnet {0} found again after a restart", subnet);
                break;
        }
    }

    // ---- indexes and errors --------------------------------------------------------------------------------------

    private void Index(NodeName node, AllocationKey key, Ipv4 address, string? netns)
    {
        _keys[key] = (node, address, netns);
        _addresses[address] = key;
    }

    private void Unindex(AllocationKey key)
    {
        if (_keys.Remove(key, out var held)) _addresses.Remove(held.Address);
    }

    private static Failed Invalid(string message) => new(IpamError.Invalid(message));
    private static Failed UnknownNode(NodeName node) => new(IpamError.NotFound($"node: '{node}' is not a member of any subnet"));
    private static Failed Busy(NodeName node) => new(IpamError.Conflict($"node {node} is being added or removed; try again"));

    private Failed AsFailure(object? reply, string who, TimeSpan? within = null) => reply as Failed
        ?? new Failed(IpamError.Unavailable($"{who} did not answer within {(within ?? _settings.AskTimeout).TotalSeconds:0.#}s; " +
            "the outcome is unknown, and retrying is safe"));
}

/// <summary>
/// Asks every subnet and node (and the reservation ledger) for its state at once and answers <see cref="IpamStateView"/>
/// when all have answered, or "unavailable" when one has not within the timeout; then stops. The replies keep the order
/// of the questions.
/// </summary>
internal sealed class StateGatherer : ReceiveActor
{
    private sealed record Reply(int Slot, object? Answer) : INoSerializationVerificationNeeded;

    public StateGatherer(IReadOnlyList<(IActorRef Target, object Query)> queries, IActorRef replyTo, TimeSpan timeout)
    {
        var replies = new object?[queries.Count];
        var missing = queries.Count;
        for (var i = 0; i < queries.Count; i++)
        {
            var slot = i;
            queries[i].Target.Ask<object>(queries[i].Query, timeout)
                .PipeTo(Self, success: answer => new Reply(slot, answer), failure: _ => new Reply(slot, null));
        }
        Receive<Reply>(reply =>
        {
            if (reply.Answer is null)
            {
                replyTo.Tell(new IpamMessages.Failed(IpamError.Unavailable("an actor did not answer")));
                Context.Stop(Self);
                return;
            }
            replies[reply.Slot] = reply.Answer;
            if (--missing == 0) Finish(replies, replyTo);
        });
        if (missing == 0) Finish(replies, replyTo);
    }

    private void Finish(object?[] replies, IActorRef replyTo)
    {
        replyTo.Tell(new IpamMessages.IpamStateView([.. replies.OfType<SubnetSnapshot>()], [.. replies.OfType<NodeSnapshot>()])
        {
            Reservations = replies.OfType<ReservationMessages.Ledger>().SingleOrDefault()?.Reservations ?? [],
        });
        Context.Stop(Self);
    }

    public static Props Props(IReadOnlyList<(IActorRef Target, object Query)> queries, IActorRef replyTo, TimeSpan timeout) =>
        Akka.Actor.Props.Create(() => new StateGatherer(queries, replyTo, timeout));
}
