using Akka.Actor;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Kubernetes;

/// <summary>
/// The pods of one node, against the addresses that node holds: an address handed to a pod (by the uid the CNI ADD gave,
/// K8S_POD_UID; by namespace/name for an address recorded before uids were) that no longer exists on this node is released
/// once it has been missing for <see cref="PodWatchSettings.Grace"/>, with the pod and the reason in the journal. It runs in
/// each daemon for its own node, watching only that node's pods (<c>fieldSelector=spec.nodeName</c>): the addresses are
/// decided and released on the node, and no daemon needs another node's pods for this. Absence is counted only while the
/// watch is current (after a list, or once events flow again after an interruption): a stale cache releases nothing.
/// Addresses with no pod (not Kubernetes's) and addresses set aside are never touched.
/// </summary>
public sealed class PodWatchActor : ReceiveActor, IWithTimers
{
    private readonly NodeName _node;
    private readonly IActorRef _ipam;
    private readonly PodWatchSettings _settings;
    private readonly IClock _clock;
    private readonly Func<Action<object>, CancellationToken, Task> _runInformer;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private CancellationTokenSource? _informer;
    private readonly Dictionary<string, KubePod> _pods = [];
    private readonly Dictionary<AllocationKey, DateTimeOffset> _missingSince = [];
    private bool _current;
    private bool _checking;

    public PodWatchActor(NodeName node, IActorRef ipam, PodWatchSettings settings, IClock clock,
        Func<Action<object>, CancellationToken, Task> runInformer)
    {
        _node = node;
        _ipam = ipam;
        _settings = settings;
        _clock = clock;
        _runInformer = runInformer;
        Receive<InformerDelta<KubePod>.Added>(added => Seen(added.Object));
        Receive<InformerDelta<KubePod>.Updated>(updated => Seen(updated.New));
        Receive<InformerDelta<KubePod>.Deleted>(deleted =>
        {
            _pods.Remove(deleted.Last.Key);
            _current = true;
        });
        Receive<InformerSignals.Synced>(synced =>
        {
            _current = true;
            _log.Info("Pod watch of node {0}: {1} pods listed at resourceVersion {2}", _node, synced.Keys.Length, synced.ResourceVersion);
        });
        Receive<InformerSignals.Interrupted>(down =>
        {
            _current = false;
            _missingSince.Clear();
            _log.Warning("Pod watch of node {0}: {1}; again in {2:0.###}s; no address is released meanwhile", _node, down.Why,
                down.RetryIn.TotalSeconds);
        });
        Receive<Check>(_ => StartCheck());
        Receive<Checked>(OnChecked);
        Receive<Failed>(failed => _log.Warning("Pod watch of node {0}: a release failed: {1}", _node, failed.Error.Message));
        Receive<IpamReply>(_ => { });
    }

    public static Props Props(NodeName node, IActorRef ipam, PodWatchSettings settings, IClock clock,
        Func<Action<object>, CancellationToken, Task> runInformer) =>
        Akka.Actor.Props.Create(() => new PodWatchActor(node, ipam, settings, clock, runInformer));

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Check : INoSerializationVerificationNeeded;
    private sealed record Checked(AllocationsOf? Allocations) : INoSerializationVerificationNeeded;

    /// <summary>The reason a released address carries in the journal.</summary>
    public static string ReasonFor(Allocation allocation, NodeName node, TimeSpan missing) =>
        $"pod {allocation.Pod}{(allocation.PodUid is null ? "" : $" (uid {allocation.PodUid})")} no longer exists on node {node} " +
        $"in Kubernetes (missing for {missing.TotalSeconds:0}s): released by the Pod watch";

    protected override void PreStart()
    {
        _informer = InformerRun.Start(Self, _runInformer);
        Timers.StartPeriodicTimer("check", new Check(), _settings.CheckInterval);
    }

    protected override void PostStop() => InformerRun.Stop(_informer);

    private void Seen(KubePod pod)
    {
        _pods[pod.Key] = pod;
        _current = true;
    }

    private void StartCheck()
    {
        if (!_current || _checking) return;
        _checking = true;
        var self = Self;
        _ipam.Ask<object>(new GetAllocations(_node), _settings.AskTimeout)
            .ContinueWith(t => self.Tell(new Checked(t.IsCompletedSuccessfully ? t.Result as AllocationsOf : null)), TaskScheduler.Default);
    }

    private void OnChecked(Checked result)
    {
        _checking = false;
        if (result.Allocations is not { } held || !_current) return;
        var now = _clock.Now;
        var uids = _pods.Values.Select(p => p.Uid).ToHashSet(StringComparer.Ordinal);
        var keys = held.Allocations.Select(a => a.Key).ToHashSet();
        foreach (var gone in _missingSince.Keys.Where(k => !keys.Contains(k)).ToList()) _missingSince.Remove(gone);
        foreach (var allocation in held.Allocations)
        {
            if (allocation.Pod is null || SetAside.IsSetAsideKey(allocation.Key)) continue;
            var exists = allocation.PodUid is { } uid ? uids.Contains(uid) : _pods.ContainsKey(allocation.Pod);
            if (exists)
            {
                _missingSince.Remove(allocation.Key);
                continue;
            }
            if (!_missingSince.TryGetValue(allocation.Key, out var since))
            {
                _missingSince[allocation.Key] = now;
                continue;
            }
            if (now - since < _settings.Grace) continue;
            var reason = ReasonFor(allocation, _node, now - since);
            _missingSince.Remove(allocation.Key);
            _log.Info("Pod watch of node {0}: releasing {1} (key {2}): {3}", _node, allocation.Address, allocation.Key, reason);
            _ipam.Tell(new Release(allocation.Key, null, reason));
        }
    }
}

/// <param name="Grace">How long a pod must be missing before its address is released.</param>
public sealed record PodWatchSettings(TimeSpan Grace, TimeSpan CheckInterval, TimeSpan AskTimeout);
