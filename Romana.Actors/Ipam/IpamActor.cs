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
/// The IPAM front door: validates requests, routes them to the zone, subnet and node actors, and keeps two derived
/// indexes (node to subnet, key to node and address) that it rebuilds from those actors when it starts. It owns no
/// state of its own: everything it knows can be recovered from the journal.
/// </summary>
public sealed class IpamActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private readonly ClusterTopology _topology;
    private readonly IpamSettings _settings;
    private readonly IClock _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<SubnetId, IActorRef> _subnets = new();
    private readonly Dictionary<NodeName, (SubnetId Subnet, IActorRef Actor)> _nodes = new();
    private readonly Dictionary<AllocationKey, (NodeName Node, Ipv4 Address)> _keys = new();
    private readonly Dictionary<Ipv4, AllocationKey> _addresses = new();
    /// <summary>Allocations sent to a node and not yet answered: a key may be on its way to only one node.</summary>
    private readonly Dictionary<AllocationKey, (NodeName Node, int Count)> _pending = new();
    /// <summary>Nodes being added or removed: a second change to them waits for the first to finish.</summary>
    private readonly HashSet<NodeName> _changing = new();

    public IpamActor(ClusterTopology topology, IpamSettings settings, IClock clock)
    {
        _topology = topology;
        _settings = settings;
        _clock = clock;
        Receive<Continue>(step => step.Run());
        ReceiveAny(_ => Stash.Stash());
    }

    public static Props Props(ClusterTopology topology, IpamSettings settings, IClock clock) =>
        Akka.Actor.Props.Create(() => new IpamActor(topology, settings, clock));

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart()
    {
        var zones = _topology.Zones.Select(zone =>
            Context.ActorOf(ZoneActor.Props(zone, _topology.BlockPrefixLength, _settings, _clock), $"zone-{Uri.EscapeDataString(zone.Name.Value)}"))
            .ToList();
        Self.AskAllThen([.. zones.Select(z => (z, (object)new GetSubnets()))], _settings.StartupTimeout, OnZonesReady);
    }

    // ---- start-up: rebuild the indexes from the actors -----------------------------------------------------------

    private void OnZonesReady(IReadOnlyList<object?> replies)
    {
        if (replies.OfType<ZoneFailed>().FirstOrDefault() is { } failed) { Fail(failed.Error); return; }
        if (replies.Any(r => r is not ZoneReady)) { Fail(IpamError.Unavailable("a zone actor did not recover in time")); return; }
        foreach (var (id, subnet) in replies.Cast<ZoneReady>().SelectMany(r => r.Subnets)) _subnets[id] = subnet;
        Self.AskAllThen([.. _subnets.Values.Select(s => (s, (object)new SubnetMessages.GetMembers()))], _settings.StartupTimeout, OnMembers);
    }

    private void OnMembers(IReadOnlyList<object?> replies)
    {
        if (replies.Any(r => r is not SubnetMessages.Members)) { Fail(IpamError.Unavailable("a subnet actor did not recover in time")); return; }
        foreach (var members in replies.Cast<SubnetMessages.Members>())
        foreach (var member in members.Nodes)
            Track(member.Node, members.Subnet, member.NodeActor);
        var nodes = _nodes.ToList();
        Self.AskAllThen([.. nodes.Select(n => (n.Value.Actor, (object)new NodeMessages.GetNodeState(n.Key)))], _settings.StartupTimeout, views =>
        {
            if (views.Any(v => v is not NodeSnapshot)) { Fail(IpamError.Unavailable("a node actor did not recover in time")); return; }
            foreach (var view in views.Cast<NodeSnapshot>())
            foreach (var allocation in view.Allocations)
                Index(view.Node, allocation.Key, allocation.Address);
            _log.Info("IPAM ready: {0} zones, {1} subnets, {2} nodes, {3} addresses held", _topology.Zones.Length, _subnets.Count, _nodes.Count, _keys.Count);
            Become(Ready);
            Stash.UnstashAll();
        });
    }

    private void Fail(IpamError error)
    {
        _log.Error("IPAM cannot start: {0}", error.Message);
        Become(() =>
        {
            Receive<Continue>(_ => { });
            ReceiveAny(_ => Sender.Tell(new Failed(error)));
        });
        Stash.UnstashAll();
    }

    // ---- serving -------------------------------------------------------------------------------------------------

    private void Ready()
    {
        Receive<Continue>(step => step.Run());
        Receive<AwaitReady>(_ => Sender.Tell(Succeeded.Instance));
        Receive<AddNode>(AddNode);
        Receive<RemoveNode>(RemoveNode);
        Receive<Allocate>(Allocate);
        Receive<Release>(Release);
        Receive<Reserve>(Reserve);
        Receive<Unreserve>(Unreserve);
        Receive<GetBlocks>(query => AnswerFromNode(query.Node, view => new BlocksOf(query.Node, view.Blocks)));
        Receive<GetAddress>(query => Sender.Tell(_keys.TryGetValue(query.Key, out var held)
            ? new AddressAssigned(held.Node, query.Key, held.Address)
            : new Failed(IpamError.NotFound($"key '{query.Key}' holds no address"))));
        Receive<GetSubnet>(GetSubnet);
        Receive<GetAllocations>(query => AnswerFromNode(query.Node, view => new AllocationsOf(query.Node, view.Allocations)));
        Receive<GetPrefixes>(_ => Sender.Tell(new PrefixList([.. _topology.Prefixes()])));
        Receive<GetIpamState>(_ => GetState());
        Receive<Terminated>(terminated =>
        {
            foreach (var subnet in _nodes.Where(n => n.Value.Actor.Equals(terminated.ActorRef)).Select(n => n.Value.Subnet).Distinct().ToList())
                RefreshMembers(subnet);
        });
        Receive<RefreshSubnet>(refresh => RefreshMembers(refresh.Subnet));
    }

    /// <summary>A subnet that came back from its journal runs new node actors: learn their references.</summary>
    private void RefreshMembers(SubnetId subnet) =>
        Self.AskThen(_subnets[subnet], new SubnetMessages.GetMembers(), _settings.AskTimeout, reply =>
        {
            if (reply is not SubnetMessages.Members members)
            {
                Timers.StartSingleTimer($"refresh-{subnet}", new RefreshSubnet(subnet), _settings.RestartMaxBackoff);
                return;
            }
            foreach (var member in members.Nodes)
                if (_nodes.TryGetValue(member.Node, out var known) && !known.Actor.Equals(member.NodeActor))
                    Track(member.Node, subnet, member.NodeActor);
            _log.Info("IPAM: node actors of subnet {0} found again after a restart", subnet);
        });

    private void Track(NodeName node, SubnetId subnet, IActorRef actor)
    {
        _nodes[node] = (subnet, actor);
        Context.Watch(actor);
    }

    private sealed record RefreshSubnet(SubnetId Subnet);

    private void AddNode(AddNode command)
    {
        var replyTo = Sender;
        if (string.IsNullOrWhiteSpace(command.Node.Value)) { replyTo.Tell(Invalid("node: a node needs a name")); return; }
        if (!Ipv4.TryParse(command.Ip, out var ip)) { replyTo.Tell(Invalid($"ip: '{command.Ip}' is not an IPv4 address")); return; }
        if (_topology.FindSubnet(command.Subnet) is not { } layout)
        {
            replyTo.Tell(new Failed(IpamError.NotFound($"subnet: '{command.Subnet}' is not in the topology")));
            return;
        }
        if (layout.VpcCidr is { } vpc && !vpc.Contains(ip))
        {
            replyTo.Tell(Invalid($"ip: {ip} is not inside subnet {layout.Id}'s VPC CIDR {vpc}"));
            return;
        }
        if (_nodes.TryGetValue(command.Node, out var known) && known.Subnet != command.Subnet)
        {
            replyTo.Tell(new Failed(IpamError.Conflict($"node {command.Node} is already a member of subnet {known.Subnet}")));
            return;
        }
        if (!_changing.Add(command.Node)) { replyTo.Tell(Busy(command.Node)); return; }
        Self.AskThen(_subnets[command.Subnet], new SubnetMessages.AddNode(command.Node, new NodeEndpoint(ip, command.Eni, command.InstanceId)), _settings.AskTimeout, reply =>
        {
            _changing.Remove(command.Node);
            if (reply is SubnetMessages.NodeAdded added)
            {
                Track(command.Node, command.Subnet, added.NodeActor);
                replyTo.Tell(Succeeded.Instance);
            }
            else replyTo.Tell(AsFailure(reply, $"subnet {command.Subnet}"));
        });
    }

    private void RemoveNode(RemoveNode command)
    {
        var replyTo = Sender;
        if (!_nodes.TryGetValue(command.Node, out var node)) { replyTo.Tell(UnknownNode(command.Node)); return; }
        if (!_changing.Add(command.Node)) { replyTo.Tell(Busy(command.Node)); return; }
        Self.AskThen(_subnets[node.Subnet], new SubnetMessages.RemoveNode(command.Node, command.Reason), _settings.AskTimeout, reply =>
        {
            _changing.Remove(command.Node);
            if (reply is SubnetMessages.NodeRemoved removed)
            {
                foreach (var key in removed.Released) Unindex(key);
                Context.Unwatch(node.Actor);
                _nodes.Remove(command.Node);
                replyTo.Tell(Succeeded.Instance);
            }
            else replyTo.Tell(AsFailure(reply, $"subnet {node.Subnet}"));
        });
    }

    private void Allocate(Allocate command)
    {
        var replyTo = Sender;
        var key = command.Key;
        if (string.IsNullOrWhiteSpace(key.Value)) { replyTo.Tell(Invalid("key: an allocation needs a key")); return; }
        if (!_nodes.TryGetValue(command.Node, out var node)) { replyTo.Tell(UnknownNode(command.Node)); return; }
        if (_keys.TryGetValue(key, out var held) && held.Node != command.Node)
        {
            replyTo.Tell(new Failed(IpamError.Conflict($"key '{key}' already holds {held.Address} on node {held.Node}")));
            return;
        }
        if (_pending.TryGetValue(key, out var pending) && pending.Node != command.Node)
        {
            replyTo.Tell(new Failed(IpamError.Conflict($"key '{key}' is being allocated on node {pending.Node}")));
            return;
        }
        _pending[key] = (command.Node, pending.Count + 1);
        Self.AskThen(node.Actor, new NodeMessages.AllocateAddress(command.Node, key, command.Pod), _settings.AskTimeout, reply =>
        {
            var (_, count) = _pending[key];
            if (count == 1) _pending.Remove(key);
            else _pending[key] = (command.Node, count - 1);
            if (reply is AddressAssigned assigned) Index(command.Node, key, assigned.Address);
            replyTo.Tell(reply as IpamReply ?? AsFailure(reply, $"node {command.Node}"));
        });
    }

    private void Release(Release command)
    {
        var replyTo = Sender;
        AllocationKey key;
        if (command.Key.HasValue == command.Address is not null)
        {
            replyTo.Tell(Invalid("release: give either a key or an address"));
            return;
        }
        if (command.Address is { } text)
        {
            if (!Ipv4.TryParse(text, out var address)) { replyTo.Tell(Invalid($"address: '{text}' is not an IPv4 address")); return; }
            if (!_addresses.TryGetValue(address, out key))
            {
                replyTo.Tell(new Failed(IpamError.NotFound($"address {address} is not allocated")));
                return;
            }
        }
        else key = command.Key!.Value;
        if (!_keys.TryGetValue(key, out var held))
        {
            replyTo.Tell(new Failed(IpamError.NotFound($"key '{key}' holds no address")));
            return;
        }
        Self.AskThen(_nodes[held.Node].Actor, new NodeMessages.ReleaseAddress(held.Node, key, command.Reason), _settings.AskTimeout, reply =>
        {
            if (reply is Succeeded) Unindex(key);
            replyTo.Tell(reply as IpamReply ?? AsFailure(reply, $"node {held.Node}"));
        });
    }

    /// <summary>A reservation lies strictly inside the pod CIDR and inside one subnet's pod prefix.</summary>
    private void Reserve(Reserve command)
    {
        var replyTo = Sender;
        if (!Ipv4Cidr.TryParse(command.Cidr, out var range)) { replyTo.Tell(Invalid($"cidr: '{command.Cidr}' is not an IPv4 CIDR")); return; }
        if (!_topology.PodCidr.Contains(range) || range == _topology.PodCidr)
        {
            replyTo.Tell(Invalid($"cidr: {range} must lie strictly inside the pod CIDR {_topology.PodCidr}"));
            return;
        }
        var subnets = _topology.SubnetsOverlapping(range);
        if (subnets.Count == 0)
        {
            replyTo.Tell(Invalid($"cidr: {range} lies in no subnet's pod prefix (padding slots are never handed out)"));
            return;
        }
        if (subnets.Count > 1 || !subnets[0].PodPrefix.Contains(range))
        {
            replyTo.Tell(Invalid($"cidr: {range} spans beyond subnet {subnets[0].Id}'s pod prefix {subnets[0].PodPrefix}; reserve each subnet's part separately"));
            return;
        }
        Self.AskThen(_subnets[subnets[0].Id], new SubnetMessages.Reserve(range), _settings.AskTimeout,
            reply => replyTo.Tell(reply as IpamReply ?? AsFailure(reply, $"subnet {subnets[0].Id}")));
    }

    private void Unreserve(Unreserve command)
    {
        var replyTo = Sender;
        if (!Ipv4Cidr.TryParse(command.Cidr, out var range)) { replyTo.Tell(Invalid($"cidr: '{command.Cidr}' is not an IPv4 CIDR")); return; }
        if (_topology.Subnets.FirstOrDefault(s => s.PodPrefix.Contains(range)) is not { } subnet)
        {
            replyTo.Tell(new Failed(IpamError.NotFound($"no reservation is exactly {range}")));
            return;
        }
        Self.AskThen(_subnets[subnet.Id], new SubnetMessages.Unreserve(range), _settings.AskTimeout,
            reply => replyTo.Tell(reply as IpamReply ?? AsFailure(reply, $"subnet {subnet.Id}")));
    }

    /// <summary>Answers a query about one node from its actor's state (blocks, allocations).</summary>
    private void AnswerFromNode(NodeName node, Func<NodeSnapshot, IpamReply> answer)
    {
        var replyTo = Sender;
        if (!_nodes.TryGetValue(node, out var known)) { replyTo.Tell(UnknownNode(node)); return; }
        Self.AskThen(known.Actor, new NodeMessages.GetNodeState(node), _settings.AskTimeout, reply =>
            replyTo.Tell(reply is NodeSnapshot view ? answer(view) : AsFailure(reply, $"node {node}")));
    }

    private void GetSubnet(GetSubnet query)
    {
        var replyTo = Sender;
        if (!_subnets.TryGetValue(query.Subnet, out var subnet))
        {
            replyTo.Tell(new Failed(IpamError.NotFound($"subnet: '{query.Subnet}' is not in the topology")));
            return;
        }
        Self.AskThen(subnet, new SubnetMessages.GetSubnetState(), _settings.AskTimeout,
            reply => replyTo.Tell(reply is SubnetSnapshot snapshot ? new SubnetView(snapshot) : AsFailure(reply, $"subnet {query.Subnet}")));
    }

    private void GetState()
    {
        var replyTo = Sender;
        var subnets = _subnets.OrderBy(s => s.Key).Select(s => (s.Value, (object)new SubnetMessages.GetSubnetState()));
        var nodes = _nodes.OrderBy(n => n.Key).Select(n => (n.Value.Actor, (object)new NodeMessages.GetNodeState(n.Key)));
        Self.AskAllThen([.. subnets, .. nodes], _settings.AskTimeout, replies =>
        {
            if (replies.Any(r => r is null)) { replyTo.Tell(new Failed(IpamError.Unavailable("an actor did not answer"))); return; }
            replyTo.Tell(new IpamStateView([.. replies.OfType<SubnetSnapshot>()], [.. replies.OfType<NodeSnapshot>()]));
        });
    }

    // ---- indexes and errors --------------------------------------------------------------------------------------

    private void Index(NodeName node, AllocationKey key, Ipv4 address)
    {
        _keys[key] = (node, address);
        _addresses[address] = key;
    }

    private void Unindex(AllocationKey key)
    {
        if (_keys.Remove(key, out var held)) _addresses.Remove(held.Address);
    }

    private static Failed Invalid(string message) => new(IpamError.Invalid(message));
    private static Failed UnknownNode(NodeName node) => new(IpamError.NotFound($"node: '{node}' is not a member of any subnet"));
    private static Failed Busy(NodeName node) => new(IpamError.Conflict($"node {node} is being added or removed; try again"));

    private Failed AsFailure(object? reply, string who) => reply as Failed
        ?? new Failed(IpamError.Unavailable($"{who} did not answer within {_settings.AskTimeout.TotalSeconds:0.#}s; the outcome is unknown, and retrying is safe"));
}
