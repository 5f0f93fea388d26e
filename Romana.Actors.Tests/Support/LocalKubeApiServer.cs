using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using k8s;
using k8s.Models;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// A Kubernetes API server in the test process, as KubernetesClient's own tests mock one (on 127.0.0.1, a free port;
/// HttpListener rather than Kestrel, so that the test project needs no ASP.NET Core framework reference — with one,
/// romana.dll run from the test output could not load Microsoft.Extensions.* assemblies):
/// lists (JSON) and watches (one JSON event a line, chunked) of Nodes (<c>/api/v1/nodes</c>) and Pods
/// (<c>/api/v1/pods</c>, with <c>fieldSelector=spec.nodeName=N</c>), from a resourceVersion, with a history of events the
/// way the API server's watch cache keeps one. Controls: change objects (each change is an event with the next
/// resourceVersion), send bookmarks, drop every open watch connection, refuse watches for a while, compact the history (a
/// watch from before it is refused with HTTP 410, or told by an ERROR event with code 410). Every request is recorded.
/// </summary>
public sealed class LocalKubeApiServer : IAsyncDisposable
{
    private readonly HttpListener _listener;
    private readonly Task _accepting;
    private readonly object _gate = new();
    private readonly Dictionary<string, Store> _stores = new()
    {
        ["/api/v1/nodes"] = new Store("NodeList"),
        ["/api/v1/pods"] = new Store("PodList"),
        ["/api/v1/namespaces"] = new Store("NamespaceList"),
        ["/apis/networking.k8s.io/v1/networkpolicies"] = new Store("NetworkPolicyList"),
    };
    private readonly List<OpenWatch> _watches = [];
    private readonly List<Request> _requests = [];
    private long _version = 100;
    private long _compactedTo;
    private bool _refuseWatches;
    private readonly Dictionary<string, (long Version, List<string> Items)> _listSnapshots = [];
    private bool _expireNextContinue;

    /// <summary>A recorded request: its path, whether it watched, and the query parameters Romana sets.</summary>
    public sealed record Request(string Path, bool Watch, string? ResourceVersion, bool AllowWatchBookmarks, string? FieldSelector,
        string? TimeoutSeconds, string? Limit = null, string? Continue = null);

    private sealed record Store(string ListKind)
    {
        public Dictionary<string, IKubernetesObject<V1ObjectMeta>> Objects { get; } = [];
        public List<(long Version, string Type, IKubernetesObject<V1ObjectMeta> Object)> History { get; } = [];
    }

    private sealed record OpenWatch(string Path, string? FieldSelector, Channel<string> Lines, CancellationTokenSource Drop);

    private LocalKubeApiServer()
    {
        for (var attempt = 1; ; attempt++)
        {
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                Url = $"http://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}";
            }
            _listener = new HttpListener();
            _listener.Prefixes.Add(Url + "/");
            try
            {
                _listener.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 10)
            {
                _listener.Close(); // the port was taken meanwhile: another
            }
        }
        _accepting = AcceptAsync();
    }

    public static Task<LocalKubeApiServer> StartAsync() => Task.FromResult(new LocalKubeApiServer());

    public string Url { get; private set; } = "";

    private async Task AcceptAsync()
    {
        while (true)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // closed
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await ServeAsync(context);
                    context.Response.Close();
                }
                catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
                {
                    // the client went away
                }
            });
        }
    }

    /// <summary>KubernetesClient pointed at this server over plain HTTP.</summary>
    public IKubernetes Client() => new k8s.Kubernetes(new KubernetesClientConfiguration { Host = Url });

    public IReadOnlyList<Request> Requests
    {
        get
        {
            lock (_gate) return [.. _requests];
        }
    }

    public IReadOnlyList<Request> Watches(string path) => [.. Requests.Where(r => r.Watch && r.Path == path)];

    public int OpenWatches
    {
        get
        {
            lock (_gate) return _watches.Count;
        }
    }

    public long ResourceVersion
    {
        get
        {
            lock (_gate) return _version;
        }
    }

    // ---- objects -----------------------------------------------------------------------------------------------------

    public static V1Node Node(string name, string internalIp, string? zone = "us-east-1a", string? instance = null, string? uid = null) =>
        new()
        {
            ApiVersion = "v1",
            Kind = "Node",
            Metadata = new V1ObjectMeta
            {
                Name = name,
                Uid = uid ?? Guid.NewGuid().ToString(),
                Labels = zone is null
                    ? new Dictionary<string, string>()
                    : new Dictionary<string, string> { ["topology.kubernetes.io/zone"] = zone },
            },
            Spec = new V1NodeSpec { ProviderID = instance is null ? null : $"aws:///{zone}/{instance}" },
            Status = new V1NodeStatus
            {
                Addresses =
                [
                    new V1NodeAddress { Type = "InternalIP", Address = internalIp },
                    new V1NodeAddress { Type = "Hostname", Address = name },
                ],
            },
        };

    public static V1Pod Pod(string ns, string name, string node, string? uid = null, Dictionary<string, string>? labels = null) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Uid = uid ?? Guid.NewGuid().ToString(), Labels = labels },
        Spec = new V1PodSpec { NodeName = node, Containers = [new V1Container { Name = "c", Image = "pause" }] },
    };

    /// <summary>Adds or changes an object (ADDED or MODIFIED to the watches); returns its new resourceVersion.</summary>
    public long Put(IKubernetesObject<V1ObjectMeta> item)
    {
        lock (_gate)
        {
            var store = StoreOf(item);
            var key = KeyOf(item);
            var type = store.Objects.ContainsKey(key) ? "MODIFIED" : "ADDED";
            item.Metadata.ResourceVersion = (++_version).ToString();
            store.Objects[key] = item;
            Record(store, type, item);
            return _version;
        }
    }

    /// <summary>The object stored under "name" (a Node) or "namespace/name" (a Pod).</summary>
    public T Get<T>(string key) where T : IKubernetesObject<V1ObjectMeta>
    {
        lock (_gate) return (T)_stores[PathOf(typeof(T))].Objects[key];
    }

    /// <summary>Deletes an object (DELETED to the watches); returns the resourceVersion of the deletion.</summary>
    public long Delete(IKubernetesObject<V1ObjectMeta> item)
    {
        lock (_gate)
        {
            var store = StoreOf(item);
            if (!store.Objects.Remove(KeyOf(item), out var gone)) throw new InvalidOperationException($"{KeyOf(item)} is not there");
            gone.Metadata.ResourceVersion = (++_version).ToString();
            Record(store, "DELETED", gone);
            return _version;
        }
    }

    /// <summary>A BOOKMARK at the current resourceVersion to every open watch that asked for bookmarks; returns it.</summary>
    public long Bookmark()
    {
        lock (_gate)
        {
            ++_version;
            foreach (var watch in _watches)
            {
                var kind = _stores[watch.Path].ListKind[..^"List".Length];
                watch.Lines.Writer.TryWrite(
                    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"" + kind + "\",\"apiVersion\":\"v1\","
                    + "\"metadata\":{\"resourceVersion\":\"" + _version + "\"}}}");
            }
            return _version;
        }
    }

    /// <summary>Breaks every open watch connection (the client sees the stream fail, not end).</summary>
    public void DropWatches()
    {
        List<OpenWatch> open;
        lock (_gate) open = [.. _watches];
        foreach (var watch in open) watch.Drop.Cancel();
    }

    /// <summary>While set, a watch request is answered 503 (the API server unreachable for watches).</summary>
    public bool RefuseWatches
    {
        set
        {
            lock (_gate) _refuseWatches = value;
        }
    }

    /// <summary>
    /// Forgets the history up to now: a watch from an older resourceVersion is refused with HTTP 410 Gone. With
    /// <paramref name="tellOpenWatches"/>, every open watch gets an ERROR event with a Status of code 410 and is closed.
    /// </summary>
    public void Compact(bool tellOpenWatches = false)
    {
        lock (_gate)
        {
            _compactedTo = _version;
            if (!tellOpenWatches) return;
            foreach (var watch in _watches)
            {
                watch.Lines.Writer.TryWrite($$"""{"type":"ERROR","object":{{Status410()}}}""");
                watch.Lines.Writer.TryComplete();
            }
        }
    }

    // ---- serving -----------------------------------------------------------------------------------------------------

    private async Task ServeAsync(HttpListenerContext context)
    {
        var path = context.Request.Url!.AbsolutePath;
        var query = context.Request.QueryString;
        var watch = query["watch"] is "true" or "1";
        var fieldSelector = query["fieldSelector"];
        var request = new Request(path, watch, query["resourceVersion"], query["allowWatchBookmarks"] == "true",
            fieldSelector, query["timeoutSeconds"], query["limit"], query["continue"]);
        lock (_gate) _requests.Add(request);
        if (!_stores.TryGetValue(path, out var store))
        {
            context.Response.StatusCode = 404;
            return;
        }
        if (!watch)
        {
            var list = List(store, fieldSelector, query["limit"], query["continue"]);
            context.Response.StatusCode = list is null ? 410 : 200;
            context.Response.ContentType = "application/json";
            await WriteAsync(context, list ?? """
                {"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,
                 "message":"The provided continue parameter is too old"}
                """);
            return;
        }
        await WatchAsync(context, path, store, request);
    }

    /// <summary>
    /// A list, in pages when the client gives a limit: the first page takes a snapshot, later ones read it by their continue
    /// token, as the API server serves every page from the first page's resourceVersion. Null: the token expired.
    /// </summary>
    private string? List(Store store, string? fieldSelector, string? limitText, string? continueToken)
    {
        lock (_gate)
        {
            (long Version, List<string> Items) snapshot;
            var offset = 0;
            if (continueToken is null)
                snapshot = (_version,
                    [.. store.Objects.Values.Where(o => Matches(o, fieldSelector)).Select(o => KubernetesJson.Serialize(o))]);
            else if (!_expireNextContinue && continueToken.Split(':') is [var id, var at]
                && _listSnapshots.TryGetValue(id, out var kept))
                (snapshot, offset) = (kept, int.Parse(at, System.Globalization.CultureInfo.InvariantCulture));
            else
            {
                _expireNextContinue = false;
                return null;
            }
            var limit = int.TryParse(limitText, out var l) && l > 0 ? l : int.MaxValue;
            var page = snapshot.Items.Skip(offset).Take(limit).ToList();
            var next = "";
            if (offset + page.Count < snapshot.Items.Count)
            {
                var id = continueToken?.Split(':')[0] ?? Guid.NewGuid().ToString("N");
                _listSnapshots[id] = snapshot;
                next = $"{id}:{offset + page.Count}";
            }
            return $$"""{"kind":"{{store.ListKind}}","apiVersion":"v1","metadata":{"resourceVersion":"{{snapshot.Version}}",""" +
                $$"""
                "continue":"{{next}}"},"items":[{{string.Join(",", page)}}]}
                """;
        }
    }

    /// <summary>
    /// The next page asked by a continue token is refused with 410 Expired, once, as when the API server compacted past the
    /// list's snapshot between two pages.
    /// </summary>
    public bool ExpireNextContinue
    {
        set
        {
            lock (_gate) _expireNextContinue = value;
        }
    }

    private static async Task WriteAsync(HttpListenerContext context, string text)
    {
        if (text.Length == 0) return; // a chunk of no bytes would end a chunked response
        var bytes = Encoding.UTF8.GetBytes(text);
        await context.Response.OutputStream.WriteAsync(bytes);
        await context.Response.OutputStream.FlushAsync();
    }

    private async Task WatchAsync(HttpListenerContext context, string path, Store store, Request request)
    {
        var from = long.TryParse(request.ResourceVersion, out var version) ? version : 0;
        OpenWatch open;
        List<string> replay;
        int refusal;
        lock (_gate)
        {
            refusal = _refuseWatches ? 503 : from < _compactedTo ? 410 : 0;
            replay = [];
            open = null!;
            if (refusal == 0)
            {
                replay = [.. store.History.Where(e => e.Version > from && Matches(e.Object, request.FieldSelector))
                    .Select(e => Line(e.Type, e.Object))];
                open = new OpenWatch(path, request.FieldSelector, Channel.CreateUnbounded<string>(), new CancellationTokenSource());
                _watches.Add(open);
            }
        }
        if (refusal != 0)
        {
            context.Response.StatusCode = refusal;
            context.Response.ContentType = "application/json";
            if (refusal == 410) await WriteAsync(context, Status410());
            return;
        }
        var timeout = TimeSpan.FromSeconds(int.TryParse(request.TimeoutSeconds, out var seconds) ? seconds : 300);
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(open.Drop.Token);
        ending.CancelAfter(timeout);
        try
        {
            context.Response.ContentType = "application/json";
            context.Response.SendChunked = true;
            await WriteAsync(context, string.Concat(replay.Select(line => line + "\n")));
            await foreach (var line in open.Lines.Reader.ReadAllAsync(ending.Token)) await WriteAsync(context, line + "\n");
        }
        catch (OperationCanceledException)
        {
            if (open.Drop.IsCancellationRequested) context.Response.Abort(); // a dropped connection, not a clean end
        }
        finally
        {
            lock (_gate) _watches.Remove(open);
        }
    }

    private void Record(Store store, string type, IKubernetesObject<V1ObjectMeta> item)
    {
        store.History.Add((_version, type, item));
        var path = _stores.Single(s => s.Value == store).Key;
        foreach (var watch in _watches.Where(w => w.Path == path && Matches(item, w.FieldSelector)))
            watch.Lines.Writer.TryWrite(Line(type, item));
    }

    private static string Line(string type, IKubernetesObject<V1ObjectMeta> item) =>
        $$"""{"type":"{{type}}","object":{{KubernetesJson.Serialize(item)}}}""";

    private static string Status410() =>
        """{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",""" +
        "\"message\":\"too old resource version\",\"reason\":\"Expired\",\"code\":410}";

    private static bool Matches(IKubernetesObject<V1ObjectMeta> item, string? fieldSelector) =>
        fieldSelector is null || !fieldSelector.StartsWith("spec.nodeName=", StringComparison.Ordinal)
            || (item is V1Pod pod && pod.Spec?.NodeName == fieldSelector["spec.nodeName=".Length..]);

    private Store StoreOf(IKubernetesObject<V1ObjectMeta> item) => _stores[PathOf(item.GetType())];

    private static string PathOf(Type kind) =>
        kind == typeof(V1Node) ? "/api/v1/nodes"
        : kind == typeof(V1Pod) ? "/api/v1/pods"
        : kind == typeof(V1Namespace) ? "/api/v1/namespaces"
        : kind == typeof(V1NetworkPolicy) ? "/apis/networking.k8s.io/v1/networkpolicies"
        : throw new ArgumentException($"{kind.Name} is not served here");

    private static string KeyOf(IKubernetesObject<V1ObjectMeta> item) =>
        item.Metadata.NamespaceProperty is { } ns ? $"{ns}/{item.Metadata.Name}" : item.Metadata.Name;

    public async ValueTask DisposeAsync()
    {
        DropWatches();
        _listener.Close();
        await _accepting;
    }
}
