using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Akka.Configuration;
using k8s;
using k8s.Models;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Support;
using Romana.Host.Aws;
using Romana.Host.Composition;
using Romana.Host.Dataplane;
using Romana.Host.Ec2;
using Romana.Host.Persistence;

namespace Romana.Actors.Tests.Deploy;

/// <summary>
/// deploy/ as `kubectl kustomize deploy/` builds it (offline), read into KubernetesClient's typed objects: least-privilege
/// RBAC, the DaemonSet's rights, probes, mounts and environment, the init container's copies against the Dockerfile, the
/// HOCON of the ConfigMap read by the daemon's own settings readers, and the IAM policy.
/// </summary>
public sealed class DeployManifestTests
{
    private const string Namespace = "romana-system";
    private static readonly string DeployFolder = Path.Combine(Paths.RepositoryRoot, "deploy");
    private static readonly Lazy<IReadOnlyList<object>> Objects = new(Build);

    /// <summary>What the DaemonSet's environment gives the daemon in a cluster (the downward API, the Secret).</summary>
    private static readonly Dictionary<string, string> DaemonEnvironment = new()
    {
        ["ROMANA_NODE_NAME"] = "ip-10-0-32-17.ec2.internal",
        ["ROMANA_HOST_IP"] = "10.0.32.17",
        ["ROMANA_POD_IP"] = "10.0.32.17",
        ["ROMANA_POSTGRESQL_CONNECTION_STRING"] = "Host=romana-db.internal;Port=5432;Username=romana;Password=p;Database=romana",
    };

    private static IReadOnlyList<object> Build()
    {
        var (exit, output, error) = Processes.Run("kubectl", ["kustomize", DeployFolder]);
        if (exit != 0) throw new InvalidOperationException($"kubectl kustomize {DeployFolder} failed ({exit}): {error.Trim()}");
        return KubernetesYaml.LoadAllFromString(output);
    }

    private static T Single<T>() => Assert.Single(Objects.Value.OfType<T>());

    private static V1DaemonSet DaemonSet => Single<V1DaemonSet>();

    private static V1PodSpec Pod => DaemonSet.Spec.Template.Spec;

    private static V1Container Daemon => Assert.Single(Pod.Containers);

    private static V1Container Installer => Assert.Single(Pod.InitContainers);

    [Fact]
    public void The_base_holds_the_namespace_its_account_rbac_config_and_daemonset_and_no_secret()
    {
        Assert.Equal(
            ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Namespace", "ServiceAccount"],
            Objects.Value.Select(o => ((IKubernetesObject)o).Kind).Order());
        Assert.Equal(Namespace, Single<V1Namespace>().Metadata.Name);
        foreach (var namespaced in Objects.Value.OfType<IKubernetesObject<V1ObjectMeta>>()
                     .Where(o => o is V1ServiceAccount or V1ConfigMap or V1DaemonSet))
            Assert.Equal(Namespace, namespaced.Metadata.NamespaceProperty);
        // The PostgreSQL password is the user's: the DaemonSet refers to a Secret that the base does not ship.
        Assert.Empty(Objects.Value.OfType<V1Secret>());
    }

    [Fact]
    public void Rbac_grants_get_list_watch_on_nodes_pods_namespaces_and_networkpolicies_only_to_the_daemons_account()
    {
        var role = Single<V1ClusterRole>();
        var granted = role.Rules.SelectMany(r =>
            from g in r.ApiGroups ?? [] from res in r.Resources ?? [] from v in r.Verbs select (g, res, v)).ToHashSet();
        (string, string)[] resources = [("", "nodes"), ("", "pods"), ("", "namespaces"), ("networking.k8s.io", "networkpolicies")];
        var wanted = resources.SelectMany(r => new[] { "get", "list", "watch" }.Select(verb => (r.Item1, r.Item2, verb))).ToHashSet();
        Assert.Equal(wanted.Order(), granted.Order());
        Assert.All(role.Rules, r =>
        {
            Assert.DoesNotContain("*", (r.ApiGroups ?? []).Concat(r.Resources ?? []).Concat(r.Verbs));
            Assert.Null(r.NonResourceURLs);
            Assert.Null(r.ResourceNames);
        });
        Assert.Null(role.AggregationRule);

        var account = Single<V1ServiceAccount>();
        var binding = Single<V1ClusterRoleBinding>();
        Assert.Equal(("ClusterRole", role.Metadata.Name), (binding.RoleRef.Kind, binding.RoleRef.Name));
        var subject = Assert.Single(binding.Subjects);
        Assert.Equal(("ServiceAccount", account.Metadata.Name, Namespace), (subject.Kind, subject.Name, subject.NamespaceProperty));
        Assert.Equal(account.Metadata.Name, Pod.ServiceAccountName);
    }

    [Fact]
    public void The_daemon_runs_in_the_hosts_network_with_net_admin_and_net_raw_only_node_critical_on_every_node()
    {
        Assert.True(Pod.HostNetwork);
        Assert.NotEqual(true, Pod.HostPID);
        Assert.NotEqual(true, Pod.HostIPC);
        // No pod network (hence no cluster DNS) before this daemon runs.
        Assert.Equal("Default", Pod.DnsPolicy);
        Assert.Equal("system-node-critical", Pod.PriorityClassName);

        var rights = Daemon.SecurityContext;
        Assert.Equal(["NET_ADMIN", "NET_RAW"], rights.Capabilities.Add.Order());
        Assert.Equal(["ALL"], rights.Capabilities.Drop);
        Assert.Equal(false, rights.AllowPrivilegeEscalation);
        Assert.Equal(["ALL"], Installer.SecurityContext.Capabilities.Drop);
        Assert.Empty(Installer.SecurityContext.Capabilities.Add ?? []);
        Assert.All(Pod.Containers.Concat(Pod.InitContainers), c => Assert.NotEqual(true, c.SecurityContext?.Privileged));

        // Every taint, whatever its key, value and effect, is tolerated, NoExecute ones for good.
        V1Taint[] taints =
        [
            new() { Key = "node.kubernetes.io/not-ready", Effect = "NoSchedule" },
            new() { Key = "node.kubernetes.io/not-ready", Effect = "NoExecute" },
            new() { Key = "node.kubernetes.io/unreachable", Effect = "NoExecute" },
            new() { Key = "node.kubernetes.io/network-unavailable", Effect = "NoSchedule" },
            new() { Key = "node-role.kubernetes.io/control-plane", Effect = "NoSchedule" },
            new() { Key = "dedicated", Value = "gpu", Effect = "NoSchedule" },
            new() { Key = "example.com/drain", Value = "soon", Effect = "PreferNoSchedule" },
        ];
        Assert.All(taints, taint => Assert.Contains(Pod.Tolerations, t => Tolerates(t, taint) && t.TolerationSeconds is null));

        var requests = Daemon.Resources.Requests;
        Assert.Equal(["cpu", "memory"], requests.Keys.Order());
        // Memory is limited (a leak ends in a restart, not in the node's OOM killer choosing); CPU is not (never throttled).
        Assert.Equal(["memory"], Daemon.Resources.Limits.Keys);
        Assert.True(Daemon.Resources.Limits["memory"].ToDecimal() >= 2 * requests["memory"].ToDecimal());
    }

    /// <summary>Kubernetes' rule: an empty key with Exists matches every key; an empty effect matches every effect.</summary>
    private static bool Tolerates(V1Toleration toleration, V1Taint taint)
    {
        if (!string.IsNullOrEmpty(toleration.Effect) && toleration.Effect != taint.Effect) return false;
        if (toleration.OperatorProperty == "Exists") return string.IsNullOrEmpty(toleration.Key) || toleration.Key == taint.Key;
        return toleration.Key == taint.Key && (toleration.Value ?? "") == (taint.Value ?? "");
    }

    [Fact]
    public void Probes_ask_the_daemons_http_port_healthz_for_liveness_and_readyz_for_readiness()
    {
        var config = LoadedConfig();
        var port = config.GetInt("romana.http.port");
        Assert.Equal(9608, port);
        Assert.Equal("0.0.0.0", config.GetString("romana.http.host"));
        Assert.Equal(port, Daemon.Ports.Single(p => p.Name == "http").ContainerPort);
        Assert.Equal(("/healthz", port.ToString()), (Daemon.LivenessProbe.HttpGet.Path, Daemon.LivenessProbe.HttpGet.Port.Value));
        Assert.Equal(("/readyz", port.ToString()), (Daemon.ReadinessProbe.HttpGet.Path, Daemon.ReadinessProbe.HttpGet.Port.Value));
        // A start recovers the node from the journal (romana.ipam.startup-timeout): liveness waits for it.
        var startup = Daemon.StartupProbe;
        Assert.Equal(("/healthz", port.ToString()), (startup.HttpGet.Path, startup.HttpGet.Port.Value));
        var startupTimeout = ConfigValues.Duration(config, "romana.ipam.startup-timeout");
        Assert.True(startup.PeriodSeconds * startup.FailureThreshold > startupTimeout.TotalSeconds);

        Assert.Equal(HealthSettings.From(config).ProbePort, Daemon.Ports.Single(p => p.Name == "health-probe").ContainerPort);
        Assert.Equal(ClusterSettings.From(config).Port, Daemon.Ports.Single(p => p.Name == "remoting").ContainerPort);
    }

    [Fact]
    public void The_environment_gives_the_node_name_the_addresses_and_the_journals_connection_string_from_a_secret()
    {
        var env = Daemon.Env.ToDictionary(e => e.Name);
        Assert.Equal(DaemonEnvironment.Keys.Order(), env.Keys.Order());
        Assert.Equal("spec.nodeName", env["ROMANA_NODE_NAME"].ValueFrom.FieldRef.FieldPath);
        Assert.Equal("status.hostIP", env["ROMANA_HOST_IP"].ValueFrom.FieldRef.FieldPath);
        Assert.Equal("status.podIP", env["ROMANA_POD_IP"].ValueFrom.FieldRef.FieldPath);
        var secret = env["ROMANA_POSTGRESQL_CONNECTION_STRING"].ValueFrom.SecretKeyRef;
        Assert.Equal(("romana-postgresql", "connection-string"), (secret.Name, secret.Key));
        Assert.NotEqual(true, secret.Optional);
        // The example Secret (not in the base) has the name and key the DaemonSet reads.
        var example = KubernetesYaml.Deserialize<V1Secret>(
            File.ReadAllText(Path.Combine(DeployFolder, "examples", "postgresql-secret.yaml")));
        Assert.Equal((secret.Name, Namespace), (example.Metadata.Name, example.Metadata.NamespaceProperty));
        Assert.Contains(secret.Key, example.StringData.Keys);
    }

    [Fact]
    public async Task The_configmaps_hocon_reads_as_the_daemon_reads_it_with_the_daemonsets_environment()
    {
        var config = LoadedConfig();
        var topology = RomanaConfig.ReadTopology(config);
        var cluster = ClusterSettings.From(config);
        Assert.True(cluster.Enabled);
        Assert.Equal(DaemonEnvironment["ROMANA_POD_IP"], cluster.Hostname);
        Assert.NotEmpty(cluster.SeedNodes);
        var journal = JournalSettings.From(config);
        Assert.Equal(JournalKind.PostgreSql, journal.Journal);
        Assert.Equal(DaemonEnvironment["ROMANA_POSTGRESQL_CONNECTION_STRING"], journal.PostgreSqlConnectionString);
        cluster.RequireSharedJournal(config, journal);

        // The name and IP from the environment; subnet, instance and ENI from IMDSv2, as on EC2.
        await using var imds = ImdsLabServer.Start();
        var subnet = topology.Subnets.Last();
        imds.Default = new InstanceMetadataRecord("i-0123", "0a:00:00:00:00:17", "eni-0123", subnet.Id.Value, "10.0.32.99");
        var withImds = ConfigurationFactory.ParseString($"romana.node.imds.endpoint = \"{imds.Url}\"").WithFallback(config);
        var node = await NodeIdentity.ResolveInClusterAsync(withImds, topology, InstanceMetadata.From(withImds));
        Assert.Equal((DaemonEnvironment["ROMANA_NODE_NAME"], DaemonEnvironment["ROMANA_HOST_IP"], subnet.Id, "i-0123", "eni-0123"),
            (node.Name.Value, node.Ip.ToString(), node.Subnet, node.InstanceId, node.Eni));
        Assert.Equal("http://169.254.169.254", config.GetString("romana.node.imds.endpoint"));

        Assert.NotNull(MasqueradeSettings.From(config).RulesFor(topology));
        Assert.Empty(ImdsSettings.From(config).Allow);
        var tables = RouteSettings.From(config).Tables;
        Assert.Equal("romana.io/cluster", tables.TagKey);
        Assert.False(string.IsNullOrEmpty(tables.TagValue));
    }

    [Fact]
    public void The_config_is_mounted_where_the_daemons_arguments_name_it_and_the_cni_socket_lies_on_the_hosts_run_romana()
    {
        var configMap = Single<V1ConfigMap>();
        var volume = Pod.Volumes.Single(v => v.ConfigMap?.Name == configMap.Metadata.Name);
        var mount = Daemon.VolumeMounts.Single(m => m.Name == volume.Name);
        Assert.Equal(["daemon", "--config", $"{mount.MountPath}/romana.conf"], Daemon.Args);
        Assert.Contains("romana.conf", configMap.Data.Keys);

        foreach (var path in new[] { "/run/romana", "/var/lib/romana" })
            Assert.Equal(path, HostPathOf(Daemon, path));
        var socket = CniSettings.From(LoadedConfig()).Socket;
        Assert.StartsWith("/run/romana/", socket);
        // The plugin, run by the container runtime on the host, dials the path the conflist names.
        Assert.Equal(socket, Conflist().GetProperty("plugins")[0].GetProperty("daemonSocket").GetString());
    }

    [Fact]
    public void The_init_container_installs_the_plugin_then_its_conflist_from_paths_the_dockerfiles_runtime_stage_fills()
    {
        var script = Assert.Single(Installer.Command, c => c.Contains("put "));
        var copies = Regex.Matches(script, @"put (/\S+) (/\S+) (\d{4})$", RegexOptions.Multiline)
            .Select(m => (Source: m.Groups[1].Value, Target: HostPathOf(Installer, m.Groups[2].Value), Mode: m.Groups[3].Value))
            .ToList();
        Assert.Equal(
            [
                ("/opt/romana/cni/romana", "/opt/cni/bin/romana", "0755"),
                ("/usr/lib/cni/portmap", "/opt/cni/bin/portmap", "0755"),
                ("/opt/romana/cni/10-romana.conflist", "/etc/cni/net.d/10-romana.conflist", "0644"),
            ],
            copies);
        Assert.Equal(Daemon.Image, Installer.Image);

        var stages = Dockerfile();
        var runtime = stages[^1];
        Assert.Equal("runtime", runtime.Name);
        var copied = runtime.Instructions.Where(i => i.StartsWith("COPY ")).Select(i => i.Split(' ')).ToList();
        // The plugin: Romana.Cni published NativeAOT for linux-x64 in the plugin stage, under its assembly name.
        var plugin = copied.Single(c => c[^1] == "/opt/romana/cni/romana");
        var pluginStage = stages.Single(s => plugin[1] == $"--from={s.Name}");
        var publish = Assert.Single(pluginStage.Instructions, i => i.StartsWith("RUN ") && i.Contains("dotnet publish Romana.Cni"));
        Assert.Contains("-r linux-x64", publish);
        var output = Regex.Match(publish, @"-o (\S+)").Groups[1].Value;
        Assert.Equal($"{output}/{AssemblyName("Romana.Cni")}", plugin[2]);
        // The conflist: the repository's, whose plugin type is the file's name in /opt/cni/bin.
        var conflist = copied.Single(c => c[^1] == "/opt/romana/cni/10-romana.conflist");
        Assert.Equal("hocon/examples/10-romana.conflist", conflist[1]);
        Assert.Equal("romana", Conflist().GetProperty("plugins")[0].GetProperty("type").GetString());
        Assert.Equal("portmap", Conflist().GetProperty("plugins")[1].GetProperty("type").GetString());
        // portmap and nft come from the runtime stage's packages.
        var packages = Assert.Single(runtime.Instructions, i => i.StartsWith("RUN ") && i.Contains("apt-get install"));
        Assert.Contains(" nftables", packages);
        Assert.Contains(" containernetworking-plugins", packages);

        // The daemon: Romana.Host published in the daemon stage, run as the image's entry point with the container's args.
        var daemon = copied.Single(c => c[^1] == "/opt/romana/daemon/");
        var daemonStage = stages.Single(s => daemon[1] == $"--from={s.Name}");
        var daemonPublish = Assert.Single(daemonStage.Instructions, i => i.StartsWith("RUN ") && i.Contains("dotnet publish Romana.Host"));
        Assert.Equal(daemon[2].TrimEnd('/'), Regex.Match(daemonPublish, @"-o (\S+)").Groups[1].Value);
        Assert.Contains($"ENTRYPOINT [\"/opt/romana/daemon/{AssemblyName("Romana.Host")}\"]", runtime.Instructions);
        Assert.Null(Daemon.Command);
    }

    [Fact]
    public void The_iam_policy_allows_exactly_the_route_managers_calls_with_route_changes_only_in_tables_carrying_the_tag()
    {
        using var policy = JsonDocument.Parse(File.ReadAllText(Path.Combine(DeployFolder, "iam-policy.json")));
        var statements = policy.RootElement.GetProperty("Statement").EnumerateArray().ToList();
        static IEnumerable<string> Strings(JsonElement e) =>
            e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().Select(x => x.GetString()!) : [e.GetString()!];
        var actions = statements.SelectMany(s => Strings(s.GetProperty("Action"))).ToList();
        Assert.Equal(
            ["ec2:CreateRoute", "ec2:DeleteRoute", "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables",
                "ec2:ModifyNetworkInterfaceAttribute", "ec2:ReplaceRoute"],
            actions.Order());
        Assert.All(actions, a => Assert.DoesNotContain("*", a));
        Assert.All(statements, s =>
        {
            Assert.Equal("Allow", s.GetProperty("Effect").GetString());
            Assert.False(s.TryGetProperty("NotAction", out _));
            Assert.False(s.TryGetProperty("NotResource", out _));
        });

        var tables = RouteSettings.From(LoadedConfig()).Tables;
        var routes = Assert.Single(statements, s => Strings(s.GetProperty("Action")).Contains("ec2:CreateRoute"));
        Assert.Equal(["ec2:CreateRoute", "ec2:DeleteRoute", "ec2:ReplaceRoute"], Strings(routes.GetProperty("Action")).Order());
        Assert.Equal(["arn:aws:ec2:*:*:route-table/*"], Strings(routes.GetProperty("Resource")));
        var condition = Assert.Single(routes.GetProperty("Condition").EnumerateObject());
        Assert.Equal("StringEquals", condition.Name);
        var tag = Assert.Single(condition.Value.EnumerateObject());
        Assert.Equal(($"ec2:ResourceTag/{tables.TagKey}", tables.TagValue), (tag.Name, tag.Value.GetString()));
        var reads = Assert.Single(statements, s => Strings(s.GetProperty("Action")).Contains("ec2:DescribeRouteTables"));
        Assert.All(Strings(reads.GetProperty("Action")), a => Assert.StartsWith("ec2:Describe", a));
        Assert.Equal(["*"], Strings(reads.GetProperty("Resource")));
    }

    /// <summary>The host path behind <paramref name="path"/> inside <paramref name="container"/>, through its hostPath mounts.</summary>
    private static string HostPathOf(V1Container container, string path)
    {
        var mount = container.VolumeMounts
            .Where(m => path == m.MountPath || path.StartsWith(m.MountPath.TrimEnd('/') + "/"))
            .MaxBy(m => m.MountPath.Length) ?? throw new InvalidOperationException($"{container.Name}: nothing mounted at {path}");
        var hostPath = Pod.Volumes.Single(v => v.Name == mount.Name).HostPath
            ?? throw new InvalidOperationException($"{container.Name}: {mount.MountPath} is no hostPath");
        return hostPath.Path + path[mount.MountPath.Length..];
    }

    /// <summary>romana.conf from the built ConfigMap, read by <see cref="RomanaConfig.Load"/> with the DaemonSet's environment.</summary>
    private static Config LoadedConfig()
    {
        var text = Single<V1ConfigMap>().Data["romana.conf"];
        var file = Path.Combine(Path.GetTempPath(), $"romana-deploy-{Guid.NewGuid():N}.conf");
        File.WriteAllText(file, text);
        try
        {
            foreach (var (name, value) in DaemonEnvironment) System.Environment.SetEnvironmentVariable(name, value);
            return RomanaConfig.Load(file);
        }
        finally
        {
            foreach (var name in DaemonEnvironment.Keys) System.Environment.SetEnvironmentVariable(name, null);
            File.Delete(file);
        }
    }

    private static JsonElement Conflist() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "examples", "10-romana.conflist"))).RootElement;

    private static string AssemblyName(string project) =>
        XDocument.Load(Path.Combine(Paths.RepositoryRoot, project, $"{project}.csproj")).Descendants("AssemblyName").Single().Value;

    private sealed record Stage(string Name, List<string> Instructions);

    /// <summary>deploy/Dockerfile's stages in order, each with its instructions (continued lines joined, comments left out).</summary>
    private static List<Stage> Dockerfile()
    {
        var text = File.ReadAllText(Path.Combine(DeployFolder, "Dockerfile"));
        var lines = Regex.Replace(text, @"\\\n\s*", " ").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'));
        var stages = new List<Stage>();
        foreach (var line in lines)
        {
            var from = Regex.Match(line, @"^FROM \S+ AS (\S+)$");
            if (from.Success) stages.Add(new Stage(from.Groups[1].Value, []));
            else if (stages.Count == 0) throw new InvalidOperationException($"deploy/Dockerfile: {line} before any FROM");
            else stages[^1].Instructions.Add(Regex.Replace(line, @"\s+", " "));
        }
        return stages;
    }
}
