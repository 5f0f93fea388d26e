using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Romana.Host.Ec2;

/// <summary>What the instance metadata service tells one instance about itself (the parts Romana asks for).</summary>
public sealed record InstanceMetadataRecord(string InstanceId, string Mac, string InterfaceId, string SubnetId, string LocalIpv4);

/// <summary>
/// The EC2 instance metadata service for labs and tests, IMDSv2 only: PUT /latest/api/token (with
/// X-aws-ec2-metadata-token-ttl-seconds, 1 to 21600) gives a session token, and every GET under /latest/meta-data/ must
/// carry it in X-aws-ec2-metadata-token, or it is answered 401 as EC2 answers it when IMDSv1 is off. It serves instance-id,
/// mac, local-ipv4 and network/interfaces/macs/MAC/{interface-id, subnet-id, local-ipv4s}. Several instances share one
/// server: each is told its own record, chosen by the address the request comes from (a lab's node namespaces), or the
/// default record when none matches. Listens on loopback unless told otherwise.
/// </summary>
public sealed class ImdsLabServer : IAsyncDisposable
{
    public const string TokenHeader = "X-aws-ec2-metadata-token";
    public const string TtlHeader = "X-aws-ec2-metadata-token-ttl-seconds";

    private readonly HttpListener _listener;
    private readonly Task _acceptLoop;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _tokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<IPAddress, InstanceMetadataRecord> _byCaller = new();
    private int _disposed;
    private int _tokenRequests;
    private int _refused;

    private ImdsLabServer(HttpListener listener, IPEndPoint endPoint)
    {
        _listener = listener;
        EndPoint = endPoint;
        Url = $"http://{endPoint}";
        _acceptLoop = LabHttpListener.AcceptAsync(listener, context => { Serve(context); return Task.CompletedTask; });
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>The endpoint for romana.node.imds.endpoint, e.g. http://127.0.0.1:41234 (no trailing slash).</summary>
    public string Url { get; }

    /// <summary>What a caller whose address has no record of its own is told; null: 404 to everything.</summary>
    public InstanceMetadataRecord? Default { get; set; }

    /// <summary>Tokens handed out so far.</summary>
    public int TokenRequests => _tokenRequests;

    /// <summary>Metadata requests refused for a missing or unknown token.</summary>
    public int Refused => _refused;

    /// <summary>The record told to requests from <paramref name="caller"/> (a lab node's address).</summary>
    public void SetInstance(IPAddress caller, InstanceMetadataRecord record) => _byCaller[caller] = record;

    public static ImdsLabServer Start(IPEndPoint? listen = null)
    {
        listen ??= new IPEndPoint(IPAddress.Loopback, 0);
        var (listener, endPoint) = LabHttpListener.Start(listen);
        return new ImdsLabServer(listener, endPoint);
    }

    private void Serve(HttpListenerContext context)
    {
        try
        {
            var (status, body) = Answer(context.Request);
            var bytes = Encoding.UTF8.GetBytes(body);
            context.Response.StatusCode = status;
            context.Response.ContentType = "text/plain";
            context.Response.ContentLength64 = bytes.Length;
            context.Response.OutputStream.Write(bytes);
            context.Response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException)
        {
            // the caller went away
        }
    }

    private (int Status, string Body) Answer(HttpListenerRequest request)
    {
        var path = request.Url?.AbsolutePath ?? "";
        if (path == "/latest/api/token")
        {
            if (request.HttpMethod != "PUT") return (405, "");
            if (!int.TryParse(request.Headers[TtlHeader], out var ttl) || ttl is < 1 or > 21600) return (400, "");
            var token = Convert.ToBase64String(Guid.NewGuid().ToByteArray());
            _tokens[token] = DateTimeOffset.UtcNow.AddSeconds(ttl);
            Interlocked.Increment(ref _tokenRequests);
            return (200, token);
        }
        if (request.HttpMethod != "GET" || !path.StartsWith("/latest/meta-data/", StringComparison.Ordinal)) return (404, "");
        if (request.Headers[TokenHeader] is not { } given || !_tokens.TryGetValue(given, out var expires)
            || expires < DateTimeOffset.UtcNow)
        {
            Interlocked.Increment(ref _refused);
            return (401, "");
        }
        var caller = request.RemoteEndPoint?.Address;
        var record = (caller is null ? null : _byCaller.GetValueOrDefault(caller)) ?? Default;
        if (record is null) return (404, "");
        var key = path["/latest/meta-data/".Length..].TrimEnd('/');
        var macs = $"network/interfaces/macs/{record.Mac}/";
        var value = key switch
        {
            "instance-id" => record.InstanceId,
            "mac" => record.Mac,
            "local-ipv4" => record.LocalIpv4,
            _ when key == macs + "interface-id" => record.InterfaceId,
            _ when key == macs + "subnet-id" => record.SubnetId,
            _ when key == macs + "local-ipv4s" => record.LocalIpv4,
            _ => null,
        };
        return value is null ? (404, "") : (200, value);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _listener.Close();
        await _acceptLoop.ConfigureAwait(false);
    }
}
