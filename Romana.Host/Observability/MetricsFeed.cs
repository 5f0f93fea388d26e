using System.Collections;
using System.Collections.Concurrent;
using System.Reflection;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Health;
using Romana.Actors.Ipam;
using Romana.Actors.Observability;
using Romana.Actors.Routing;
using Romana.Actors.Topology;
using static Romana.Actors.Health.HealthMessages;
using static Romana.Actors.Ipam.NodeMessages;

namespace Romana.Host.Observability;

/// <summary>
/// Feeds <see cref="RomanaMetrics"/> from what already flows through this process's event stream: the events the actors
/// persisted (published after the write), the node actors' usage and the route manager's state after each write, the
/// journal's write times, and each subnet's block ownership (the ownership feed). Gauges change when these do: a scrape
/// reads the collectors and asks no actor. With <c>logEvents</c>, each event is also one log line with its cause.
/// </summary>
public sealed class MetricsFeed : ReceiveActor
{
    private const string Unknown = "unknown";
    private static readonly ConcurrentDictionary<Type, PropertyInfo[]> Fields = new();

    private readonly RomanaMetrics _metrics;
    private readonly ClusterTopology? _topology;
    private readonly IpamPlacement _placement;
    private readonly IClock _clock;
    private readonly bool _logEvents;
    private const string EventSource = "romana.events";
    private readonly ILoggingAdapter _eventLog = Logging.GetLogger(Context.System, EventSource);
    private readonly Dictionary<NodeName, (string Subnet, Observed.NodeUsage Usage)> _nodes = new();
    private readonly Dictionary<NodeName, string> _memberOf = new();
    private readonly Dictionary<NodeName, DateTimeOffset> _failing = new();
    private RouteManagerState? _routes;

    public MetricsFeed(RomanaMetrics metrics, ClusterTopology? topology, IpamPlacement placement, IClock clock, bool logEvents)
    {
        _metrics = metrics;
        _topology = topology;
        _placement = placement;
        _clock = clock;
        _logEvents = logEvents;
        Receive<IRomanaEvent>(Event);
        Receive<Observed.NodeUsage>(Usage);
        Receive<Observed.RoutesNow>(now =>
        {
            _routes = now.State;
            foreach (var table in now.State.Tables.Union(now.State.Owned.Keys))
            {
                _metrics.Routes.WithLabels(table).Set(now.State.OwnedIn(table).Count);
                if (now.State.Budgets.TryGetValue(table, out var budget)) _metrics.RouteBudget.WithLabels(table).Set(budget);
            }
            Repairs();
        });
        Receive<Observed.JournalWritten>(written =>
        {
            _metrics.JournalWrite.WithLabels(written.Writer).Observe(written.Took.TotalSeconds);
            _metrics.JournalWritten(written.Writer, _clock.Now);
        });
        Receive<Observed.JournalWriteFailed>(failed => _metrics.JournalWriteFailed(failed.Writer, failed.Cause, _clock.Now));
        Receive<Observed.HealthNoted>(noted => Judged(noted.Judgement));
        Receive<OwnershipFeed.OwnershipChanged>(changed => Ownership(changed.Subnet));
        Receive<SubscribeAck>(_ => { });
        Receive<Flush>(_ => Sender.Tell(Flushed.Instance));
    }

    /// <summary>Answered with <see cref="Flushed"/> once what was published before it is in the collectors.</summary>
    public sealed record Flush : INoSerializationVerificationNeeded
    {
        public static readonly Flush Instance = new();
    }

    public sealed record Flushed : INoSerializationVerificationNeeded
    {
        public static readonly Flushed Instance = new();
    }

    public static Props Props(RomanaMetrics metrics, ClusterTopology? topology, IpamPlacement placement, IClock clock, bool logEvents) =>
        Akka.Actor.Props.Create(() => new MetricsFeed(metrics, topology, placement, clock, logEvents));

    protected override void PreStart()
    {
        var stream = Context.System.EventStream;
        foreach (var type in new[]
                 {
                     typeof(IRomanaEvent), typeof(Observed.NodeUsage), typeof(Observed.RoutesNow), typeof(Observed.JournalWritten),
                     typeof(Observed.JournalWriteFailed), typeof(Observed.HealthNoted),
                 })
            stream.Subscribe(Self, type);
        if (_placement == IpamPlacement.Cluster && _topology is not null)
            foreach (var subnet in _topology.Subnets)
                DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(OwnershipFeed.Topic(subnet.Id), Self));
        else stream.Subscribe(Self, typeof(OwnershipFeed.OwnershipChanged));
        if (_topology is not null)
            foreach (var subnet in _topology.Subnets)
                _metrics.SubnetBlockCapacity.WithLabels(subnet.Id.Value)
                    .Set(Math.Pow(2, _topology.BlockPrefixLength - subnet.PodPrefix.PrefixLength));
    }

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    private void Event(IRomanaEvent e)
    {
        _metrics.Events.WithLabels(e.GetType().Name).Inc();
        switch (e)
        {
            case AddressesAllocated allocated:
                _metrics.Allocations.WithLabels(allocated.Node.Value).Inc(allocated.Addresses.Length);
                break;
            case AddressesReleased released:
                _metrics.Releases.WithLabels(released.Node.Value).Inc(released.Addresses.Length);
                break;
            case ForwarderFailed failed:
                _metrics.Failovers.WithLabels(failed.Subnet.Value).Inc();
                Judged(failed);
                break;
            case ForwarderRecovered recovered:
                Judged(recovered);
                break;
        }
        if (_logEvents && _eventLog.IsInfoEnabled)
            Context.System.EventStream.Publish(new Info(EventSource, typeof(MetricsFeed), new CausedLine(Describe(e), e.Reason)));
    }

    /// <summary>
    /// A failed node that carries routes is timed from its first missed probe (or its judgement) until it carries none; the
    /// supervisor's event and the route manager's receipt of it may both come here, and the first one counts.
    /// </summary>
    private void Judged(IHealthEvent judgement)
    {
        if (judgement is ForwarderRecovered) _failing.Remove(judgement.Node);
        else if (judgement is ForwarderFailed && _routes is not null && Carries(_routes, judgement.Node)
                 && !_failing.ContainsKey(judgement.Node))
            _failing[judgement.Node] = _metrics.FirstMissOf(judgement.Node) is { } first && first <= judgement.At ? first : judgement.At;
    }

    private static bool Carries(RouteManagerState routes, NodeName node) =>
        routes.Owned.Values.Any(table => table.Values.Any(r => r.Target == node));

    private void Repairs()
    {
        if (_routes is null || _failing.Count == 0) return;
        foreach (var (node, since) in _failing.ToList())
        {
            if (Carries(_routes, node)) continue;
            _metrics.RepairSeconds.Observe(Math.Max(0, (_clock.Now - since).TotalSeconds));
            _failing.Remove(node);
        }
    }

    private void Usage(Observed.NodeUsage usage)
    {
        var subnet = usage.FirstBlock is { } block && _topology?.SubnetContaining(block.Network) is { } layout
            ? layout.Id.Value
            : _memberOf.GetValueOrDefault(usage.Node, Unknown);
        var node = usage.Node.Value;
        if (_nodes.TryGetValue(usage.Node, out var before))
        {
            AddToSubnet(before.Subnet, -before.Usage.Held, -before.Usage.Free);
            if (before.Subnet != subnet)
            {
                _metrics.NodeHeld.RemoveLabelled(before.Subnet, node);
                _metrics.NodeFree.RemoveLabelled(before.Subnet, node);
                _metrics.NodeBlocks.RemoveLabelled(before.Subnet, node);
            }
        }
        _nodes[usage.Node] = (subnet, usage);
        AddToSubnet(subnet, usage.Held, usage.Free);
        _metrics.NodeHeld.WithLabels(subnet, node).Set(usage.Held);
        _metrics.NodeFree.WithLabels(subnet, node).Set(usage.Free);
        _metrics.NodeBlocks.WithLabels(subnet, node).Set(usage.Blocks);
    }

    /// <summary>Subnet sums only where every node's actor runs in this process; in a cluster each daemon has its own node's.</summary>
    private void AddToSubnet(string subnet, int held, int free)
    {
        if (_placement != IpamPlacement.Local || subnet == Unknown) return;
        _metrics.SubnetHeld.WithLabels(subnet).Inc(held);
        _metrics.SubnetFree.WithLabels(subnet).Inc(free);
    }

    private void Ownership(SubnetSnapshot subnet)
    {
        _metrics.SubnetBlocks.WithLabels(subnet.Subnet.Value).Set(subnet.Owners.Length);
        foreach (var member in subnet.Members) _memberOf[member.Node] = subnet.Subnet.Value;
    }

    /// <summary>"Type field=value …": every field but the time and the cause, lists written out.</summary>
    public static string Describe(IRomanaEvent e)
    {
        var fields = Fields.GetOrAdd(e.GetType(), type => [.. type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.Name is not ("At" or "Reason" or "EqualityContract") && p.GetIndexParameters().Length == 0)
            .OrderBy(p => Depth(p.DeclaringType))]); // a base record's fields (the node of a node event) first
        return $"{e.GetType().Name} " + string.Join(" ", fields.Select(p => $"{Camel(p.Name)}={Text(p.GetValue(e))}"));
    }

    private static int Depth(Type? type) => type?.BaseType is { } parent ? 1 + Depth(parent) : 0;

    private static string Camel(string name) => char.ToLowerInvariant(name[0]) + name[1..];

    private static string Text(object? value) => value switch
    {
        null => "-",
        string s => s,
        IDictionary dictionary => "{" + string.Join(", ", dictionary.Keys.Cast<object>().Select(k => $"{k}: {Text(dictionary[k])}")) + "}",
        IEnumerable list => "[" + string.Join(", ", list.Cast<object?>().Select(Text)) + "]",
        _ => value.ToString() ?? "-",
    };
}
