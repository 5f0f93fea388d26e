using System.Net;
using System.Net.Sockets;
using System.Text;
using Akka.Actor;
using Akka.Event;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Romana.Host.Dataplane;

namespace Romana.Host.Observability;

/// <summary>One check of /readyz: null when it passes, else one line that says why not.</summary>
public interface IReadinessCheck
{
    string? Failing();
}

/// <summary>This daemon is an Up member of the cluster that no member sees as unreachable.</summary>
public sealed class ClusterMemberReadiness(IServiceProvider services) : IReadinessCheck
{
    public string? Failing()
    {
        var cluster = Akka.Cluster.Cluster.Get(services.GetRequiredService<ActorSystem>());
        var self = cluster.SelfMember;
        if (self.Status != Akka.Cluster.MemberStatus.Up) return $"cluster: this member ({cluster.SelfAddress}) is {self.Status}, not Up";
        return cluster.State.Unreachable.Any(m => m.UniqueAddress == cluster.SelfUniqueAddress)
            ? $"cluster: this member ({cluster.SelfAddress}) is unreachable to the others"
            : null;
    }
}

/// <summary>The journal's last write (by any actor of this process) was stored: a failed one makes the daemon unready.</summary>
public sealed class JournalReadiness(RomanaMetrics metrics) : IReadinessCheck
{
    public string? Failing() => metrics.JournalNotWritable();
}

/// <summary>The CNI socket is served: accepting, its file in place.</summary>
public sealed class CniSocketReadiness(CniServer server) : IReadinessCheck
{
    public string? Failing() => server.NotServedBecause is { } why ? $"cni: {why}" : null;
}

/// <summary>
/// /metrics (the Prometheus text format of <see cref="RomanaMetrics"/>), /healthz (200 while the process answers) and
/// /readyz (200 when every <see cref="IReadinessCheck"/> passes, else 503 with one line per failing check), on HttpListener
/// at romana.http. Bound when the daemon starts (a port in use stops the start, naming the setting), served until its
/// last step of stopping.
/// </summary>
public sealed class RomanaHttpServer(HttpSettings settings, IServiceProvider services) : IHostedLifecycleService
{
    private HttpListener? _listener;
    private Task _serving = Task.CompletedTask;

    /// <summary>The port bound (romana.http.port, or the one taken for port 0).</summary>
    public int Port { get; private set; }

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        // HttpListener cannot bind port 0 itself: a free port is found first, and taken again if another process got it.
        for (var attempt = 1; ; attempt++)
        {
            var port = settings.Port == 0 ? FreePort(settings.Host) : settings.Port;
            var listener = new HttpListener();
            var host = settings.Host.Equals(IPAddress.Any) ? "+" : settings.Host.ToString();
            listener.Prefixes.Add($"http://{host}:{port}/");
            try
            {
                listener.Start();
                (_listener, Port) = (listener, port);
                return Task.CompletedTask;
            }
            catch (HttpListenerException e)
            {
                listener.Close();
                if (settings.Port == 0 && attempt < 5) continue;
                throw new DaemonStartException($"{HttpSettings.Section}.port: cannot listen on {settings.Host}:{port}: {e.Message}");
            }
        }
    }

    private static int FreePort(IPAddress host)
    {
        using var probe = new TcpListener(host, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _serving = ServeAsync(_listener!);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        services.DaemonLog().Info("HTTP endpoint http://{0}:{1}/ : /metrics, /healthz, /readyz", settings.Host, Port);
        return Task.CompletedTask;
    }

    private async Task ServeAsync(HttpListener listener)
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            _ = AnswerAsync(context);
        }
    }

    private async Task AnswerAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            var (status, type, body) = await AnswerOfAsync(context.Request);
            var bytes = Encoding.UTF8.GetBytes(body);
            response.StatusCode = status;
            response.ContentType = type;
            response.ContentLength64 = bytes.Length;
            if (context.Request.HttpMethod != "HEAD") await response.OutputStream.WriteAsync(bytes);
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
        {
            // the client went away
        }
        finally
        {
            try
            {
                response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
            {
                // already closed with the listener
            }
        }
    }

    private async Task<(int, string, string)> AnswerOfAsync(HttpListenerRequest request)
    {
        const string text = "text/plain; charset=utf-8";
        try
        {
            return request.HttpMethod is not ("GET" or "HEAD")
                ? (405, text, "only GET and HEAD\n")
                : request.Url?.AbsolutePath switch
                {
                    "/metrics" => (200, "text/plain; version=0.0.4; charset=utf-8",
                        await services.GetRequiredService<RomanaMetrics>().ExportAsync()),
                    "/healthz" => (200, text, "ok\n"),
                    "/readyz" => Ready(),
                    _ => (404, text, "not found: /metrics, /healthz and /readyz are served\n"),
                };
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return (500, text, $"{request.Url?.AbsolutePath}: {e.GetType().Name}: {e.Message}\n");
        }
    }

    /// <summary>A check that throws fails with what it threw, in one line.</summary>
    private static string? Failing(IReadinessCheck check)
    {
        try
        {
            return check.Failing();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return $"{check.GetType().Name}: {e.GetType().Name}: {e.Message}";
        }
    }

    private (int, string, string) Ready()
    {
        var failing = services.GetServices<IReadinessCheck>().Select(Failing).OfType<string>().ToList();
        return failing.Count == 0
            ? (200, "text/plain; charset=utf-8", "ready\n")
            : (503, "text/plain; charset=utf-8", string.Concat(failing.Select(f => f + "\n")));
    }

    public async Task StoppingAsync(CancellationToken cancellationToken) => await Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        try
        {
            _listener?.Close();
        }
        catch (HttpListenerException)
        {
            // The managed HttpListener binds the endpoint again to take its prefix out; when another process has taken the
            // freed port meanwhile (port 0 was asked for, so it is any free port), that bind fails: the listener is closed anyway.
        }
        await _serving;
    }
}
