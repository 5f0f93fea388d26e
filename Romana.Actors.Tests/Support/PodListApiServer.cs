using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using Romana.Actors.Tests.Conformance;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// The part of a Kubernetes API server that cluster bootstrap asks, in the test process: HTTP/1.1 over TLS on 127.0.0.1,
/// port 0, with a self-signed certificate made here (its PEM is <see cref="CaPath"/>), answering
/// <c>GET /api/v1/namespaces/{ns}/pods?labelSelector=…</c> with the pods of that namespace whose labels match, to a request
/// with the bearer token in <see cref="TokenPath"/> (401 without it; 403 for every request while <see cref="Forbid"/>).
/// Every request is recorded. The certificate and token files live in a folder removed on dispose. A TcpListener with an
/// SslStream, not Kestrel: with the ASP.NET Core framework referenced, the test output lacks the Microsoft.Extensions
/// assemblies that romana.dll (run from there by the daemon tests) loads.
/// </summary>
public sealed class PodListApiServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly X509Certificate2 _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly TempFolder _folder;
    private readonly string _token;
    private readonly object _gate = new();
    private readonly List<V1Pod> _pods = [];
    private readonly List<Request> _requests = [];

    /// <summary>A recorded request: its path, the label selector asked for, and whether it carried the token.</summary>
    public sealed record Request(string Path, string? LabelSelector, bool Authorized);

    private PodListApiServer(X509Certificate2 certificate, TempFolder folder, string token, string caPath, string tokenPath)
    {
        _certificate = certificate;
        _folder = folder;
        _token = token;
        CaPath = caPath;
        TokenPath = tokenPath;
    }

    public static Task<PodListApiServer> StartAsync()
    {
        var folder = new TempFolder();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=kube-apiserver", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        var caPath = folder.Write("ca.crt", certificate.ExportCertificatePem());
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        var tokenPath = folder.Write("token", token);

        var server = new PodListApiServer(certificate, folder, token, caPath, tokenPath);
        server._listener.Start();
        server._serving = server.AcceptAsync();
        return Task.FromResult(server);
    }

    private Task _serving = Task.CompletedTask;

    public string Url => $"https://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>The server certificate as PEM: the CA a client must trust.</summary>
    public string CaPath { get; }

    /// <summary>A file holding the bearer token the server requires.</summary>
    public string TokenPath { get; }

    /// <summary>While true every request is answered 403 Forbidden, as an API server answers a service account without RBAC.</summary>
    public bool Forbid { get; set; }

    public IReadOnlyList<Request> Requests
    {
        get
        {
            lock (_gate) return [.. _requests];
        }
    }

    /// <summary>Replaces the pods the server holds.</summary>
    public void SetPods(params V1Pod[] pods)
    {
        lock (_gate)
        {
            _pods.Clear();
            _pods.AddRange(pods);
        }
    }

    /// <summary>
    /// A Running pod of a daemon in <paramref name="ns"/> with <paramref name="labels"/>, at 127.0.0.1, whose container names
    /// <paramref name="managementPort"/> "management" (and the remoting port, as a DaemonSet's pod spec would).
    /// </summary>
    public static V1Pod DaemonPod(string name, string ns, IDictionary<string, string> labels, int managementPort,
        string phase = "Running") =>
        new()
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = labels, Uid = Guid.NewGuid().ToString() },
            Spec = new V1PodSpec
            {
                HostNetwork = true,
                Containers =
                [
                    new V1Container
                    {
                        Name = "romana",
                        Ports =
                        [
                            new V1ContainerPort { Name = "remoting", ContainerPort = 4053 },
                            new V1ContainerPort { Name = "management", ContainerPort = managementPort },
                        ],
                    },
                ],
            },
            Status = new V1PodStatus { Phase = phase, PodIP = "127.0.0.1", HostIP = "127.0.0.1" },
        };

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = ServeConnectionAsync(client);
        }
    }

    /// <summary>One connection: TLS, then requests (keep-alive) until the client closes it.</summary>
    private async Task ServeConnectionAsync(TcpClient client)
    {
        using var _ = client;
        try
        {
            await using var tls = new SslStream(client.GetStream());
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, _stop.Token);
            using var reader = new StreamReader(tls, Encoding.ASCII, false, 4096, leaveOpen: true);
            while (await reader.ReadLineAsync(_stop.Token) is { Length: > 0 } requestLine)
            {
                var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                while (await reader.ReadLineAsync(_stop.Token) is { Length: > 0 } header)
                    if (header.IndexOf(':') is > 0 and var colon) headers[header[..colon].Trim()] = header[(colon + 1)..].Trim();
                var (status, reason, body) = Answer(requestLine, headers.GetValueOrDefault("Authorization"));
                var bytes = Encoding.UTF8.GetBytes(body);
                var head = $"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {bytes.Length}\r\n\r\n";
                await tls.WriteAsync(Encoding.ASCII.GetBytes(head), _stop.Token);
                await tls.WriteAsync(bytes, _stop.Token);
                await tls.FlushAsync(_stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException
                                      or ObjectDisposedException or SocketException)
        {
            // A client that does not trust the certificate, or one that went away.
        }
    }

    private (int Status, string Reason, string Body) Answer(string requestLine, string? authorization)
    {
        var parts = requestLine.Split(' ');
        var target = new Uri(new Uri(Url), parts.Length > 1 ? parts[1] : "/");
        var path = target.AbsolutePath;
        var selector = System.Web.HttpUtility.ParseQueryString(target.Query)["labelSelector"];
        var authorized = authorization == $"Bearer {_token}";
        lock (_gate) _requests.Add(new Request(path, selector, authorized));
        if (!authorized)
            return Status(401, "Unauthorized", "Unauthorized");
        if (Forbid)
            return Status(403, "Forbidden",
                "pods is forbidden: User \"system:serviceaccount:kube-system:romana\" cannot list resource \"pods\"");
        if (parts[0] != "GET" || path.Split('/', StringSplitOptions.RemoveEmptyEntries) is not ["api", "v1", "namespaces", var ns, "pods"])
            return Status(404, "NotFound", $"{path} is not served here");
        var wanted = ParseSelector(selector);
        V1Pod[] pods;
        lock (_gate)
            pods = [.. _pods.Where(p => p.Metadata.NamespaceProperty == ns
                                        && wanted.All(w => p.Metadata.Labels?.TryGetValue(w.Key, out var v) == true && v == w.Value))];
        var list = new V1PodList { ApiVersion = "v1", Kind = "PodList", Metadata = new V1ListMeta { ResourceVersion = "1" }, Items = pods };
        return (200, "OK", KubernetesJson.Serialize(list));
    }

    /// <summary>Equality selectors only (key=value, comma-separated): what Romana's discovery sends.</summary>
    private static Dictionary<string, string> ParseSelector(string? selector) =>
        (selector ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(term => term.Split('=', 2))
            .ToDictionary(kv => kv[0].Trim(), kv => kv.Length > 1 ? kv[1].Trim() : "");

    private static (int, string, string) Status(int code, string reason, string message) =>
        (code, reason, JsonSerializer.Serialize(new { kind = "Status", apiVersion = "v1", status = "Failure", message, reason, code }));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _serving;
        _certificate.Dispose();
        _stop.Dispose();
        _folder.Dispose();
    }
}
