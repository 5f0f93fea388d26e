using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Discovery;
using k8s.Models;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Composition;
using Romana.Host.Kubernetes;
using ClusterSettings = Romana.Host.Composition.ClusterSettings;

namespace Romana.Actors.Tests.Membership;

/// <summary>
/// Cluster bootstrap through Kubernetes (romana.cluster.discovery = kubernetes): members composed with AddRomanaCluster as
/// the daemon composes them find each other through a local API server over HTTPS (the daemon pods by label selector,
/// each naming its own management port on 127.0.0.1) and form one cluster; with no pods, or no right to list them, none
/// forms and the log says why.
/// </summary>
[Collection(ClusterCollection.Name)]
public class KubernetesBootstrapTests
{
    private const string Namespace = "kube-system";
    private static readonly Dictionary<string, string> DaemonLabels = new() { ["app.kubernetes.io/name"] = "romana" };

    private static readonly Config Checked = ConfigurationFactory.ParseString(CollectingLogger.Hocon)
        .WithFallback(ConfigurationFactory.ParseString("akka.actor.serialize-messages = on\nakka.loglevel = INFO"))
        .WithFallback(ConfigurationFactory.ParseString(InProcessOnlySerializer.Hocon));

    private static ClusterSettings Bootstrapping(PodListApiServer api, int managementPort) => ClusterSettings.Default with
    {
        Enabled = true,
        Port = 0,
        Discovery = ClusterDiscovery.Kubernetes,
        Bootstrap = ClusterSettings.Default.Bootstrap with
        {
            PodNamespace = Namespace,
            ManagementPort = managementPort,
            ApiServer = api.Url,
            ApiTokenPath = api.TokenPath,
            ApiCaPath = api.CaPath,
        },
    };

    /// <summary>An actor system composed with AddRomanaCluster only, as the daemon composes it.</summary>
    private static Task<RomanaHost> MemberAsync(ClusterSettings settings, string subnet) =>
        RomanaHost.StartAsync(Checked,
            akka => akka.AddRomanaCluster(settings, [ClusterHosting.NodeRole, ClusterHosting.SubnetRole(new SubnetId(subnet))]),
            name: ClusterSettings.SystemName);

    private static Address Self(RomanaHost member) => Cluster.Get(member.System).SelfAddress;

    private static IEnumerable<Address> Up(RomanaHost member) =>
        Cluster.Get(member.System).State.Members.Where(m => m.Status == MemberStatus.Up).Select(m => m.Address);

    /// <summary>All members see <paramref name="count"/> members Up within the bound; else the failure shows their logs.</summary>
    private static async Task AwaitUpAsync(TimeSpan within, int count, RomanaHost[] members)
    {
        try
        {
            await ClusterMembershipTests.AwaitUpAsync(within, count, [.. members.Select(m => m.System)]);
        }
        catch (TimeoutException e)
        {
            var logs = members.Select((m, i) => $"member {i} ({Self(m)}):\n  " + string.Join("\n  ", CollectingLogger.Lines(m.System)));
            throw new TimeoutException($"{e.Message}\n{string.Join("\n", logs)}");
        }
    }

    [Fact]
    public void Settings_default_to_seed_nodes_and_errors_name_the_setting_and_the_value()
    {
        var defaults = ClusterSettings.Default;
        Assert.Equal(ClusterDiscovery.SeedNodes, defaults.Discovery);
        Assert.Equal(("app.kubernetes.io/name=romana", 8558, "management", 2, TimeSpan.FromSeconds(5)),
            (defaults.Bootstrap.PodLabelSelector, defaults.Bootstrap.ManagementPort, defaults.Bootstrap.ManagementPortName,
                defaults.Bootstrap.RequiredContactPoints, defaults.Bootstrap.StableMargin));

        static string ErrorOf(string hocon) => Assert.Throws<ConfigurationError>(() =>
            ClusterSettings.From(ConfigurationFactory.ParseString($"romana.cluster {{ enabled = on, {hocon} }}"))).Message;
        Assert.Equal("romana.cluster.discovery: 'dns' is neither seed-nodes nor kubernetes", ErrorOf("discovery = dns"));
        Assert.Equal("romana.cluster.bootstrap.management-port: 0 is not a TCP port (1 to 65535; the pod spec names it, so it " +
            "cannot be chosen at random)", ErrorOf("discovery = kubernetes, bootstrap.management-port = 0"));
        Assert.Equal("romana.cluster.bootstrap.required-contact-points: 0 must be at least 1",
            ErrorOf("discovery = kubernetes, bootstrap.required-contact-points = 0"));
        Assert.Equal("romana.cluster.bootstrap.api-server: 'kube:443' is not an http(s) URL",
            ErrorOf("discovery = kubernetes, bootstrap.api-server = \"kube:443\""));
        Assert.Equal("romana.cluster.bootstrap.pod-namespace: empty with api-server set; name the daemon pods' namespace",
            ErrorOf("discovery = kubernetes, bootstrap.api-server = \"https://127.0.0.1:6443\""));
        Assert.Equal("romana.cluster.bootstrap.api-ca-path: '/nonexistent/ca.crt': no such file", ErrorOf(
            "discovery = kubernetes, bootstrap { api-server = \"https://127.0.0.1:6443\", pod-namespace = x, " +
            "api-ca-path = /nonexistent/ca.crt }"));
        Assert.Equal("romana.cluster.bootstrap.pod-label-selector: empty; name the daemon pods' labels, e.g. " +
            "app.kubernetes.io/name=romana", ErrorOf("discovery = kubernetes, bootstrap.pod-label-selector = \"\""));
        // Not in a pod (this test process has no service account) and no api-server: refused before anything starts.
        if (!k8s.KubernetesClientConfiguration.IsInCluster())
            Assert.StartsWith("romana.cluster.discovery: kubernetes, but this process runs in no Kubernetes pod",
                ErrorOf("discovery = kubernetes"));
    }

    [SkippableFact]
    public async Task A_daemon_with_kubernetes_discovery_outside_a_pod_and_no_api_server_is_refused_with_one_line_and_exit_2()
    {
        Skip.If(k8s.KubernetesClientConfiguration.IsInCluster(), "this test process runs in a Kubernetes pod");
        using var folder = new TempFolder();
        var config = folder.Write("member.conf", $$"""
            romana {
              topology { pod-cidr = "100.64.0.0/16", block-prefix-length = 26, zones = [{ name = "z", subnets = [{ id = "s1" }] }] }
              node { name = "n1", subnet = "s1", ip = "127.0.0.1", instance-id = "i-1", eni = "eni-1" }
              cluster { enabled = on, port = 0, discovery = kubernetes }
              persistence { journal = postgresql, postgresql.connection-string = "Host=127.0.0.1;Port=1" }
              cni.socket = "{{folder.Path}}/cni.sock"
            }
            """);
        var (exit, output, error) = await Processes.RunAsync("dotnet", [DaemonProcess.RomanaDll, "daemon", "--config", config]);
        Assert.Equal(2, exit);
        Assert.Equal("", output);
        Assert.Equal($"romana: {config}: romana.cluster.discovery: kubernetes, but this process runs in no Kubernetes pod " +
            "(KUBERNETES_SERVICE_HOST or _PORT unset, or no service account token and CA); set romana.cluster.bootstrap.api-server, " +
            "api-token-path and api-ca-path", error.Trim());
        Assert.False(File.Exists(Path.Combine(folder.Path, "cni.sock")), "the refused daemon bound its socket");
    }

    [Fact]
    public async Task Discovery_lists_the_daemon_pods_by_label_selector_over_https_with_the_token_and_keeps_running_pods_only()
    {
        await using var api = await PodListApiServer.StartAsync();
        var deleting = PodListApiServer.DaemonPod("romana-del", Namespace, DaemonLabels, 9003);
        deleting.Metadata.DeletionTimestamp = DateTime.UtcNow;
        var noPort = PodListApiServer.DaemonPod("romana-noport", Namespace, DaemonLabels, 9004);
        noPort.Spec.Containers[0].Ports = [new V1ContainerPort { Name = "remoting", ContainerPort = 4053 }];
        api.SetPods(
            PodListApiServer.DaemonPod("romana-a", Namespace, DaemonLabels, 9001),
            PodListApiServer.DaemonPod("romana-b", Namespace, DaemonLabels, 9002),
            PodListApiServer.DaemonPod("romana-pending", Namespace, DaemonLabels, 9005, phase: "Pending"),
            deleting, noPort,
            PodListApiServer.DaemonPod("other-app", Namespace, new Dictionary<string, string> { ["app.kubernetes.io/name"] = "dns" }, 9006),
            PodListApiServer.DaemonPod("romana-elsewhere", "default", DaemonLabels, 9007));
        using var system = ActorSystem.Create("discovery", Checked);
        var settings = Bootstrapping(api, 9000).Bootstrap;
        var discovery = new KubernetesPodDiscovery((ExtendedActorSystem)system, ConfigurationFactory.ParseString($$"""
            pod-label-selector = "{{settings.PodLabelSelector}}", pod-namespace = {{Namespace}}
            api-server = "{{api.Url}}", api-token-path = "{{api.TokenPath}}", api-ca-path = "{{api.CaPath}}"
            """));

        var resolved = await discovery.Lookup(new Lookup("romana", "management", "tcp"), TimeSpan.FromSeconds(5));
        Assert.Equal(["127.0.0.1:9001", "127.0.0.1:9002"], resolved.Addresses.Select(t => $"{t.Host}:{t.Port}").Order().ToArray());
        var request = Assert.Single(api.Requests);
        Assert.Equal(new PodListApiServer.Request($"/api/v1/namespaces/{Namespace}/pods", "app.kubernetes.io/name=romana", true), request);

        // 403, as for a service account without RBAC to list pods: a failure whose one line names the cause.
        api.Forbid = true;
        var refused = await Assert.ThrowsAsync<KubernetesDiscoveryException>(() =>
            discovery.Lookup(new Lookup("romana", "management", "tcp"), TimeSpan.FromSeconds(5)));
        Assert.Equal($"the API server {api.Url} refused to list pods in namespace {Namespace} (403 Forbidden): the daemon's " +
            "service account needs get and list on pods there", refused.Message);
        Assert.DoesNotContain('\n', refused.ToString());

        // A client that does not trust the server's certificate (no CA given) cannot list anything.
        var untrusting = new KubernetesPodDiscovery((ExtendedActorSystem)system, ConfigurationFactory.ParseString($$"""
            pod-label-selector = "{{settings.PodLabelSelector}}", pod-namespace = {{Namespace}}
            api-server = "{{api.Url}}", api-token-path = "{{api.TokenPath}}", api-ca-path = ""
            """));
        api.Forbid = false;
        var before = api.Requests.Count;
        var untrusted = await Assert.ThrowsAsync<KubernetesDiscoveryException>(() =>
            untrusting.Lookup(new Lookup("romana", "management", "tcp"), TimeSpan.FromSeconds(5)));
        Assert.StartsWith($"cannot list pods in namespace {Namespace} from the API server {api.Url}: ", untrusted.Message);
        Assert.Equal(before, api.Requests.Count);
        await system.Terminate();
    }

    [Fact]
    public async Task Three_members_started_at_once_form_one_cluster_through_the_api_servers_pods()
    {
        await using var api = await PodListApiServer.StartAsync();
        int[] ports = [ClusterMembershipTests.FreePort(), ClusterMembershipTests.FreePort(), ClusterMembershipTests.FreePort()];
        Assert.Equal(3, ports.Distinct().Count());
        // Besides the three daemons: a pod of another app in the namespace and a daemon pod in another namespace, both naming
        // a management port where nothing listens. Bootstrap confirms every contact point before a cluster is formed, so one
        // of these among the contact points would keep the cluster from forming.
        api.SetPods([
            .. ports.Select((port, i) => PodListApiServer.DaemonPod($"romana-{i}", Namespace, DaemonLabels, port)),
            PodListApiServer.DaemonPod("other-app", Namespace, new Dictionary<string, string> { ["app.kubernetes.io/name"] = "dns" },
                ClusterMembershipTests.FreePort()),
            PodListApiServer.DaemonPod("romana-elsewhere", "default", DaemonLabels, ClusterMembershipTests.FreePort()),
        ]);

        var clock = Stopwatch.StartNew();
        var members = await Task.WhenAll(ports.Select((port, i) => MemberAsync(Bootstrapping(api, port), $"s{i}")));
        try
        {
            await AwaitUpAsync(TimeSpan.FromSeconds(45), 3, members);
            var formedIn = clock.Elapsed;
            // One cluster: every member sees exactly the three of them Up, with the same leader.
            var all = members.Select(Self).ToHashSet();
            Assert.Equal(3, all.Count);
            foreach (var member in members)
            {
                Assert.Equal(all, Up(member).ToHashSet());
                Assert.Equal(Cluster.Get(members[0].System).State.Leader, Cluster.Get(member.System).State.Leader);
            }
            Assert.All(api.Requests, r => Assert.Equal(new PodListApiServer.Request($"/api/v1/namespaces/{Namespace}/pods",
                "app.kubernetes.io/name=romana", true), r));
            // Exactly one member formed the cluster (joined itself); the others joined it.
            var formed = members.Count(m => CollectingLogger.Lines(m.System).Any(l => l.Contains("Initiating new cluster, self-joining")));
            Assert.Equal(1, formed);
            // Bootstrap is over once a member has decided to join: the API server is asked no more.
            var lists = api.Requests.Count;
            await Task.Delay(TimeSpan.FromSeconds(3));
            Assert.Equal(lists, api.Requests.Count);
            Console.WriteLine($"bootstrap: 3 members Up in one cluster {formedIn.TotalSeconds:0.0}s after their start " +
                $"({lists} pod lists)");
        }
        finally
        {
            foreach (var member in members) await member.DisposeAsync();
        }
    }

    [Fact]
    public async Task With_no_pods_or_no_right_to_list_them_no_cluster_forms_and_the_log_says_why_then_the_pods_make_one()
    {
        await using var api = await PodListApiServer.StartAsync();
        int[] ports = [ClusterMembershipTests.FreePort(), ClusterMembershipTests.FreePort()];
        api.Forbid = true;
        var members = await Task.WhenAll(ports.Select((port, i) => MemberAsync(Bootstrapping(api, port), $"s{i}")));
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(3));
            api.Forbid = false;
            // Longer than the stable margin (5s) and several lookups.
            await Task.Delay(TimeSpan.FromSeconds(12));
            foreach (var member in members)
            {
                Assert.Empty(Up(member));
                var lines = CollectingLogger.Lines(member.System);
                Assert.Contains(lines, l => l.StartsWith("[WARNING] Kubernetes discovery: the API server", StringComparison.Ordinal)
                    && l.Contains($"refused to list pods in namespace {Namespace} (403 Forbidden): the daemon's service account " +
                        "needs get and list on pods there"));
                Assert.Contains(lines, l => l == "[WARNING] Kubernetes discovery: no daemon pod found: 0 pod(s) in namespace " +
                    $"{Namespace} " +
                    "match the label selector app.kubernetes.io/name=romana, none Running with an IP and a container port named " +
                    "management; no cluster forms until daemon pods are found");
            }
            Assert.Contains(api.Requests, r => r.Authorized);

            // The same members, once their pods are listed, form one cluster: nothing else was keeping them apart.
            api.SetPods([.. ports.Select((port, i) => PodListApiServer.DaemonPod($"romana-{i}", Namespace, DaemonLabels, port))]);
            await AwaitUpAsync(TimeSpan.FromSeconds(45), 2, members);
            Assert.Equal(members.Select(Self).ToHashSet(), Up(members[1]).ToHashSet());
        }
        finally
        {
            foreach (var member in members) await member.DisposeAsync();
        }
    }
}
