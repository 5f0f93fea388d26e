using System.Collections.Immutable;
using System.Text.Json;
using Akka.Actor;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Kubernetes;

namespace Romana.Actors.Policy;

/// <summary>
/// The Kubernetes policy source: one per cluster (a cluster singleton). It runs three informers (every Pod, every Namespace,
/// every NetworkPolicy of the cluster), keeps the <see cref="PolicyView"/> they show, and publishes each change, numbered
/// within its epoch (this run), through <paramref name="publish"/> (DistributedPubSub's topic <see cref="PolicyMessages.Topic"/>)
/// to every node's agent; an agent that starts, or misses a change, asks for the whole view (<see cref="PolicyMessages.GetView"/>).
/// The API server thus serves three watches per cluster, not three per node. Changes are batched: what changed within
/// <paramref name="batchInterval"/> is one message to every agent (and a pod event that changes nothing policy reads, such as
/// a status condition, is none). A pod is in the view once it has an address
/// and a node, unless it uses the host's network or has finished (Succeeded, Failed: its address may be another pod's).
/// A NetworkPolicy that cannot be read is left out, logged once naming its field and value.
/// </summary>
public sealed class KubernetesPolicyViewActor : ReceiveActor, IWithTimers
{
    private readonly Action<object> _publish;
    private readonly IReadOnlyList<Func<Action<object>, CancellationToken, Task>> _informers;
    private readonly TimeSpan _versionInterval;
    private readonly TimeSpan _batchInterval;
    private readonly List<ViewChange> _pending = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _epoch = Guid.NewGuid().ToString("N")[..12];
    private readonly List<CancellationTokenSource> _running = [];
    private readonly HashSet<string> _said = [];
    private PolicyView _view = PolicyView.Empty;
    private long _seq;

    public KubernetesPolicyViewActor(Action<object> publish, IReadOnlyList<Func<Action<object>, CancellationToken, Task>> informers,
        TimeSpan versionInterval, TimeSpan batchInterval)
    {
        _publish = publish;
        _informers = informers;
        _versionInterval = versionInterval;
        _batchInterval = batchInterval;
        Receive<InformerDelta<KubePod>.Added>(d => Publish(Pod(d.Object, d.Cause)));
        Receive<InformerDelta<KubePod>.Updated>(d => Publish(Pod(d.New, d.Cause)));
        Receive<InformerDelta<KubePod>.Deleted>(d => Publish(Removed(new ViewChange.PodRemoved(d.Last.Key, d.Cause))));
        Receive<InformerDelta<KubeNamespace>.Added>(d => Publish(Namespace(d.Object, d.Cause)));
        Receive<InformerDelta<KubeNamespace>.Updated>(d => Publish(Namespace(d.New, d.Cause)));
        Receive<InformerDelta<KubeNamespace>.Deleted>(d => Publish(new ViewChange.NamespaceRemoved(d.Last.Name, d.Cause)));
        Receive<InformerDelta<KubeNetworkPolicy>.Added>(d => Publish(Policy(d.Object, d.Cause)));
        Receive<InformerDelta<KubeNetworkPolicy>.Updated>(d => Publish(Policy(d.New, d.Cause)));
        Receive<InformerDelta<KubeNetworkPolicy>.Deleted>(d => Publish(Removed(new ViewChange.PolicyRemoved(d.Last.Key, d.Cause))));
        Receive<InformerSignals.Synced>(s =>
            _log.Info("Policy view: {0} listed at resourceVersion {1} ({2}); the view: {3}", s.What, s.ResourceVersion, s.Keys.Length,
                _view));
        Receive<InformerSignals.Interrupted>(down =>
            _log.Warning("Policy view: {0}: {1}; again in {2:0.###}s", down.What, down.Why, down.RetryIn.TotalSeconds));
        Receive<Flush>(_ => FlushPending());
        Receive<PolicyMessages.GetView>(_ =>
        {
            FlushPending();
            foreach (var part in PolicyMessages.Split(_epoch, _seq, _view)) Sender.Tell(part);
        });
        Receive<Tick>(_ => _publish(new PolicyMessages.Version(_epoch, _seq)));
    }

    public static Props Props(Action<object> publish, IReadOnlyList<Func<Action<object>, CancellationToken, Task>> informers,
        TimeSpan versionInterval, TimeSpan batchInterval) =>
        Akka.Actor.Props.Create(() => new KubernetesPolicyViewActor(publish, informers, versionInterval, batchInterval));

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Tick : INoSerializationVerificationNeeded;
    private sealed record Flush : INoSerializationVerificationNeeded;

    protected override void PreStart()
    {
        _log.Info("Policy view: epoch {0}; watching Pods, Namespaces and NetworkPolicies for every node's agent", _epoch);
        foreach (var informer in _informers) _running.Add(InformerRun.Start(Self, informer));
        Timers.StartPeriodicTimer("version", new Tick(), _versionInterval);
    }

    protected override void PostStop()
    {
        foreach (var running in _running) InformerRun.Stop(running);
    }

    private void Publish(ViewChange? change)
    {
        if (change is null) return;
        var view = _view.Apply(change);
        if (view == _view) return;
        _view = view;
        _pending.Add(change);
        if (!Timers.IsTimerActive("flush")) Timers.StartSingleTimer("flush", new Flush(), _batchInterval);
    }

    private void FlushPending()
    {
        Timers.Cancel("flush");
        if (_pending.Count == 0) return;
        _publish(new PolicyMessages.Changed(_epoch, ++_seq, [.. _pending]));
        _pending.Clear();
    }

    /// <summary>A removal of what the view does not hold is no change.</summary>
    private ViewChange? Removed(ViewChange change) => change switch
    {
        ViewChange.PodRemoved p when !_view.Pods.ContainsKey(p.Key) => null,
        ViewChange.PolicyRemoved p when !_view.Policies.ContainsKey(p.Key) => null,
        _ => change,
    };

    private ViewChange? Pod(KubePod pod, string cause)
    {
        var usable = pod is { NodeName: { Length: > 0 }, HostNetwork: false } && pod.Phase is not ("Succeeded" or "Failed")
            && Ipv4.TryParse(pod.PodIp, out _);
        if (!usable) return Removed(new ViewChange.PodRemoved(pod.Key, $"{cause}; {WhyNot(pod)}"));
        var node = Ipv4.TryParse(pod.HostIp, out var hostIp) ? hostIp : (Ipv4?)null;
        var policyPod = new PolicyPod(pod.Namespace, pod.Name, pod.Labels, Ipv4.Parse(pod.PodIp!), node,
            pod.NamedPorts.IsDefault ? [] : pod.NamedPorts);
        var next = new ViewPod(policyPod, pod.NodeName!);
        return _view.Pods.TryGetValue(pod.Key, out var known) && Same(known, next) ? null : new ViewChange.PodSet(next, cause);
    }

    private static bool Same(ViewPod a, ViewPod b) =>
        a.Node == b.Node && a.Pod.Address == b.Pod.Address && a.Pod.NodeAddress == b.Pod.NodeAddress
        && a.Pod.Labels.SequenceEqual(b.Pod.Labels) && a.Pod.NamedPorts.SequenceEqual(b.Pod.NamedPorts);

    private static string WhyNot(KubePod pod) =>
        pod.HostNetwork ? "it uses the host's network"
        : pod.NodeName is not { Length: > 0 } ? "not bound to a node yet"
        : pod.Phase is "Succeeded" or "Failed" ? $"it has finished ({pod.Phase})"
        : "no address yet";

    private ViewChange? Namespace(KubeNamespace ns, string cause)
    {
        var labels = ns.Labels.SetItem(PolicyNamespace.NameLabel, ns.Name);
        return _view.Namespaces.TryGetValue(ns.Name, out var known) && known.Labels.SequenceEqual(labels)
            ? null
            : new ViewChange.NamespaceSet(new PolicyNamespace(ns.Name, labels), cause);
    }

    private ViewChange? Policy(KubeNetworkPolicy policy, string cause)
    {
        try
        {
            var json = $$"""{"metadata":{"name":{{JsonSerializer.Serialize(policy.Name)}},"namespace":{{JsonSerializer.Serialize(
                policy.Namespace)}}},"spec":{{(policy.SpecJson is { Length: > 0 } spec ? spec : "{}")}}}""";
            return new ViewChange.PolicySet(NetworkPolicyJson.Parse(json, $"NetworkPolicy {policy.Key}"), cause);
        }
        catch (PolicyFormatException e)
        {
            if (_said.Add($"{policy.Key} {policy.ResourceVersion}"))
                _log.Warning("Policy view: {0}; left out (resourceVersion {1})", e.Message, policy.ResourceVersion);
            return Removed(new ViewChange.PolicyRemoved(policy.Key, $"{cause}; it cannot be read: {e.Message}"));
        }
    }
}
