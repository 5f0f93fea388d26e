using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Romana.Actors.Tests.Conformance;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// The part of a Kubernetes API server that cluster bootstrap asks, in the test process: Kestrel on 127.0.0.1, port 0, over
/// HTTPS with a self-signed certificate made here (its PEM is <see cref="CaPath"/>), answering
/// <c>GET /api/v1/namespaces/{ns}/pods?labelSelector=…</c> with the pods of that namespace whose labels match, to a request
/// with the bearer token in <see cref="TokenPath"/> (401 without it; 403 for every request while <see cref="Forbid"/>).
/// Every request is recorded. The certificate and token files live in a folder removed on dispose.
/// </summary>
public sealed class PodListApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TempFolder _folder;
    private readonly string _token;
    private readonly object _gate = new();
    private readonly List<V1Pod> _pods = [];
    private readonly List<Request> _requests = [];

    /// <summary>A recorded request: its path, the label selector asked for, and whether it carried the token.</summary>
    public sealed record Request(string Path, string? LabelSelector, bool Authorized);

    private PodListApiServer(WebApplication app, TempFolder folder, string token, string caPath, string tokenPath)
    {
        _app = app;
        _folder = folder;
        _token = token;
        CaPath = caPath;
        TokenPath = tokenPath;
    }

    public static async Task<PodListApiServer> StartAsync()
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

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(options => options.Listen(IPAddress.Loopback, 0,
            listen => listen.UseHttps(new HttpsConnectionAdapterOptions { ServerCertificate = certificate })));
        var app = builder.Build();
        var server = new PodListApiServer(app, folder, token, caPath, tokenPath);
        app.Run(server.ServeAsync);
        await app.StartAsync();
        return server;
    }

    public string Url => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

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
    public static V1Pod DaemonPod(string name, string ns, IDictionary<string, string> labels, int managementPort, string phase = "Running") =>
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

    private async Task ServeAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        var selector = context.Request.Query["labelSelector"].FirstOrDefault();
        var authorized = context.Request.Headers.Authorization.ToString() == $"Bearer {_token}";
        lock (_gate) _requests.Add(new Request(path, selector, authorized));
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (!authorized || Forbid)
        {
            await StatusAsync(context, authorized ? 403 : 401, authorized ? "Forbidden" : "Unauthorized",
                authorized ? "pods is forbidden: User \"system:serviceaccount:kube-system:romana\" cannot list resource \"pods\"" : "Unauthorized");
            return;
        }
        if (context.Request.Method != "GET" || parts is not ["api", "v1", "namespaces", var ns, "pods"])
        {
            await StatusAsync(context, 404, "NotFound", $"{path} is not served here");
            return;
        }
        var wanted = ParseSelector(selector);
        V1Pod[] pods;
        lock (_gate)
            pods = [.. _pods.Where(p => p.Metadata.NamespaceProperty == ns
                                        && wanted.All(w => p.Metadata.Labels?.TryGetValue(w.Key, out var v) == true && v == w.Value))];
        var list = new V1PodList { ApiVersion = "v1", Kind = "PodList", Metadata = new V1ListMeta { ResourceVersion = "1" }, Items = pods };
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(KubernetesJson.Serialize(list));
    }

    /// <summary>Equality selectors only (key=value, comma-separated): what Romana's discovery sends.</summary>
    private static Dictionary<string, string> ParseSelector(string? selector) =>
        (selector ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(term => term.Split('=', 2))
            .ToDictionary(kv => kv[0].Trim(), kv => kv.Length > 1 ? kv[1].Trim() : "");

    private static async Task StatusAsync(HttpContext context, int code, string reason, string message)
    {
        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            kind = "Status", apiVersion = "v1", status = "Failure", message, reason, code,
        }));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _folder.Dispose();
    }
}
