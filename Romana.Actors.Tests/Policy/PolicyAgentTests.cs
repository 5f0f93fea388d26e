using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;

namespace Romana.Actors.Tests.Policy;

/// <summary>A dataplane that records each apply (when, the world, the local pods); it can fail a number of applies or be slow.</summary>
public sealed class RecordingPolicyDataplane : IPolicyDataplane
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _failures;

    public sealed record Call(TimeSpan At, PolicyWorld World, IReadOnlySet<string> Local);

    public ConcurrentQueue<Call> Calls { get; } = new();
    public TimeSpan Delay { get; set; }
    public int InFlight;
    public int MostInFlight;

    /// <summary>The next <paramref name="count"/> applies throw.</summary>
    public void FailNext(int count) => Interlocked.Exchange(ref _failures, count);

    public async Task<PolicyApplied> ApplyAsync(PolicyWorld world, IReadOnlySet<string> localPods, CancellationToken cancellation)
    {
        var inFlight = Interlocked.Increment(ref InFlight);
        MostInFlight = Math.Max(MostInFlight, inFlight);
        try
        {
            Calls.Enqueue(new Call(_clock.Elapsed, world, localPods));
            if (Delay > TimeSpan.Zero) await Task.Delay(Delay, cancellation);
            if (Interlocked.Decrement(ref _failures) >= 0) throw new IOException("nft: Could not process rule: No buffer space available");
            return new PolicyApplied(true, world.Policies.Length, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(2));
        }
        finally
        {
            Interlocked.Decrement(ref InFlight);
        }
    }

    public Task<IReadOnlyList<PolicyDrops>> DropsAsync(CancellationToken cancellation) =>
        Task.FromResult<IReadOnlyList<PolicyDrops>>([new PolicyDrops("lab/a", PolicyDirections.Ingress, 3, 180)]);

    public Task RemoveAsync(CancellationToken cancellation) => Task.CompletedTask;
}

public sealed class PolicyAgentTests : TestKit
{
    private static readonly PolicyAgentSettings Settings = new(TimeSpan.FromMilliseconds(400), TimeSpan.FromMilliseconds(150),
        TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(300));

    private readonly RecordingPolicyDataplane _dataplane = new();

    public static ViewPod Pod(string key, string ip, string node, params (string Key, string Value)[] labels)
    {
        var (ns, name) = (key[..key.IndexOf('/')], key[(key.IndexOf('/') + 1)..]);
        return new ViewPod(new PolicyPod(ns, name, labels.ToImmutableSortedDictionary(l => l.Key, l => l.Value, StringComparer.Ordinal),
            Ipv4.Parse(ip), null, []), node);
    }

    public static NetworkPolicy DenyAll(string ns, string name = "deny") =>
        new(ns, name, LabelSelector.Everything, PolicyDirections.Ingress, [], []);

    private static PolicyView ViewOf(params ViewPod[] pods) =>
        PolicyView.Empty.Apply(pods.Select(p => (ViewChange)new ViewChange.PodSet(p, "test")));

    private (IActorRef Agent, Akka.TestKit.TestProbe Source) Start(string node = "n1", PolicyAgentSettings? settings = null)
    {
        var source = CreateTestProbe();
        var agent = Sys.ActorOf(PolicyAgentActor.Props(node, _dataplane, source.Ref, settings ?? Settings));
        source.ExpectMsg<PolicyMessages.GetView>(m => Assert.Equal(node, m.Node));
        return (agent, source);
    }

    private PolicyAgentMessages.Status Status(IActorRef agent) =>
        agent.Ask<PolicyAgentMessages.Status>(new PolicyAgentMessages.GetStatus(), TimeSpan.FromSeconds(5)).Result;

    [Fact]
    public void The_world_holds_every_pod_and_the_local_set_only_this_nodes_pods()
    {
        var (agent, _) = Start("n1");
        agent.Tell(new PolicyMessages.View("e1", 1, ViewOf(Pod("lab/a", "100.64.0.2", "n1"), Pod("lab/b", "100.64.0.66", "n2"),
            Pod("lab/c", "100.64.0.3", "n1")).Apply(new ViewChange.PolicySet(DenyAll("lab"), "test"))));
        AwaitCondition(() => _dataplane.Calls.Count == 1, TimeSpan.FromSeconds(5));
        var call = _dataplane.Calls.Single();
        Assert.Equal(["lab/a", "lab/b", "lab/c"], call.World.Pods.Select(p => p.Key).Order());
        Assert.Equal(["lab/a", "lab/c"], call.Local.Order());
        Assert.Equal("lab/deny", Assert.Single(call.World.Policies).Key);
        AwaitCondition(() => Status(agent).Applies == 1, TimeSpan.FromSeconds(5));
        Assert.Equal(["lab/a", "lab/c"], Status(agent).LocalPods.ToArray());

        // A pod that moves here becomes local at the next apply.
        agent.Tell(new PolicyMessages.Changed("e1", 2, [new ViewChange.PodSet(Pod("lab/b", "100.64.0.4", "n1"), "rescheduled")]));
        AwaitCondition(() => _dataplane.Calls.Count == 2, TimeSpan.FromSeconds(5));
        Assert.Equal(["lab/a", "lab/b", "lab/c"], _dataplane.Calls.Last().Local.Order());
    }

    [Fact]
    public void A_burst_of_changes_is_one_apply_per_interval_and_never_two_at_once()
    {
        _dataplane.Delay = TimeSpan.FromMilliseconds(50);
        var (agent, _) = Start();
        agent.Tell(new PolicyMessages.View("e1", 0, PolicyView.Empty));
        AwaitCondition(() => _dataplane.Calls.Count == 1, TimeSpan.FromSeconds(5));
        // 30 changes over about 300 ms: within one interval (400 ms) of the first apply, so one more apply holds them all.
        for (var i = 1; i <= 30; i++)
        {
            agent.Tell(new PolicyMessages.Changed("e1", i, [new ViewChange.PodSet(Pod($"lab/p{i}", $"100.64.0.{i}", "n1"), "burst")]));
            Thread.Sleep(10);
        }
        AwaitCondition(() => _dataplane.Calls.Count >= 2, TimeSpan.FromSeconds(5));
        Thread.Sleep(1200); // two intervals more: nothing else is pending, so no further apply may come
        var calls = _dataplane.Calls.ToArray();
        Assert.True(calls.Length <= 3, $"{calls.Length} applies for one burst");
        Assert.Equal(30, calls[^1].World.Pods.Length);
        Assert.Equal(30, calls[^1].Local.Count);
        for (var i = 1; i < calls.Length; i++)
            Assert.True(calls[i].At - calls[i - 1].At >= Settings.ApplyInterval - TimeSpan.FromMilliseconds(20),
                $"applies {i - 1} and {i} were {(calls[i].At - calls[i - 1].At).TotalMilliseconds} ms apart");
        Assert.Equal(1, _dataplane.MostInFlight);
        Assert.Equal(30, Status(agent).Seq);
    }

    [Fact]
    public void A_failed_apply_is_tried_again_with_backoff_and_with_what_changed_meanwhile()
    {
        _dataplane.FailNext(2);
        var (agent, _) = Start();
        agent.Tell(new PolicyMessages.View("e1", 1, ViewOf(Pod("lab/a", "100.64.0.2", "n1"))));
        AwaitCondition(() => !_dataplane.Calls.IsEmpty, TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(10));
        agent.Tell(new PolicyMessages.Changed("e1", 2, [new ViewChange.PolicySet(DenyAll("lab"), "added")]));
        AwaitCondition(() => Status(agent).Applies == 1, TimeSpan.FromSeconds(10));
        var calls = _dataplane.Calls.ToArray();
        Assert.Equal(3, calls.Length);
        // Backoff: 150 ms after the first failure, 300 ms after the second (doubled).
        Assert.True(calls[1].At - calls[0].At >= TimeSpan.FromMilliseconds(140), $"{(calls[1].At - calls[0].At).TotalMilliseconds} ms");
        Assert.True(calls[2].At - calls[1].At >= TimeSpan.FromMilliseconds(290), $"{(calls[2].At - calls[1].At).TotalMilliseconds} ms");
        Assert.Equal("lab/deny", Assert.Single(calls[2].World.Policies).Key);
        var status = Status(agent);
        Assert.Equal(2, status.Failures);
        Assert.Null(status.LastError);
        Thread.Sleep(800);
        Assert.Equal(3, _dataplane.Calls.Count); // applied: no more retries
    }

    [Fact]
    public void A_gap_or_another_epoch_asks_the_source_for_the_whole_view()
    {
        var (agent, source) = Start();
        agent.Tell(new PolicyMessages.View("e1", 5, ViewOf(Pod("lab/a", "100.64.0.2", "n1"))));
        agent.Tell(new PolicyMessages.Changed("e1", 6, [new ViewChange.PodRemoved("lab/a", "deleted")]));
        AwaitCondition(() => Status(agent).Seq == 6, TimeSpan.FromSeconds(5));
        Assert.Empty(Status(agent).View.Pods);
        source.ExpectNoMsg(TimeSpan.FromMilliseconds(100));

        agent.Tell(new PolicyMessages.Changed("e1", 8, [new ViewChange.PodSet(Pod("lab/b", "100.64.0.3", "n1"), "added")]));
        source.ExpectMsg<PolicyMessages.GetView>();
        Assert.Equal(6, Status(agent).Seq); // change 8 is not applied over the gap
        agent.Tell(new PolicyMessages.View("e1", 8, ViewOf(Pod("lab/b", "100.64.0.3", "n1"))));
        AwaitCondition(() => Status(agent).Seq == 8, TimeSpan.FromSeconds(5));

        agent.Tell(new PolicyMessages.Version("e2", 1)); // the source moved (a new singleton)
        source.ExpectMsg<PolicyMessages.GetView>();
        agent.Tell(new PolicyMessages.Version("e1", 8)); // while the answer is pending, no second question
        source.ExpectNoMsg(TimeSpan.FromMilliseconds(150));
        source.ExpectMsg<PolicyMessages.GetView>(TimeSpan.FromSeconds(2)); // unanswered: asked again after ViewRetry
    }

    [Fact]
    public void A_view_sent_in_parts_is_applied_once_whole()
    {
        var (agent, _) = Start();
        var view = ViewOf([.. Enumerable.Range(0, 250).Select(i => Pod($"lab/p{i}", $"100.64.{i / 200}.{i % 200 + 2}", $"n{i % 2 + 1}"))])
            .Apply(new ViewChange.PolicySet(DenyAll("lab"), "test"));
        var parts = PolicyMessages.Split("e1", 3, view);
        Assert.Equal(3, parts.Count);
        Assert.All(parts, p => Assert.True(p.Content.Pods.Count + p.Content.Namespaces.Count + p.Content.Policies.Count <= 100));
        foreach (var part in parts.Reverse()) agent.Tell(part);
        AwaitCondition(() => Status(agent).Applies == 1, TimeSpan.FromSeconds(5));
        Thread.Sleep(200);
        var call = Assert.Single(_dataplane.Calls);
        Assert.Equal(250, call.World.Pods.Length);
        Assert.Equal(125, call.Local.Count);
        Assert.Single(call.World.Policies);
    }

    [Fact]
    public void Drops_are_read_now_and_then_and_published_for_the_metrics()
    {
        var probe = CreateTestProbe();
        Sys.EventStream.Subscribe(probe.Ref, typeof(PolicyAgentMessages.DropsRead));
        Start();
        var read = probe.ExpectMsg<PolicyAgentMessages.DropsRead>(TimeSpan.FromSeconds(3));
        Assert.Equal(new PolicyDrops("lab/a", PolicyDirections.Ingress, 3, 180), Assert.Single(read.Drops));
    }
}
