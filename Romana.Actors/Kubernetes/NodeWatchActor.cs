using Akka.Actor;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Kubernetes;

/// <summary>
/// Kubernetes Nodes drive Romana's node membership; one per cluster (a cluster singleton). It runs the Node informer and:
/// a Node that is added (or listed) joins the IPAM (<see cref="NodePlacement"/>; the node's daemon sends the same join, and
/// whichever comes second changes nothing); a Node Romana cannot place is logged once and skipped. A deleted Node is
/// removed from the IPAM (its addresses released, its blocks returned to the subnet, each an event with the cause) only once
/// its daemon is no live member of the cluster (<paramref name="liveMember"/>) and its subnet no longer sees a daemon holding
/// it: until then it is asked again every <see cref="NodeWatchSettings.RetryInterval"/>, and a live daemon's addresses are
/// never handed out again. A Node added again before that cancels the removal.
/// </summary>
/// <param name="liveMember">The cluster address of the node's daemon while it is an Up and reachable member; null otherwise.</param>
public sealed class NodeWatchActor : ReceiveActor, IWithTimers
{
    private readonly ClusterTopology _topology;
    private readonly IActorRef _ipam;
    private readonly Func<NodeName, string?> _liveMember;
    private readonly NodeWatchSettings _settings;
    private readonly Func<Action<object>, CancellationToken, Task> _runInformer;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private CancellationTokenSource? _informer;
    private readonly Dictionary<NodeName, AddNode> _joining = [];
    private readonly Dictionary<NodeName, string> _removing = [];
    private readonly HashSet<string> _said = [];
    private readonly HashSet<NodeName> _asking = [];
    /// <summary>The Nodes the watch shows now (the list and the events after it).</summary>
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);

    public NodeWatchActor(ClusterTopology topology, IActorRef ipam, Func<NodeName, string?> liveMember, NodeWatchSettings settings,
        Func<Action<object>, CancellationToken, Task> runInformer)
    {
        _topology = topology;
        _ipam = ipam;
        _liveMember = liveMember;
        _settings = settings;
        _runInformer = runInformer;
        Receive<InformerDelta<KubeNode>.Added>(added => Joined(added.Object, added.Cause));
        Receive<InformerDelta<KubeNode>.Updated>(updated => Joined(updated.New, updated.Cause));
        Receive<InformerDelta<KubeNode>.Deleted>(deleted => Deleted(new NodeName(deleted.Last.Name), deleted.Cause));
        Receive<InformerSignals.Synced>(Listed);
        Receive<MembersRead>(Reconcile);
        Receive<InformerSignals.Interrupted>(down =>
            _log.Warning("Node watch: {0}; again in {1:0.###}s", down.Why, down.RetryIn.TotalSeconds));
        Receive<Retry>(_ => RetryAll());
        Receive<Answered>(OnAnswered);
        Receive<GetPending>(_ => Sender.Tell(new Pending([.. _joining.Keys], [.. _removing.Keys])));
    }

    public static Props Props(ClusterTopology topology, IActorRef ipam, Func<NodeName, string?> liveMember, NodeWatchSettings settings,
        Func<Action<object>, CancellationToken, Task> runInformer) =>
        Akka.Actor.Props.Create(() => new NodeWatchActor(topology, ipam, liveMember, settings, runInformer));

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Which Nodes wait for their join or their removal (tests, status).</summary>
    public sealed record GetPending : INoSerializationVerificationNeeded;
    public sealed record Pending(IReadOnlyList<NodeName> Joining, IReadOnlyList<NodeName> Removing) : INoSerializationVerificationNeeded;

    private sealed record Retry : INoSerializationVerificationNeeded;
    private sealed record MembersRead(InformerSignals.Synced Listed, IReadOnlyList<NodeName>? Members) : INoSerializationVerificationNeeded;
    private sealed record Answered(NodeName Node, object Command, object? Reply) : INoSerializationVerificationNeeded;

    protected override void PreStart()
    {
        _informer = InformerRun.Start(Self, _runInformer);
        Timers.StartPeriodicTimer("retry", new Retry(), _settings.RetryInterval);
    }

    protected override void PostStop() => InformerRun.Stop(_informer);

    /// <summary>
    /// After each list (the first, and every re-list after 410): the IPAM's members that no listed Node names are removed
    /// like deleted Nodes (a Node deleted while no Node watch ran, as when the singleton moved), under the same liveness rule.
    /// </summary>
    private void Listed(InformerSignals.Synced synced)
    {
        _log.Info("Node watch: {0} Nodes listed at resourceVersion {1}", synced.Keys.Length, synced.ResourceVersion);
        MembersAsync().PipeTo(Self, success: members => new MembersRead(synced, members), failure: _ => new MembersRead(synced, null));
    }

    private async Task<IReadOnlyList<NodeName>?> MembersAsync()
    {
        var members = new List<NodeName>();
        foreach (var subnet in _topology.Subnets)
        {
            if (await _ipam.Ask<object>(new GetSubnet(subnet.Id), _settings.AskTimeout) is not SubnetView view) return null;
            members.AddRange(view.Subnet.Members.Select(m => m.Node));
        }
        return members;
    }

    private void Reconcile(MembersRead read)
    {
        if (read.Members is null)
        {
            _log.Warning("Node watch: the IPAM's members could not be read after the list at resourceVersion {0}; " +
                "Nodes deleted while unwatched are found at the next list", read.Listed.ResourceVersion);
            return;
        }
        foreach (var node in read.Members.Where(m => !_known.Contains(m.Value) && !_removing.ContainsKey(m)).Distinct().ToList())
            Deleted(node, $"no Node {node} in the list at resourceVersion {read.Listed.ResourceVersion}: deleted while unwatched");
    }

    private void Joined(KubeNode node, string cause)
    {
        var name = new NodeName(node.Name);
        _known.Add(node.Name);
        if (_removing.Remove(name)) _log.Info("Node watch: Node {0} is back ({1}); its removal is cancelled", name, cause);
        switch (NodePlacement.Decide(node, _topology))
        {
            case NodePlacement.Skip skip:
                SayOnce(skip.Why, () => _log.Warning("Node watch: {0}; skipped (Romana cannot place it)", skip.Why));
                _joining.Remove(name);
                break;
            case NodePlacement.Join join:
                _joining[name] = join.Command;
                Ask(name, join.Command);
                break;
        }
    }

    private void Deleted(NodeName node, string cause)
    {
        _known.Remove(node.Value);
        _joining.Remove(node);
        _removing[node] = $"Kubernetes Node {node} deleted ({cause})";
        _log.Info("Node watch: Node {0} deleted ({1}); it leaves Romana once its daemon is no member of the cluster", node, cause);
        TryRemove(node);
    }

    private void RetryAll()
    {
        foreach (var (node, command) in _joining) Ask(node, command);
        foreach (var node in _removing.Keys.ToList()) TryRemove(node);
    }

    private void TryRemove(NodeName node)
    {
        if (_liveMember(node) is { } address)
        {
            SayOnce($"live {node} {address}", () => _log.Info(
                "Node watch: Node {0} is deleted but its daemon at {1} is a live member; its addresses stay its own", node, address));
            return;
        }
        Ask(node, new RemoveNode(node, _removing[node]));
    }

    private void Ask(NodeName node, object command)
    {
        if (!_asking.Add(node)) return;
        var self = Self;
        _ipam.Ask<object>(command, _settings.AskTimeout)
            .ContinueWith(t => self.Tell(new Answered(node, command, t.IsCompletedSuccessfully ? t.Result : null)), TaskScheduler.Default);
    }

    private void OnAnswered(Answered answered)
    {
        _asking.Remove(answered.Node);
        switch (answered.Command, answered.Reply)
        {
            case (AddNode add, Succeeded):
                if (_joining.Remove(answered.Node)) _log.Info("Node watch: {0}", add.Reason);
                break;
            case (AddNode, Failed { Error.Code: IpamErrorCode.Invalid or IpamErrorCode.Conflict or IpamErrorCode.NotFound } refused):
                _joining.Remove(answered.Node);
                SayOnce($"refused {answered.Node} {refused.Error.Message}", () =>
                    _log.Warning("Node watch: Node {0} not joined: {1}", answered.Node, refused.Error.Message));
                break;
            case (RemoveNode remove, NodeRemoved removed) when _removing.Remove(answered.Node):
                _log.Info("Node watch: node {0} left subnet {1}: {2} addresses released, its blocks returned ({3})", removed.Node,
                    removed.Subnet, removed.Released.Length, remove.Reason);
                break;
            case (RemoveNode, Failed { Error.Code: IpamErrorCode.NotFound }) when _removing.Remove(answered.Node):
                _log.Info("Node watch: node {0} is not in Romana's IPAM; nothing to remove", answered.Node);
                break;
            case (_, Failed failed):
                SayOnce($"{answered.Node} {failed.Error.Message}", () => _log.Info("Node watch: node {0}: {1}; asking again every {2}s",
                    answered.Node, failed.Error.Message, _settings.RetryInterval.TotalSeconds));
                break;
        }
    }

    private void SayOnce(string what, Action say)
    {
        if (_said.Add(what)) say();
    }
}

/// <param name="RetryInterval">How often a join or a removal that could not be done yet is asked again.</param>
public sealed record NodeWatchSettings(TimeSpan RetryInterval, TimeSpan AskTimeout);
