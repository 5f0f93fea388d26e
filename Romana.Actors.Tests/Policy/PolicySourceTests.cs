using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using k8s.Models;
using Romana.Actors.Addressing;
using Romana.Actors.Kubernetes;
using Romana.Actors.Persistence;
using Romana.Actors.Policy;
using Romana.Actors.Tests.Support;
using Romana.Host.Kubernetes;
using Xunit.Abstractions;

namespace Romana.Actors.Tests.Policy;

/// <summary>
/// The Kubernetes policy source against the local API server: three watches for the whole cluster (a singleton), its changes
/// reaching a node agent's world; and what the API server sends per pod change for that design against one watch set per node.
/// </summary>
public sealed class KubernetesPolicySourceTests(ITestOutputHelper output) : TestKit, IAsyncLifetime
{
    private static readonly PolicyAgentSettings Agent = new(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100),
        TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
    private static readonly InformerSettings Backoff = new(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(400), 0.2);
    private const string PodsPath = "/api/v1/pods";

    private LocalKubeApiServer _server = null!;
    private readonly RecordingPolicyDataplane _dataplane = new();

    public async Task InitializeAsync() => _server = await LocalKubeApiServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public static V1Namespace Namespace(string name, params (string, string)[] labels) => new()
    {
        ApiVersion = "v1",
        Kind = "Namespace",
        Metadata = new V1ObjectMeta { Name = name, Uid = $"uid-{name}", Labels = labels.ToDictionary(l => l.Item1, l => l.Item2) },
    };

    public static V1Pod Pod(string ns, string name, string node, string ip, string hostIp, params (string, string)[] labels)
    {
        var pod = LocalKubeApiServer.Pod(ns, name, node, labels: labels.ToDictionary(l => l.Item1, l => l.Item2));
        pod.Spec.Containers[0].Ports = [new V1ContainerPort { Name = "http", ContainerPort = 8080 }];
        pod.Status = new V1PodStatus { PodIP = ip, HostIP = hostIp, Phase = "Running" };
        return pod;
    }

    public static V1NetworkPolicy AllowFrom(string ns, string name, string fromLabel, string value) => new()
    {
        ApiVersion = "networking.k8s.io/v1",
        Kind = "NetworkPolicy",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Uid = $"uid-{name}" },
        Spec = new V1NetworkPolicySpec
        {
            PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "db" } },
            Ingress = [new V1NetworkPolicyIngressRule
            {
                FromProperty = [new V1NetworkPolicyPeer
                {
                    NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { [fromLabel] = value } },
                }],
            }],
        },
    };

    private IReadOnlyList<Func<Action<object>, CancellationToken, Task>> Informers()
    {
        var client = _server.Client();
        var watch = TimeSpan.FromSeconds(60);
        return
        [
            (emit, token) => new Informer<KubePod>(new PodSource(client, watch, null), Backoff, emit).RunAsync(token),
            (emit, token) => new Informer<KubeNamespace>(new NamespaceSource(client, watch), Backoff, emit).RunAsync(token),
            (emit, token) => new Informer<KubeNetworkPolicy>(new NetworkPolicySource(client, watch), Backoff, emit).RunAsync(token),
        ];
    }

    private PolicyAgentMessages.Status Status(IActorRef agent) =>
        agent.Ask<PolicyAgentMessages.Status>(new PolicyAgentMessages.GetStatus(), TimeSpan.FromSeconds(5)).Result;

    private void Until(string what, Func<bool> done) =>
        AwaitCondition(done, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(50), what);

    [Fact]
    public void A_policy_a_namespace_label_and_a_pod_label_change_reach_the_agents_world()
    {
        _server.Put(Namespace("shop", ("team", "a")));
        _server.Put(Namespace("web"));
        _server.Put(Pod("shop", "db-0", "n1", "100.64.0.2", "10.0.1.11", ("app", "db")));
        _server.Put(Pod("web", "front-0", "n2", "100.64.0.66", "10.0.1.12", ("app", "front")));
        var agents = new List<IActorRef>();
        var view = Sys.ActorOf(KubernetesPolicyViewActor.Props(m => agents.ForEach(a => a.Tell(m)), Informers(),
            TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(50)));
        var agent = Sys.ActorOf(PolicyAgentActor.Props("n1", _dataplane, view, Agent));
        agents.Add(agent);
        Until("the pods and namespaces in the agent's view", () => Status(agent).View is { Pods.Count: 2, Namespaces.Count: 2 });

        var seen = Status(agent).View;
        var db = seen.Pods["shop/db-0"];
        Assert.Equal(("n1", Ipv4.Parse("100.64.0.2"), Ipv4.Parse("10.0.1.11")), (db.Node, db.Pod.Address, db.Pod.NodeAddress));
        Assert.Equal(new NamedPort("http", 8080, PolicyProtocol.Tcp), Assert.Single(db.Pod.NamedPorts));
        Assert.Equal("shop", seen.Namespaces["shop"].Labels[PolicyNamespace.NameLabel]); // as the API server adds it
        Until("an apply with n1's pod local", () => _dataplane.Calls.LastOrDefault()?.Local.SetEquals(["shop/db-0"]) == true);

        // A policy: shop's db pods take traffic from namespaces labelled env=prod only.
        _server.Put(AllowFrom("shop", "db-from-prod", "env", "prod"));
        Until("the policy", () => Status(agent).View.Policies.ContainsKey("shop/db-from-prod"));
        var front = new PolicyProbe(Ipv4.Parse("100.64.0.66"), Ipv4.Parse("100.64.0.2"), 5432, PolicyProtocol.Tcp);
        Until("an apply with the policy", () => _dataplane.Calls.LastOrDefault()?.World.Policies.Length == 1);
        Assert.False(PolicyEvaluator.Allows(_dataplane.Calls.Last().World, front));

        // The web namespace gains env=prod: front may reach db.
        _server.Put(Namespace("web", ("env", "prod")));
        Until("the namespace label", () => Status(agent).View.Namespaces["web"].Labels.GetValueOrDefault("env") == "prod");
        Until("an apply that allows front to db", () => PolicyEvaluator.Allows(_dataplane.Calls.Last().World, front));

        // db's label changes: the policy no longer selects it, and a pod of another namespace may reach it as before.
        var changed = Pod("shop", "db-0", "n1", "100.64.0.2", "10.0.1.11", ("app", "cache"));
        changed.Metadata.Uid = _server.Get<V1Pod>("shop/db-0").Metadata.Uid;
        _server.Put(changed);
        Until("the pod label", () => Status(agent).View.Pods["shop/db-0"].Pod.Labels["app"] == "cache");
        _server.Put(Namespace("web"));
        Until("an apply with web unlabelled", () => _dataplane.Calls.Last().World.Namespaces["web"].Labels.Count == 1);
        Assert.True(PolicyEvaluator.Allows(_dataplane.Calls.Last().World, front));

        // Deleted: the policy leaves the view; a finished pod leaves it too.
        _server.Delete(_server.Get<V1NetworkPolicy>("shop/db-from-prod"));
        var done = Pod("web", "front-0", "n2", "100.64.0.66", "10.0.1.12", ("app", "front"));
        done.Metadata.Uid = _server.Get<V1Pod>("web/front-0").Metadata.Uid;
        done.Status.Phase = "Succeeded";
        _server.Put(done);
        Until("the delete and the finished pod", () => Status(agent).View is { Policies.Count: 0, Pods.Count: 1 });
        Assert.Equal(3, _server.OpenWatches); // one Pod, one Namespace and one NetworkPolicy watch for the cluster
    }

    [Fact]
    public void A_burst_of_pod_changes_is_batched_and_a_change_policy_does_not_read_is_no_message()
    {
        _server.Put(Namespace("shop"));
        for (var i = 0; i < 10; i++) _server.Put(Pod("shop", $"p{i}", "n1", $"100.64.1.{i + 2}", "10.0.1.11", ("app", "x")));
        var published = new System.Collections.Concurrent.ConcurrentQueue<PolicyMessages.Changed>();
        var view = Sys.ActorOf(KubernetesPolicyViewActor.Props(m =>
        {
            if (m is PolicyMessages.Changed changed) published.Enqueue(changed);
        }, Informers(), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(300)));
        PolicyView Seen() => view.Ask<PolicyMessages.View>(new PolicyMessages.GetView("test"), TimeSpan.FromSeconds(5)).Result.Content;
        Until("the listed pods", () => Seen().Pods.Count == 10);
        // The list's own batch may still be on its way out: wait until nothing is published for two batch intervals.
        Until("the list's batches out", () =>
        {
            var count = published.Count;
            Thread.Sleep(600);
            return published.Count == count;
        });
        published.Clear();

        for (var i = 0; i < 10; i++)
        {
            var pod = Pod("shop", $"p{i}", "n1", $"100.64.1.{i + 2}", "10.0.1.11", ("app", "y"));
            pod.Metadata.Uid = _server.Get<V1Pod>($"shop/p{i}").Metadata.Uid;
            _server.Put(pod);
        }
        Until("the ten changes", () => published.Sum(c => c.Changes.Length) == 10);
        Assert.True(published.Count <= 3, $"{published.Count} messages for 10 changes within 300 ms batches");

        // A status condition changes: nothing policy reads, so no message.
        var before = published.Count;
        var ready = Pod("shop", "p0", "n1", "100.64.1.2", "10.0.1.11", ("app", "y"));
        ready.Metadata.Uid = _server.Get<V1Pod>("shop/p0").Metadata.Uid;
        ready.Status.Conditions = [new V1PodCondition { Type = "Ready", Status = "True" }];
        _server.Put(ready);
        Thread.Sleep(1000);
        Assert.Equal(before, published.Count);
    }

    /// <summary>
    /// What one pod change costs the API server: with the view as a singleton, one event on one watch; with every node
    /// watching for itself, one event per node. Measured with 20 per-node watch sets, the figures the
    /// README gives for 5,000 nodes scale these (each node's watch set sends the same bytes).
    /// </summary>
    [Fact]
    public async Task One_pod_change_is_one_event_for_the_singleton_and_one_per_node_when_every_node_watches()
    {
        const int nodes = 20;
        const int changes = 10;
        _server.Put(Namespace("shop"));
        for (var i = 0; i < 50; i++)
            _server.Put(Pod("shop", $"p{i}", $"n{i % 8}", $"100.64.1.{i + 2}", $"10.0.1.{11 + i % 8}", ("app", "x")));
        var stop = new CancellationTokenSource();
        // The singleton design: one Pod watch for the cluster.
        var single = Informers()[0](_ => { }, stop.Token);
        Until("the singleton's watch", () => _server.OpenWatches == 1);
        var (events0, bytes0) = _server.Sent(PodsPath);
        for (var i = 0; i < changes; i++)
            _server.Put(Pod("shop", $"p{i}", $"n{i % 8}", $"100.64.1.{i + 2}", "10.0.1.11", ("app", $"y{i}")));
        Until("the singleton's events", () => _server.Sent(PodsPath).Events - events0 == changes);
        var singleBytes = (_server.Sent(PodsPath).Bytes - bytes0) / (double)changes;

        // Every node watching for itself: nodes more Pod watches of the whole cluster.
        var perNode = Enumerable.Range(0, nodes).Select(_ => Informers()[0](_ => { }, stop.Token)).ToList();
        Until("the per-node watches", () => _server.OpenWatches == 1 + nodes);
        var (events1, bytes1) = _server.Sent(PodsPath);
        for (var i = 0; i < changes; i++)
            _server.Put(Pod("shop", $"p{i}", $"n{i % 8}", $"100.64.1.{i + 2}", "10.0.1.11", ("app", $"z{i}")));
        Until("every watch's events", () => _server.Sent(PodsPath).Events - events1 == changes * (1 + nodes));
        var allBytes = (_server.Sent(PodsPath).Bytes - bytes1) / (double)changes;
        stop.Cancel();
        await Task.WhenAll([single, .. perNode]).WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });

        Assert.Equal(singleBytes * (1 + nodes), allBytes, 0.5);
        var changed = new PolicyMessages.Changed("0123456789ab", 42, [new ViewChange.PodSet(PolicyAgentTests.Pod("shop/p1",
            "100.64.1.3", "n1", ("app", "y1")), "watch MODIFIED at resourceVersion 1234")]);
        var serializer = new RomanaSerializer((ExtendedActorSystem)Sys);
        var clusterBytes = serializer.ToBinary(changed).Length;
        output.WriteLine($"one pod change: {singleBytes:0} bytes on 1 watch (singleton); {allBytes / (1 + nodes):0} bytes on each of " +
            $"{1 + nodes} watches; at 5,000 nodes: {singleBytes:0} bytes from the API server and 5,000 cluster messages of " +
            $"{clusterBytes} bytes (singleton), or {singleBytes * 5000 / 1e6:0.00} MB in 5,000 events (a watch set per node)");
    }

    [Fact]
    public void The_view_and_its_changes_cross_the_cluster_through_Romanas_serializer_unchanged()
    {
        var serializer = new RomanaSerializer((ExtendedActorSystem)Sys);
        var policy = NetworkPolicyJson.Parse("""
            {"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
             "policyTypes": ["Ingress", "Egress"],
             "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "In", "values": ["y"]}]},
                                    "podSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}],
                          "ports": [{"port": "serve-80-tcp"}, {"protocol": "UDP", "port": 1000, "endPort": 2000}]}],
             "egress": [{}]}}
            """);
        var pod = new ViewPod(new PolicyPod("x", "a", ImmutableSortedDictionary<string, string>.Empty.Add("pod", "a"),
            Ipv4.Parse("100.64.0.2"), Ipv4.Parse("10.0.1.11"), [new NamedPort("serve-80-tcp", 80, PolicyProtocol.Tcp)]), "n1");
        ViewChange[] changes = [new ViewChange.PodSet(pod, "c"), new ViewChange.PolicySet(policy, "c"),
            new ViewChange.PodRemoved("x/b", "c"),
            new ViewChange.NamespaceSet(new PolicyNamespace("x", ImmutableSortedDictionary<string, string>.Empty.Add("ns", "x")), "c")];
        var message = new PolicyMessages.Changed("e", 7, [.. changes]);
        var back = (PolicyMessages.Changed)serializer.FromBinary(serializer.ToBinary(message), serializer.Manifest(message));
        Assert.Equal(("e", 7L, 4), (back.Epoch, back.Seq, back.Changes.Length));
        var view = PolicyView.Empty.Apply(message.Changes);
        var viewBack = PolicyView.Empty.Apply(back.Changes);
        Assert.Empty(PolicyFiles.Diff(view, viewBack, "roundtrip"));
        Assert.Equal("x/b", Assert.IsType<ViewChange.PodRemoved>(back.Changes[2]).Key);
        var whole = new PolicyMessages.View("e", 7, view);
        var wholeBack = (PolicyMessages.View)serializer.FromBinary(serializer.ToBinary(whole), serializer.Manifest(whole));
        Assert.Empty(PolicyFiles.Diff(view, wholeBack.Content, "roundtrip"));
    }
}
