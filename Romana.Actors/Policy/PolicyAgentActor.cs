using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;

namespace Romana.Actors.Policy;

/// <param name="ApplyInterval">At most one apply per interval: a burst of changes within it is one apply.</param>
/// <param name="RetryMin">A failed apply is tried again after this, doubled per failure up to <paramref name="RetryMax"/>.</param>
/// <param name="DropsInterval">How often the dataplane's drop counters are read for the metrics.</param>
/// <param name="ViewRetry">How often the whole view is asked for again while none came (no source yet, a lost answer).</param>
public sealed record PolicyAgentSettings(TimeSpan ApplyInterval, TimeSpan RetryMin, TimeSpan RetryMax, TimeSpan DropsInterval,
    TimeSpan ViewRetry)
{
    public TimeSpan Backoff(int failures) =>
        TimeSpan.FromMilliseconds(Math.Min(RetryMin.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 30)),
            RetryMax.TotalMilliseconds));
}

/// <summary>The agent's messages besides the source protocol (<see cref="PolicyMessages"/>).</summary>
public static class PolicyAgentMessages
{
    /// <summary>Answered with <see cref="Status"/>.</summary>
    public sealed record GetStatus : INoSerializationVerificationNeeded;

    /// <param name="Applies">Applies that succeeded; <paramref name="Failures"/>: that failed.</param>
    /// <param name="LocalPods">The local pods of the last apply that succeeded.</param>
    public sealed record Status(string? Epoch, long Seq, PolicyView View, int Applies, int Failures, ImmutableArray<string> LocalPods,
        string? LastError) : INoSerializationVerificationNeeded;

    /// <summary>Published on the local event stream after each apply, for the metrics.</summary>
    public sealed record ApplyDone(bool Ok, TimeSpan Took, int Policies, int Pods, int LocalPods, PolicyApplied? Applied)
        : INoSerializationVerificationNeeded;

    /// <summary>Published on the local event stream after each read of the drop counters.</summary>
    public sealed record DropsRead(IReadOnlyList<PolicyDrops> Drops) : INoSerializationVerificationNeeded;
}

/// <summary>
/// A node's policy agent: holds the view its source sends (<see cref="PolicyMessages"/>), picks the pods this node hosts,
/// and makes the dataplane enforce the world for them. Changes are coalesced: at most one apply per
/// <see cref="PolicyAgentSettings.ApplyInterval"/>, and never two at once; each apply is logged with what changed and why and
/// how long it took; a failed one is tried again with backoff (and says so), with whatever changed meanwhile.
/// </summary>
public sealed class PolicyAgentActor : ReceiveActor, IWithTimers
{
    private const int ReasonsShown = 5;
    private readonly string _node;
    private readonly IPolicyDataplane _dataplane;
    private readonly IActorRef _source;
    private readonly PolicyAgentSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<string> _reasons = [];
    private string? _epoch;
    private long _seq;
    private PolicyView _view = PolicyView.Empty;
    private bool _dirty;
    private bool _applying;
    private TimeSpan? _lastStart;
    private int _failures;
    private int _applies;
    private int _failed;
    private string? _lastError;
    private ImmutableArray<string> _localApplied = [];

    public PolicyAgentActor(string node, IPolicyDataplane dataplane, IActorRef source, PolicyAgentSettings settings)
    {
        _node = node;
        _dataplane = dataplane;
        _source = source;
        _settings = settings;
        Receive<PolicyMessages.View>(OnView);
        Receive<PolicyMessages.Changed>(OnChanged);
        Receive<PolicyMessages.Version>(OnVersion);
        Receive<AskView>(_ => AskForView());
        Receive<ApplyNow>(_ => StartApply());
        Receive<Applied>(OnApplied);
        Receive<ApplyFailed>(OnFailed);
        Receive<ReadDrops>(_ => _dataplane.DropsAsync(CancellationToken.None)
            .PipeTo(Self, success: drops => new PolicyAgentMessages.DropsRead(drops), failure: e => new DropsFailed(e.Message)));
        Receive<PolicyAgentMessages.DropsRead>(read => Context.System.EventStream.Publish(read));
        Receive<DropsFailed>(failed => _log.Debug("Policy: reading the drop counters failed: {0}", failed.Why));
        Receive<SubscribeAck>(_ => { });
        Receive<PolicyAgentMessages.GetStatus>(_ => Sender.Tell(new PolicyAgentMessages.Status(_epoch, _seq, _view, _applies, _failed,
            _localApplied, _lastError)));
    }

    public static Props Props(string node, IPolicyDataplane dataplane, IActorRef source, PolicyAgentSettings settings) =>
        Akka.Actor.Props.Create(() => new PolicyAgentActor(node, dataplane, source, settings));

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record AskView : INoSerializationVerificationNeeded;
    private sealed record ApplyNow : INoSerializationVerificationNeeded;
    private sealed record ReadDrops : INoSerializationVerificationNeeded;
    private sealed record DropsFailed(string Why) : INoSerializationVerificationNeeded;
    private sealed record Applied(PolicyApplied Result, TimeSpan Took, ImmutableArray<string> Reasons, int Policies, int Pods,
        ImmutableArray<string> Local) : INoSerializationVerificationNeeded;
    private sealed record ApplyFailed(Exception Error, TimeSpan Took, ImmutableArray<string> Reasons, int Policies, int Pods, int Local)
        : INoSerializationVerificationNeeded;

    protected override void PreStart()
    {
        AskForView();
        Timers.StartPeriodicTimer("drops", new ReadDrops(), _settings.DropsInterval);
    }

    private void AskForView()
    {
        _source.Tell(new PolicyMessages.GetView(_node));
        Timers.StartSingleTimer("view", new AskView(), _settings.ViewRetry);
    }

    /// <summary>The parts of a view received so far (all of one epoch and change).</summary>
    private readonly List<PolicyMessages.View> _parts = [];

    private void OnView(PolicyMessages.View view)
    {
        if (view.Parts > 1)
        {
            if (_parts.Count > 0 && (_parts[0].Epoch != view.Epoch || _parts[0].Seq != view.Seq)) _parts.Clear();
            _parts.Add(view);
            if (_parts.Select(p => p.Part).Distinct().Count() < view.Parts) return;
            view = new PolicyMessages.View(view.Epoch, view.Seq, _parts.Aggregate(PolicyView.Empty, (whole, part) => whole with
            {
                Namespaces = whole.Namespaces.SetItems(part.Content.Namespaces),
                Pods = whole.Pods.SetItems(part.Content.Pods),
                Policies = whole.Policies.SetItems(part.Content.Policies),
            }));
            _parts.Clear();
        }
        if (view.Epoch == _epoch && view.Seq <= _seq) return; // an answer older than what the changes already brought
        Timers.Cancel("view");
        var first = _epoch is null;
        _log.Info("Policy: the whole view from the source (epoch {0}, change {1}): {2}{3}", view.Epoch, view.Seq, view.Content,
            first ? "" : $" (was epoch {_epoch}, change {_seq})");
        _epoch = view.Epoch;
        _seq = view.Seq;
        _view = view.Content;
        Changed(first ? $"first view: {view.Content}" : $"whole view again at change {view.Seq}: {view.Content}");
    }

    private void OnChanged(PolicyMessages.Changed changed)
    {
        if (_epoch is null) return; // the view asked for brings these
        if (changed.Epoch != _epoch || changed.Seq > _seq + 1)
        {
            Resync(changed.Epoch, changed.Seq);
            return;
        }
        if (changed.Seq <= _seq) return;
        _seq = changed.Seq;
        _view = _view.Apply(changed.Changes);
        foreach (var change in changed.Changes) Changed(Describe(change));
    }

    private void OnVersion(PolicyMessages.Version version)
    {
        if (_epoch is not null && (version.Epoch != _epoch || version.Seq > _seq)) Resync(version.Epoch, version.Seq);
    }

    private void Resync(string epoch, long seq)
    {
        if (Timers.IsTimerActive("view")) return;
        _log.Info("Policy: the source is at epoch {0}, change {1}, this node at epoch {2}, change {3}: asking for the whole view",
            epoch, seq, _epoch, _seq);
        AskForView();
    }

    private static string Describe(ViewChange change) => change switch
    {
        ViewChange.PodSet set => $"pod {set.Pod.Key} ({set.Pod.Pod.Address} on {set.Pod.Node}) set: {change.Cause}",
        ViewChange.PodRemoved removed => $"pod {removed.Key} removed: {change.Cause}",
        ViewChange.NamespaceSet set => $"namespace {set.Namespace.Name} set: {change.Cause}",
        ViewChange.NamespaceRemoved removed => $"namespace {removed.Name} removed: {change.Cause}",
        ViewChange.PolicySet set => $"policy {set.Policy.Key} set: {change.Cause}",
        ViewChange.PolicyRemoved removed => $"policy {removed.Key} removed: {change.Cause}",
        _ => change.Cause,
    };

    private void Changed(string reason)
    {
        _reasons.Add(reason);
        _dirty = true;
        ScheduleApply();
    }

    /// <summary>Starts an apply now, or arms the one timer for when the interval (or a failure's backoff) has passed.</summary>
    private void ScheduleApply()
    {
        if (_applying || Timers.IsTimerActive("apply") || !_dirty) return;
        var since = _lastStart is { } last ? _clock.Elapsed - last : TimeSpan.MaxValue;
        var wait = since >= _settings.ApplyInterval ? TimeSpan.Zero : _settings.ApplyInterval - since;
        if (wait <= TimeSpan.Zero) StartApply();
        else Timers.StartSingleTimer("apply", new ApplyNow(), wait);
    }

    private void StartApply()
    {
        if (_applying || !_dirty) return;
        _dirty = false;
        ImmutableArray<string> reasons = [.. _reasons];
        _reasons.Clear();
        var world = _view.World();
        var local = _view.LocalPods(_node);
        _applying = true;
        _lastStart = _clock.Elapsed;
        var started = Stopwatch.StartNew();
        var (policies, pods) = (world.Policies.Length, world.Pods.Length);
        ImmutableArray<string> localKeys = [.. local];
        _dataplane.ApplyAsync(world, local, CancellationToken.None).PipeTo(Self,
            success: result => new Applied(result, started.Elapsed, reasons, policies, pods, localKeys),
            failure: e => new ApplyFailed(e is AggregateException { InnerException: { } inner } ? inner : e, started.Elapsed, reasons,
                policies, pods, localKeys.Length));
    }

    private void OnApplied(Applied applied)
    {
        _applying = false;
        _failures = 0;
        _applies++;
        _lastError = null;
        _localApplied = applied.Local;
        var result = applied.Result;
        _log.Info("Policy applied in {0:0.0} ms ({1}): {2}; because {3}", applied.Took.TotalMilliseconds,
            $"compile {result.Compile.TotalMilliseconds:0.0} ms, kernel {result.Apply.TotalMilliseconds:0.0} ms, " +
            $"{(result.Whole ? "whole table" : "changed part")}, {result.Statements} statements",
            $"{applied.Policies} policies, {applied.Pods} pods, {applied.Local.Length} of them here", Reasons(applied.Reasons));
        Context.System.EventStream.Publish(new PolicyAgentMessages.ApplyDone(true, applied.Took, applied.Policies, applied.Pods,
            applied.Local.Length, result));
        ScheduleApply();
    }

    private void OnFailed(ApplyFailed failed)
    {
        _applying = false;
        _failures++;
        _failed++;
        _lastError = $"{failed.Error.GetType().Name}: {failed.Error.Message}";
        _reasons.InsertRange(0, failed.Reasons);
        _dirty = true;
        var wait = _settings.Backoff(_failures);
        _log.Warning("Policy apply failed after {0:0.0} ms (failure {1} in a row): {2}; trying again in {3} with what has " +
            "changed by then; it was for {4}", failed.Took.TotalMilliseconds, _failures, _lastError, $"{wait.TotalSeconds:0.###} s",
            Reasons(failed.Reasons));
        Context.System.EventStream.Publish(new PolicyAgentMessages.ApplyDone(false, failed.Took, failed.Policies, failed.Pods,
            failed.Local, null));
        Timers.StartSingleTimer("apply", new ApplyNow(), wait);
    }

    private static string Reasons(ImmutableArray<string> reasons) =>
        reasons.Length <= ReasonsShown
            ? string.Join("; ", reasons)
            : $"{string.Join("; ", reasons.Take(ReasonsShown))}; and {reasons.Length - ReasonsShown} more changes";
}
