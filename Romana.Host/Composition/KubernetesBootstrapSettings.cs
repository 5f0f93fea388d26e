using Akka.Configuration;
using k8s;
using Romana.Actors;
using Romana.Actors.Configuration;

namespace Romana.Host.Composition;

/// <summary>How a daemon finds the other members (romana.cluster.discovery).</summary>
public enum ClusterDiscovery
{
    /// <summary>romana.cluster.seed-nodes: members listed in the configuration.</summary>
    SeedNodes,

    /// <summary>Akka.Management's cluster bootstrap with the daemon pods listed from the Kubernetes API by label selector.</summary>
    Kubernetes,
}

/// <summary>
/// Cluster bootstrap through Kubernetes (romana.cluster.bootstrap): which pods are the daemons, the management port that
/// bootstrap asks each of them, when a new cluster may be formed, and the API server (in-cluster, or an explicit URL with
/// a token file and a CA file).
/// </summary>
public sealed record KubernetesBootstrapSettings(string PodLabelSelector, string PodNamespace, int ManagementPort,
    string ManagementPortName, int RequiredContactPoints, TimeSpan StableMargin, TimeSpan Interval, string ApiServer,
    string ApiTokenPath, string ApiCaPath)
{
    public const string Section = $"{ClusterSettings.Section}.bootstrap";

    /// <summary>
    /// The settings; with <paramref name="check"/> (discovery = kubernetes on an enabled member) also what the daemon needs
    /// to ask the API server: the in-cluster service account, or the files named.
    /// </summary>
    public static KubernetesBootstrapSettings From(Config config, bool check)
    {
        var selector = ConfigValues.Text(config, $"{Section}.pod-label-selector");
        var ns = ConfigValues.Text(config, $"{Section}.pod-namespace");
        var port = ConfigValues.Int(config, $"{Section}.management-port");
        if (port is < 1 or > 65535)
            throw ConfigValues.Error(config, $"{Section}.management-port",
                $"{port} is not a TCP port (1 to 65535; the pod spec names it, so it cannot be chosen at random)");
        var portName = ConfigValues.Text(config, $"{Section}.management-port-name");
        var required = ConfigValues.Int(config, $"{Section}.required-contact-points");
        if (required < 1)
            throw ConfigValues.Error(config, $"{Section}.required-contact-points", $"{required} must be at least 1");
        var stableMargin = Positive(config, $"{Section}.stable-margin");
        var interval = Positive(config, $"{Section}.interval");
        var apiServer = ConfigValues.Text(config, $"{Section}.api-server");
        var token = ConfigValues.Text(config, $"{Section}.api-token-path");
        var ca = ConfigValues.Text(config, $"{Section}.api-ca-path");
        var settings = new KubernetesBootstrapSettings(selector, ns, port, portName, required, stableMargin, interval, apiServer,
            token, ca);
        if (check) settings.Check(config);
        return settings;
    }

    private void Check(Config config)
    {
        if (string.IsNullOrWhiteSpace(PodLabelSelector))
            throw ConfigValues.Error(config, $"{Section}.pod-label-selector",
                "empty; name the daemon pods' labels, e.g. app.kubernetes.io/name=romana");
        if (string.IsNullOrWhiteSpace(ManagementPortName))
            throw ConfigValues.Error(config, $"{Section}.management-port-name",
                "empty; name the container port of the management endpoint");
        if (ApiServer.Length == 0)
        {
            if (!KubernetesClientConfiguration.IsInCluster())
                throw ConfigValues.Error(config, $"{ClusterSettings.Section}.discovery", "kubernetes, but this process runs in no " +
                    "Kubernetes pod (KUBERNETES_SERVICE_HOST or _PORT unset, or no service account token and CA); " +
                    $"set {Section}.api-server, api-token-path and api-ca-path");
            return;
        }
        if (!Uri.TryCreate(ApiServer, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
            throw ConfigValues.Error(config, $"{Section}.api-server", $"{Quoting.Quote(ApiServer)} is not an http(s) URL");
        if (string.IsNullOrWhiteSpace(PodNamespace))
            throw ConfigValues.Error(config, $"{Section}.pod-namespace", "empty with api-server set; name the daemon pods' namespace");
        foreach (var (setting, path) in new[] { ("api-token-path", ApiTokenPath), ("api-ca-path", ApiCaPath) })
            if (path.Length > 0 && !File.Exists(path))
                throw ConfigValues.Error(config, $"{Section}.{setting}", $"{Quoting.Quote(path)}: no such file");
    }

    private static TimeSpan Positive(Config config, string setting)
    {
        var value = ConfigValues.Duration(config, setting);
        return value > TimeSpan.Zero
            ? value
            : throw ConfigValues.Error(config, setting, $"{ConfigValues.Text(config, setting)} must be positive");
    }
}
