using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Health;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Topology;
using static Romana.Actors.Health.HealthMessages;
using static Romana.Actors.Ipam.IpamMessages;
using static Romana.Actors.Ipam.NodeMessages;
using static Romana.Actors.Ipam.SubnetMessages;
using static Romana.Actors.Topology.ZoneMessages;

namespace Romana.Actors.Audit;

/// <summary>
/// Rebuilds the state of every zone, subnet, node, the reservation ledger, the route manager and forwarder health from
/// their events alone, up to a time, with the same Apply functions the actors use. Fed in journal order, one event at a
/// time: nothing but the current state is kept in memory.
/// </summary>
public sealed class JournalReplay(DateTimeOffset? until = null)
{
    private readonly List<SubnetId> _subnetOrder = new();
    private readonly Dictionary<SubnetId, Ipv4Cidr> _subnetPrefixes = new();
    private readonly List<(ZoneName Zone, Ipv4Cidr Prefix)> _zones = new();
    private readonly Dictionary<SubnetId, SubnetState> _subnets = new();
    private readonly Dictionary<NodeName, NodeState> _nodes = new();
    private readonly List<IRomanaEvent> _waitingForBlockSize = new();
    private readonly Dictionary<SubnetId, SubnetHealthState> _health = new();
    private ReservationLedgerState _ledger = ReservationLedgerState.Empty;
    private int? _blockPrefixLength;

    public RouteManagerState Routes { get; private set; } = RouteManagerState.Empty;
    public long Applied { get; private set; }

    public void Apply(IRomanaEvent e)
    {
        if (until is { } limit && e.At > limit) return;
        Applied++;
        switch (e)
        {
            case ZoneDeclared zone:
                _zones.Add((zone.Zone, zone.PodPrefix));
                break;
            case SubnetPrefixAssigned subnet:
                _subnetOrder.Add(subnet.Subnet);
                _subnetPrefixes[subnet.Subnet] = subnet.PodPrefix;
                break;
            case IRouteEvent route:
                Routes = Routes.Apply(route);
                break;
            case ReservationMessages.ReservationMade or ReservationMessages.ReservationLifted:
                _ledger = _ledger.Apply(e);
                break;
            case IHealthEvent health:
                _health[health.Subnet] = _health.GetValueOrDefault(health.Subnet, SubnetHealthState.Empty(health.Subnet)).Apply(health);
                break;
            default:
                ApplySized(e);
                break;
        }
    }

    /// <summary>Subnet and node states need the block size, which the first block event tells.</summary>
    private void ApplySized(IRomanaEvent e)
    {
        _blockPrefixLength ??= e switch
        {
            BlockAssigned assigned => assigned.Block.PrefixLength,
            BlockAdopted adopted => adopted.Block.PrefixLength,
            _ => null,
        };
        if (_blockPrefixLength is null)
        {
            _waitingForBlockSize.Add(e);
            return;
        }
        foreach (var waiting in _waitingForBlockSize) ApplyToAggregate(waiting, _blockPrefixLength.Value);
        _waitingForBlockSize.Clear();
        ApplyToAggregate(e, _blockPrefixLength.Value);
    }

    private void ApplyToAggregate(IRomanaEvent e, int blockPrefixLength)
    {
        switch (e)
        {
            case NodeEvent node:
                _nodes[node.Node] = _nodes.GetValueOrDefault(node.Node, NodeState.Empty(node.Node, blockPrefixLength)).Apply(node);
                break;
            case IIpamEvent subnetEvent when SubnetOf(subnetEvent) is { } subnet:
                _subnets[subnet] = _subnets.GetValueOrDefault(subnet, SubnetState.Empty(subnet, _subnetPrefixes[subnet], blockPrefixLength))
                    .Apply(subnetEvent);
                break;
        }
    }

    private static SubnetId? SubnetOf(IIpamEvent e) => e switch
    {
        NodeJoined x => x.Subnet,
        NodeLeft x => x.Subnet,
        BlockAssigned x => x.Subnet,
        BlockReclaimed x => x.Subnet,
        RangeReserved x => x.Subnet,
        RangeUnreserved x => x.Subnet,
        _ => null,
    };

    private void Flush()
    {
        foreach (var waiting in _waitingForBlockSize) ApplyToAggregate(waiting, 32); // no block anywhere: the size cannot matter
        _waitingForBlockSize.Clear();
    }

    /// <summary>Everything this replay holds, as data (<see cref="ReplayCheckpoint"/>); the replay is left as it was.</summary>
    public ReplayCheckpoint ToCheckpoint() => new(
        [.. _zones.Select(z => new ReplayCheckpoint.Zone(z.Zone.Value, z.Prefix))],
        [.. _subnetOrder.Select(s => new ReplayCheckpoint.Zone(s.Value, _subnetPrefixes[s]))],
        [.. _subnets.Values.OrderBy(s => s.Subnet).Select(s => s.ToSnapshot())],
        [.. _nodes.Values.OrderBy(n => n.Node).Select(n => n.ToSnapshot())],
        [.. _ledger.Reservations],
        (RouteManagerSnapshot)Routes.ToSnapshotRecord(),
        [.. _health.Values.OrderBy(h => h.Subnet).Select(h => new ReplayCheckpoint.SubnetHealth(h.Subnet, [.. h.Failed]))],
        _blockPrefixLength,
        [.. _waitingForBlockSize.Select(ReplayCheckpoint.Store)],
        Applied);

    /// <summary>
    /// The replay a checkpoint was taken of, continuing up to <paramref name="until"/>: the events it applied must all be at
    /// or before that time (a checkpoint whose covers-until is not later), so it is exactly where a full replay would be.
    /// </summary>
    public static JournalReplay FromCheckpoint(ReplayCheckpoint checkpoint, DateTimeOffset? until = null)
    {
        var replay = new JournalReplay(until);
        replay._zones.AddRange(checkpoint.Zones.Select(z => (new ZoneName(z.Name), z.Prefix)));
        foreach (var subnet in checkpoint.Subnets)
        {
            replay._subnetOrder.Add(new SubnetId(subnet.Name));
            replay._subnetPrefixes[new SubnetId(subnet.Name)] = subnet.Prefix;
        }
        foreach (var subnet in checkpoint.SubnetStates) replay._subnets[subnet.Subnet] = SubnetState.FromSnapshot(subnet);
        foreach (var node in checkpoint.NodeStates) replay._nodes[node.Node] = NodeState.FromSnapshot(node);
        replay._ledger = new ReservationLedgerState([.. checkpoint.Reservations]);
        replay.Routes = checkpoint.Routes.ToState();
        foreach (var health in checkpoint.Health) replay._health[health.Subnet] = new SubnetHealthState(health.Subnet, [.. health.Failed]);
        replay._blockPrefixLength = checkpoint.BlockPrefixLength;
        replay._waitingForBlockSize.AddRange(checkpoint.WaitingForBlockSize.Select(ReplayCheckpoint.Load));
        replay.Applied = checkpoint.Applied;
        return replay;
    }

    /// <summary>Subnets in the order they were configured, and the nodes that are members at the time, in the order they joined.</summary>
    public IpamStateView Ipam()
    {
        Flush();
        var subnets = _subnetOrder.Where(_subnets.ContainsKey).Select(id => _subnets[id].ToSnapshot()).ToImmutableArray();
        var members = subnets.SelectMany(s => s.Members.Select(m => m.Node)).ToHashSet();
        return new IpamStateView(subnets,
            [.. _nodes.Values.Where(n => members.Contains(n.Node)).OrderBy(n => n.Node).Select(n => n.ToSnapshot())])
        {
            Reservations = [.. _ledger.Reservations],
        };
    }

    public IReadOnlyList<(string Name, Ipv4Cidr Prefix)> Prefixes() =>
        [.. _zones.Select(z => (z.Zone.Value, z.Prefix)), .. _subnetOrder.Select(s => (s.Value, _subnetPrefixes[s]))];

    public IReadOnlyList<SubnetId> SubnetOrder => _subnetOrder;
    public Ipv4Cidr PrefixOf(SubnetId subnet) => _subnetPrefixes[subnet];
    public bool IsFailed(NodeName node) => _health.Values.Any(h => h.IsFailed(node));

    /// <summary>The routing view of the state: subnets with the table that serves them, nodes with health, blocks with pods.</summary>
    public RoutingInput RoutingInput()
    {
        var ipam = Ipam();
        var tableOf = Routes.Serves.SelectMany(t => t.Value.Select(s => (Subnet: s, Table: t.Key)))
            .ToDictionary(x => x.Subnet, x => x.Table);
        return new RoutingInput(
            [.. ipam.Subnets.Select(s => new PlanSubnet(s.Subnet, s.PodPrefix, tableOf.GetValueOrDefault(s.Subnet, "")))],
            [.. ipam.Subnets.SelectMany(s => s.Members.Select(m => new PlanNode(m.Node, s.Subnet, m.Ip, m.Eni ?? "", !IsFailed(m.Node))))],
            [.. ipam.Nodes.SelectMany(n => n.Blocks.Select(b => new PlanBlock(b, n.Node,
                n.Allocations.Count(a => b.Contains(a.Address)))))],
            [.. Routes.Budgets.Select(b => new PlanTable(b.Key, b.Value))]);
    }

    /// <summary>The routes Romana owned at the time, as a plan with the budgets it last observed.</summary>
    public RoutePlan RoutePlan(RoutingInput input)
    {
        var plan = new RoutePlan([.. Routes.Tables.Select(t => new TablePlan(t, Routes.Budgets.GetValueOrDefault(t),
            [.. Routes.OwnedIn(t).Values.Select(r => new PlannedRoute(r.Cidr, r.Target, r.Eni))]))], 0, []);
        return plan with { ForwardedFraction = RouteMetrics.ForwardedFraction(input, plan) };
    }
}
