using System.Collections.Immutable;
using System.Net;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Management.Cluster.Bootstrap.ContactPoint;
using Newtonsoft.Json;

namespace Romana.Host.Kubernetes;

/// <summary>
/// The contact point that cluster bootstrap asks on every daemon pod found: <c>GET /bootstrap/seed-nodes</c> on the
/// management port, answered as Akka.Management's own route answers it (the same JSON, from the same protocol classes):
/// this member's address and the members it sees reachable and Joining, Up or WeaklyUp (at most five), or none while this
/// member is not in a cluster or is leaving one.
/// <para>
/// Romana's own (HttpListener) because Akka.Management 1.5.73 serves its routes through Akka.Http.Shim, built against
/// Ceen.Httpd 0.9.9, and the Ceen.Httpd served here is 0.9.10, whose <c>HttpServer.ListenAsync</c> takes an EndPoint
/// where 0.9.9's took an IPEndPoint: Akka.Management's HTTP endpoint fails to start with a MissingMethodException.
/// </para>
/// </summary>
public sealed class BootstrapContactPoint : IDisposable
{
    public const string SeedNodesPath = "/bootstrap/seed-nodes";
    private const int MaxSeedNodesToExpose = 5;

    private readonly ActorSystem _system;
    private readonly HttpListener _listener = new();
    private readonly ILoggingAdapter _log;

    private BootstrapContactPoint(ActorSystem system, Uri baseUri)
    {
        _system = system;
        BaseUri = baseUri;
        _log = Logging.GetLogger(system, typeof(BootstrapContactPoint));
        _listener.Prefixes.Add(baseUri.ToString());
    }

    /// <summary>http://host:port/, as other members reach it (and as bootstrap compares it with the pods found).</summary>
    public Uri BaseUri { get; }

    /// <summary>Listens on <paramref name="host"/>:<paramref name="port"/> and serves until disposed.</summary>
    public static BootstrapContactPoint Start(ActorSystem system, string host, int port)
    {
        var contactPoint = new BootstrapContactPoint(system, new UriBuilder("http", host, port, "/").Uri);
        try
        {
            contactPoint._listener.Start();
        }
        catch (HttpListenerException e)
        {
            contactPoint._listener.Close();
            throw new InvalidOperationException(
                $"romana.cluster.bootstrap.management-port: cannot listen on {host}:{port} ({e.Message})", e);
        }
        _ = contactPoint.ServeAsync();
        contactPoint._log.Info("Cluster bootstrap contact point: {0}{1}", contactPoint.BaseUri, SeedNodesPath.TrimStart('/'));
        return contactPoint;
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            try
            {
                var (status, body) = context.Request.HttpMethod == "GET" && context.Request.Url?.AbsolutePath == SeedNodesPath
                    ? (200, SeedNodesJson(Cluster.Get(_system)))
                    : (404, "{\"error\":\"not found\"}");
                var bytes = Encoding.UTF8.GetBytes(body);
                context.Response.StatusCode = status;
                context.Response.ContentType = "application/json";
                context.Response.ContentLength64 = bytes.Length;
                await context.Response.OutputStream.WriteAsync(bytes);
                context.Response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
            {
                context.Response.Abort();
            }
        }
    }

    /// <summary>What Akka.Management's HttpClusterBootstrapRoutes answers, serialized the same way (Newtonsoft.Json).</summary>
    public static string SeedNodesJson(Cluster cluster)
    {
        var self = cluster.SelfMember;
        if (self.Status is MemberStatus.Leaving or MemberStatus.Exiting or MemberStatus.Down or MemberStatus.Removed)
            return JsonConvert.SerializeObject(new HttpBootstrapJsonProtocol.SeedNodes(self.UniqueAddress.Address,
                ImmutableList<HttpBootstrapJsonProtocol.ClusterMember>.Empty));
        var state = cluster.State;
        var members = state.Members
            .Where(m => !state.Unreachable.Contains(m) && m.Status is MemberStatus.Joining or MemberStatus.Up or MemberStatus.WeaklyUp)
            .Take(MaxSeedNodesToExpose)
            .Select(m => new HttpBootstrapJsonProtocol.ClusterMember(m.UniqueAddress.Address, m.UniqueAddress.Uid, m.Status, m.Roles))
            .ToImmutableList();
        return JsonConvert.SerializeObject(new HttpBootstrapJsonProtocol.SeedNodes(self.UniqueAddress.Address, members));
    }

    public void Dispose() => _listener.Close();
}
