using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;
using Akka.Hosting;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Kubernetes;
using Romana.Actors.Policy;
using Romana.Actors.Topology;
using Romana.Host.Kubernetes;
using Romana.Host.Observability;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Policy;

/// <summary>Where a node's policy agent gets the cluster's namespaces, pods and NetworkPolicies.</summary>
public enum PolicySourceKind
{
    /// <summary>The API server, through the policy view (a cluster singleton).</summary>
    Kubernetes,
    /// <summary>The files of <c>romana.policy.files</c>, pods' addresses from the IPAM.</summary>
    Files,
    /// <summary>No source: the agent does not run.</summary>
    None,
}

/// <summary><c>romana.policy</c>: NetworkPolicy enforcement on this node.</summary>
public sealed record PolicySettings(bool Enabled, PolicySourceKind Source, string Files, TimeSpan FilesInterval, PolicyAgentSettings Agent,
    TimeSpan VersionInterval, TimeSpan BatchInterval)
{
    private const string Section = "romana.policy";

    public bool Runs => Enabled && Source != PolicySourceKind.None;

    public static PolicySettings From(Config config)
    {
        var source = ConfigValues.Text(config, $"{Section}.source").ToLowerInvariant() switch
        {
            "kubernetes" => PolicySourceKind.Kubernetes,
            "files" => PolicySourceKind.Files,
            "none" => PolicySourceKind.None,
            var other => throw ConfigValues.Error(config, $"{Section}.source", $"{Quoting.Quote(other)} is not kubernetes, files or none"),
        };
        var files = ConfigValues.Text(config, $"{Section}.files");
        var enabled = config.GetBoolean($"{Section}.enabled", false);
        if (enabled && source == PolicySourceKind.Files && files.Length == 0)
            throw ConfigValues.Error(config, $"{Section}.files", "empty with source = files (name the folder of the policy files)");
        var agent = new PolicyAgentSettings(Positive(config, "apply-interval"), Positive(config, "retry.min"),
            Positive(config, "retry.max"), Positive(config, "drops-interval"), Positive(config, "view-retry"));
        if (agent.RetryMax < agent.RetryMin)
            throw ConfigValues.Error(config, $"{Section}.retry.max", $"{agent.RetryMax} is less than retry.min {agent.RetryMin}");
        return new PolicySettings(enabled, source, files, Positive(config, "files-interval"), agent, Positive(config, "version-interval"),
            Positive(config, "batch-interval"));
    }

    private static TimeSpan Positive(Config config, string setting)
    {
        var value = ConfigValues.Duration(config, $"{Section}.{setting}");
        return value > TimeSpan.Zero ? value : throw ConfigValues.Error(config, $"{Section}.{setting}", $"{value} must be positive");
    }
}

/// <summary>
/// NetworkPolicy on a daemon: this node's agent (<see cref="PolicyAgentActor"/>) on the node's <see cref="IPolicyDataplane"/>,
/// fed by the source <c>romana.policy.source</c> names. Kubernetes: the policy view is a cluster singleton (three watches for
/// the cluster, whatever its size) publishing its changes on a DistributedPubSub topic every agent subscribes to; files: a
/// files source on this node, reading the IPAM for pods' addresses. The agent's applies and drops feed the metrics.
/// </summary>
public static class PolicyHosting
{
    public const string ViewName = "kubernetes-policy-view";

    public static AkkaConfigurationBuilder AddRomanaPolicy(this AkkaConfigurationBuilder akka, PolicySettings settings, NodeName node,
        ClusterTopology topology, KubernetesSettings? kubernetes)
    {
        if (!settings.Runs) return akka;
        if (settings.Source == PolicySourceKind.Kubernetes)
        {
            if (kubernetes is not { Enabled: true })
                throw new ConfigurationError("romana.policy.source = kubernetes needs romana.kubernetes.enabled = on (and the cluster)");
            var client = new Lazy<k8s.IKubernetes>(kubernetes.CreateClient);
            akka.WithSingleton<KubernetesPolicyViewActor>(ViewName, (system, _, _) =>
            {
                var mediator = DistributedPubSub.Get(system).Mediator;
                var (watch, backoff) = (kubernetes.WatchTimeout, kubernetes.Backoff);
                return KubernetesPolicyViewActor.Props(message => mediator.Tell(new Publish(PolicyMessages.Topic, message)),
                [
                    (emit, token) => new Informer<KubePod>(new PodSource(client.Value, watch, null), backoff, emit).RunAsync(token),
                    (emit, token) => new Informer<KubeNamespace>(new NamespaceSource(client.Value, watch), backoff, emit).RunAsync(token),
                    (emit, token) =>
                        new Informer<KubeNetworkPolicy>(new NetworkPolicySource(client.Value, watch), backoff, emit).RunAsync(token),
                ], settings.VersionInterval, settings.BatchInterval);
            }, new ClusterSingletonOptions(), createProxyToo: true);
        }
        return akka.WithActors((system, registry, resolver) =>
        {
            var dataplane = resolver.GetService<IPolicyDataplane>()
                ?? throw new InvalidOperationException(
                    "romana.policy needs an IPolicyDataplane registered (the daemon registers nftables)");
            IActorRef source;
            if (settings.Source == PolicySourceKind.Kubernetes)
            {
                source = registry.Get<KubernetesPolicyViewActor>();
            }
            else
            {
                var ipam = resolver.GetService<IpamClient>();
                source = system.ActorOf(PolicyFilesActor.Props(settings.Files, ipam is null ? null : _ => IpamPodsAsync(ipam, topology),
                    settings.FilesInterval), "policy-files");
            }
            var agent = system.ActorOf(PolicyAgentActor.Props(node.Value, dataplane, source, settings.Agent), "policy-agent");
            if (settings.Source == PolicySourceKind.Kubernetes)
                DistributedPubSub.Get(system).Mediator.Tell(new Subscribe(PolicyMessages.Topic, agent));
            if (resolver.GetService<RomanaMetrics>() is { } metrics)
                system.ActorOf(Akka.Actor.Props.Create(() => new PolicyMetricsFeed(metrics)), "policy-metrics");
        });
    }

    /// <summary>
    /// Every address the IPAM holds for a pod (<c>ns/name</c>, as the CNI ADD recorded it from K8S_POD_NAMESPACE and
    /// K8S_POD_NAME), with its node and the node's address: each subnet's members, then each member's allocations.
    /// </summary>
    public static async Task<IReadOnlyList<IpamPod>> IpamPodsAsync(IpamClient ipam, ClusterTopology topology)
    {
        var pods = new List<IpamPod>();
        foreach (var subnet in topology.Subnets)
        {
            var answer = await ipam.AskAsync(new GetSubnet(subnet.Id));
            if (answer is not SubnetView view)
                throw new IOException($"the IPAM did not give subnet {subnet.Id}: {(answer is Failed f ? f.Error.Message : answer)}");
            foreach (var member in view.Subnet.Members)
            {
                var reply = await ipam.AskAsync(new GetAllocations(member.Node));
                if (reply is not AllocationsOf held)
                    throw new IOException(
                        $"the IPAM did not give node {member.Node}'s allocations: {(reply is Failed f ? f.Error.Message : reply)}");
                pods.AddRange(held.Allocations.Where(a => a.Pod is { Length: > 0 })
                    .Select(a => new IpamPod(a.Pod!, a.Address, member.Node.Value, member.Ip)));
            }
        }
        return pods;
    }
}

/// <summary>The agent's applies and drop counters as Prometheus figures (<see cref="RomanaMetrics"/>).</summary>
public sealed class PolicyMetricsFeed : ReceiveActor
{
    public PolicyMetricsFeed(RomanaMetrics metrics)
    {
        var dropped = new KernelCounterFeed();
        Receive<PolicyAgentMessages.ApplyDone>(done =>
        {
            metrics.PolicyApplies.WithLabels(done.Ok ? "ok" : "failed").Inc();
            if (!done.Ok) return;
            metrics.PolicyApplySeconds.Observe(done.Took.TotalSeconds);
            metrics.Policies.Set(done.Policies);
            metrics.PolicyPods.WithLabels("cluster").Set(done.Pods);
            metrics.PolicyPods.WithLabels("local").Set(done.LocalPods);
        });
        Receive<PolicyAgentMessages.DropsRead>(read =>
        {
            foreach (var drop in read.Drops)
            {
                var direction = drop.Direction.ToString().ToLowerInvariant();
                metrics.PolicyDroppedPackets.WithLabels(drop.Pod, direction)
                    .Inc(dropped.Increase((drop.Pod, direction, "packets"), drop.Packets));
                metrics.PolicyDroppedBytes.WithLabels(drop.Pod, direction)
                    .Inc(dropped.Increase((drop.Pod, direction, "bytes"), drop.Bytes));
            }
        });
    }

    protected override void PreStart()
    {
        Context.System.EventStream.Subscribe(Self, typeof(PolicyAgentMessages.ApplyDone));
        Context.System.EventStream.Subscribe(Self, typeof(PolicyAgentMessages.DropsRead));
    }
}

/// <summary>
/// How much kernel counters grew between two reads. A kernel counter starts again at 0 when its chain is made anew (a
/// table replaced whole, a pod's chain removed and added); a Prometheus counter never goes down. A value below the last
/// one read is therefore a restart, and all of it is new: setting the Prometheus counter to the kernel's value instead
/// would leave it stalled until the kernel passed the old figure.
/// </summary>
public sealed class KernelCounterFeed
{
    private readonly Dictionary<(string Pod, string Direction, string Unit), long> _last = new();

    public long Increase((string Pod, string Direction, string Unit) counter, long value)
    {
        var last = _last.GetValueOrDefault(counter);
        _last[counter] = value;
        return value >= last ? value - last : value;
    }
}
