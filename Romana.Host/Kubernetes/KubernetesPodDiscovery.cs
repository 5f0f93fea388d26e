using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Configuration;
using Akka.Discovery;
using Akka.Event;
using k8s;
using k8s.Authentication;
using k8s.Autorest;
using k8s.Models;

namespace Romana.Host.Kubernetes;

/// <summary>
/// Akka.Discovery for cluster bootstrap on KubernetesClient 21: the daemon pods, listed from the API server by label selector
/// in one namespace, as contact points (pod IP, and the container port that the lookup names). Romana's own because
/// Akka.Discovery.KubernetesApi 1.5.73 is built against KubernetesClient 17 and does not bind to 21 (README, "How daemons
/// find each other"). Each outcome that differs from the previous lookup's is one log line with its cause.
/// </summary>
public sealed class KubernetesPodDiscovery : ServiceDiscovery
{
    /// <summary>The discovery method's name: its settings are akka.discovery.romana-kubernetes.</summary>
    public const string Method = "romana-kubernetes";

    private readonly ILoggingAdapter _log;
    private readonly IKubernetes? _client;
    private readonly string _namespace;
    private readonly string _selector;
    private readonly string _server;
    private readonly string? _clientError;
    private string? _lastOutcome;

    public KubernetesPodDiscovery(ExtendedActorSystem system, Config config)
    {
        _log = Logging.GetLogger(system, typeof(KubernetesPodDiscovery));
        _selector = config.GetString("pod-label-selector") ?? "";
        var apiServer = config.GetString("api-server") ?? "";
        var ns = config.GetString("pod-namespace") ?? "";
        try
        {
            var clientConfig = apiServer.Length == 0 ? KubernetesClientConfiguration.InClusterConfig() : Explicit(apiServer, config);
            _namespace = ns.Length > 0 ? ns : clientConfig.Namespace ?? "default";
            _server = clientConfig.Host;
            _client = new k8s.Kubernetes(clientConfig);
        }
        catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or IOException or UnauthorizedAccessException
                                      or CryptographicException)
        {
            _namespace = ns;
            _server = apiServer.Length == 0 ? "in-cluster" : apiServer;
            _clientError = $"cannot make a Kubernetes client for {_server}: {e.Message}";
            _log.Error("Kubernetes discovery: {0}; no cluster forms through it", _clientError);
        }
    }

    private static KubernetesClientConfiguration Explicit(string apiServer, Config config)
    {
        var token = config.GetString("api-token-path") ?? "";
        var ca = config.GetString("api-ca-path") ?? "";
        return new KubernetesClientConfiguration
        {
            Host = apiServer,
            TokenProvider = token.Length > 0 ? new TokenFileAuth(token) : null,
            SslCaCerts = ca.Length > 0 ? CaCertificates(ca) : null,
        };
    }

    private static X509Certificate2Collection CaCertificates(string path)
    {
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPemFile(path);
        return certificates.Count > 0 ? certificates : throw new CryptographicException($"{path} holds no PEM certificate");
    }

    /// <summary>The Running pods that are not being deleted, have an IP and a container port named as the lookup asks.</summary>
    public static IReadOnlyList<ResolvedTarget> Targets(IEnumerable<V1Pod> pods, string? portName) =>
    [
        .. pods.Where(p => p.Metadata?.DeletionTimestamp is null && p.Status?.Phase == "Running"
                           && IPAddress.TryParse(p.Status.PodIP, out _))
            .Select(p => (Pod: p, Port: portName is null ? null : PortNamed(p, portName)))
            .Where(p => portName is null || p.Port is not null)
            .Select(p => new ResolvedTarget(p.Pod.Status.PodIP, p.Port, IPAddress.Parse(p.Pod.Status.PodIP))),
    ];

    private static int? PortNamed(V1Pod pod, string name) =>
        (pod.Spec?.Containers ?? []).SelectMany(c => c.Ports ?? []).FirstOrDefault(p => p.Name == name)?.ContainerPort;

    /// <summary>
    /// The daemon pods as contact points. No pod found is an answer (bootstrap asks again after its interval); a failure to
    /// ask is a <see cref="KubernetesDiscoveryException"/> (bootstrap backs off, up to 15 s, and logs its one-line message).
    /// </summary>
    public override async Task<Resolved> Lookup(Lookup lookup, TimeSpan resolveTimeout)
    {
        if (_client is null) throw Failed(LogLevel.ErrorLevel, _clientError!);
        V1PodList list;
        using var timeout = new CancellationTokenSource(resolveTimeout);
        try
        {
            list = await _client.CoreV1.ListNamespacedPodAsync(_namespace, labelSelector: _selector, cancellationToken: timeout.Token);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized)
        {
            throw Failed(LogLevel.WarningLevel, $"the API server {_server} refused to list pods in namespace {_namespace} " +
                $"({(int)e.Response.StatusCode} {e.Response.StatusCode}): the daemon's service account needs get and list on pods there");
        }
        catch (Exception e) when (e is HttpOperationException or HttpRequestException or OperationCanceledException
                                      or System.Text.Json.JsonException or IOException)
        {
            var cause = e switch
            {
                HttpOperationException h => $"HTTP {(int)h.Response.StatusCode} {h.Response.StatusCode}",
                OperationCanceledException => $"no answer within {resolveTimeout.TotalSeconds:0.#}s",
                _ => e.Message,
            };
            throw Failed(LogLevel.WarningLevel, $"cannot list pods in namespace {_namespace} from the API server {_server}: {cause}");
        }
        var targets = Targets(list.Items, lookup.PortName);
        if (targets.Count == 0)
            Tell(LogLevel.WarningLevel, $"no daemon pod found: {list.Items.Count} pod(s) in namespace {_namespace} match the label " +
                $"selector {_selector}, none Running with an IP and a container port named {lookup.PortName}; no cluster forms " +
                "until daemon pods are found");
        else
            Tell(LogLevel.InfoLevel, $"{targets.Count} daemon pod(s) in namespace {_namespace} with label selector {_selector}: " +
                string.Join(", ", targets.Select(t => $"{t.Host}:{t.Port}")));
        return new Resolved(lookup.ServiceName, targets);
    }

    private KubernetesDiscoveryException Failed(LogLevel level, string cause)
    {
        Tell(level, cause);
        return new KubernetesDiscoveryException(cause);
    }

    /// <summary>One line per outcome that differs from the last lookup's (lookups repeat every second while bootstrapping).</summary>
    private void Tell(LogLevel level, string outcome)
    {
        if (outcome == _lastOutcome) return;
        _lastOutcome = outcome;
        switch (level)
        {
            case LogLevel.ErrorLevel: _log.Error("Kubernetes discovery: {0}", outcome); break;
            case LogLevel.WarningLevel: _log.Warning("Kubernetes discovery: {0}", outcome); break;
            default: _log.Info("Kubernetes discovery: {0}", outcome); break;
        }
    }
}

/// <summary>
/// A lookup that could not ask the API server. Its message is the whole story, on one line: it has no stack trace, so
/// that bootstrap's log line ("Resolve attempt failed! Cause: …") stays one line.
/// </summary>
public sealed class KubernetesDiscoveryException(string message) : Exception(message)
{
    public override string? StackTrace => null;
}
