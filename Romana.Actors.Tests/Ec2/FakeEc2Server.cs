using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using System.Web;
using System.Xml.Linq;

namespace Romana.Actors.Tests.Ec2;

/// <summary>One request received by <see cref="FakeEc2Server"/>, in arrival order.</summary>
public sealed record Ec2Call(string Action, IReadOnlyDictionary<string, string> Parameters);

/// <summary>
/// In-memory HTTP server speaking enough of the EC2 Query API (version 2016-11-15) for the real
/// AmazonEC2Client to manage VPC route tables: DescribeRouteTables, CreateRoute, ReplaceRoute,
/// DeleteRoute and ModifyNetworkInterfaceAttribute. Listens on 127.0.0.1 only and accepts any
/// credentials. Faults (throttling, random 503s, latency) can be switched on at any time.
/// </summary>
public sealed class FakeEc2Server : IDisposable, IAsyncDisposable
{
    public const string XmlNamespace = "http://ec2.amazonaws.com/doc/2016-11-15/";
    public const string OwnerId = "123456789012";
    public const int DefaultRouteLimit = 50;

    private static readonly XNamespace Ns = XmlNamespace;
    private static readonly string[] TargetParameters = ["NetworkInterfaceId", "GatewayId", "InstanceId"];
    private static readonly HashSet<string> MutatingActions =
        ["CreateRoute", "ReplaceRoute", "DeleteRoute", "ModifyNetworkInterfaceAttribute"];

    private readonly object _gate = new();
    private readonly List<RouteTable> _tables = [];
    private readonly Dictionary<string, bool> _sourceDestCheck = new(StringComparer.Ordinal);
    private readonly List<Ec2Call> _calls = [];
    private readonly Random _random;
    private readonly Dictionary<string, Func<QueryParams, IEnumerable<XElement>>> _handlers;
    private readonly HttpListener _listener;
    private readonly Task _acceptLoop;
    private TokenBucket? _throttle;
    private double _errorRate;
    private TimeSpan _latency;
    private int _associationCounter;
    private int _disposed;

    private FakeEc2Server(int seed)
    {
        _random = new Random(seed);
        _handlers = new(StringComparer.Ordinal)
        {
            ["DescribeRouteTables"] = DescribeRouteTables,
            ["CreateRoute"] = CreateRoute,
            ["ReplaceRoute"] = ReplaceRoute,
            ["DeleteRoute"] = DeleteRoute,
            ["ModifyNetworkInterfaceAttribute"] = ModifyNetworkInterfaceAttribute,
        };
        (_listener, Url) = StartListener();
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Starts a server on a free loopback port. The seed drives the random error injection.</summary>
    public static FakeEc2Server Start(int seed = 12345) => new(seed);

    /// <summary>Base URL, e.g. "http://127.0.0.1:41234/"; use it as AmazonEC2Config.ServiceURL.</summary>
    public string Url { get; }

    // ---------------------------------------------------------------- arrange & inspect

    public void AddRouteTable(string id, string vpcId, int limit = DefaultRouteLimit,
        IEnumerable<string>? subnetIds = null, IDictionary<string, string>? tags = null)
    {
        lock (_gate)
        {
            if (FindTable(id) is not null)
                throw new InvalidOperationException($"Route table {id} already exists.");
            var table = new RouteTable(id, vpcId) { Limit = limit };
            foreach (var subnetId in subnetIds ?? [])
                table.Associations.Add(new Association($"rtbassoc-{++_associationCounter:x17}", subnetId));
            foreach (var (key, value) in tags ?? new Dictionary<string, string>())
                table.Tags[key] = value;
            _tables.Add(table);
        }
    }

    /// <summary>
    /// Puts a route directly into a table, bypassing limits and faults. The target kind follows its
    /// prefix: "eni-" network interface, "i-" instance, anything else (e.g. "igw-", "local") a gateway.
    /// </summary>
    public void AddRoute(string tableId, string cidr, string target)
    {
        var canonical = CanonicalCidr(cidr) ?? throw new ArgumentException($"Malformed CIDR {cidr}.", nameof(cidr));
        lock (_gate)
        {
            var table = RequireTable(tableId);
            if (table.FindRoute(canonical) is not null)
                throw new InvalidOperationException($"Route {canonical} already exists in {tableId}.");
            var origin = target == "local" ? "CreateRouteTable" : "CreateRoute";
            table.Routes.Add(new Route(canonical, target, origin));
        }
    }

    public void SetLimit(string tableId, int limit)
    {
        lock (_gate) RequireTable(tableId).Limit = limit;
    }

    public IReadOnlyList<(string Cidr, string Target)> RoutesOf(string tableId)
    {
        lock (_gate) return RequireTable(tableId).Routes.Select(r => (r.Cidr, r.Target)).ToList();
    }

    /// <summary>Last SourceDestCheck value set through the API, or null if never modified.</summary>
    public bool? SourceDestCheck(string eni)
    {
        lock (_gate) return _sourceDestCheck.TryGetValue(eni, out var value) ? value : null;
    }

    /// <summary>Snapshot of every request received (including failed ones), oldest first.</summary>
    public IReadOnlyList<Ec2Call> Calls
    {
        get { lock (_gate) return _calls.ToList(); }
    }

    /// <summary>Number of requests received per action since the last <see cref="ClearCalls"/>.</summary>
    public IReadOnlyDictionary<string, int> CallCounts
    {
        get { lock (_gate) return _calls.GroupBy(c => c.Action).ToDictionary(g => g.Key, g => g.Count()); }
    }

    public int CountOf(string action)
    {
        lock (_gate) return _calls.Count(c => c.Action == action);
    }

    public void ClearCalls()
    {
        lock (_gate) _calls.Clear();
    }

    // ---------------------------------------------------------------- fault injection

    /// <summary>
    /// Token bucket for mutating calls only; starts full. An empty bucket answers
    /// HTTP 503 RequestLimitExceeded, as real EC2 does.
    /// </summary>
    public void SetThrottle(int burst, double refillPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(burst);
        ArgumentOutOfRangeException.ThrowIfNegative(refillPerSecond);
        lock (_gate) _throttle = new TokenBucket(burst, refillPerSecond);
    }

    public void DisableThrottle()
    {
        lock (_gate) _throttle = null;
    }

    /// <summary>Probability (0..1) that any call is answered with HTTP 503 "Unavailable".</summary>
    public void SetErrorRate(double probability)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(probability);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(probability, 1.0);
        lock (_gate) _errorRate = probability;
    }

    /// <summary>Delay added before every call is answered.</summary>
    public void SetLatency(TimeSpan latency)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(latency, TimeSpan.Zero);
        lock (_gate) _latency = latency;
    }

    // ---------------------------------------------------------------- lifetime

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
            return;
        _listener.Close();
        await _acceptLoop.ConfigureAwait(false);
    }

    // HttpListener cannot bind port 0, so probe for a free port and retry if someone takes it first.
    private static (HttpListener Listener, string Url) StartListener()
    {
        for (var attempt = 1; ; attempt++)
        {
            var url = $"http://127.0.0.1:{FreeLoopbackPort()}/";
            var listener = new HttpListener();
            listener.Prefixes.Add(url);
            try
            {
                listener.Start();
                return (listener, url);
            }
            catch (HttpListenerException) when (attempt < 10)
            {
                listener.Close();
            }
        }
    }

    private static int FreeLoopbackPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // listener closed
            }
            _ = Task.Run(() => ServeAsync(context));
        }
    }

    // ---------------------------------------------------------------- request pipeline

    private async Task ServeAsync(HttpListenerContext context)
    {
        try
        {
            var parameters = await ReadParametersAsync(context.Request).ConfigureAwait(false);
            var action = parameters.GetValueOrDefault("Action", "");
            var latency = Record(action, parameters);
            if (latency > TimeSpan.Zero)
                await Task.Delay(latency).ConfigureAwait(false);
            var (status, body) = Answer(action, new QueryParams(parameters));
            await WriteAsync(context.Response, status, body).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException)
        {
            // Client went away or the server is shutting down; nothing left to answer.
        }
    }

    private static async Task<Dictionary<string, string>> ReadParametersAsync(HttpListenerRequest request)
    {
        using var reader = new StreamReader(request.InputStream, Encoding.UTF8);
        var body = await reader.ReadToEndAsync().ConfigureAwait(false);
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var source in new[] { request.Url?.Query.TrimStart('?') ?? "", body })
        {
            var parsed = HttpUtility.ParseQueryString(source);
            foreach (var key in parsed.AllKeys.OfType<string>())
                parameters[key] = parsed[key] ?? "";
        }
        return parameters;
    }

    private TimeSpan Record(string action, Dictionary<string, string> parameters)
    {
        lock (_gate)
        {
            _calls.Add(new Ec2Call(action, parameters.AsReadOnly()));
            return _latency;
        }
    }

    private (int Status, XElement Body) Answer(string action, QueryParams parameters)
    {
        var requestId = Guid.NewGuid().ToString();
        try
        {
            lock (_gate)
            {
                var content = Dispatch(action, parameters);
                return (200, new XElement(Ns + action + "Response", new XElement(Ns + "requestId", requestId), content));
            }
        }
        catch (Ec2Fault fault)
        {
            return (fault.Status, ErrorBody(fault.Code, fault.Message, requestId));
        }
        catch (Exception bug)
        {
            // A bug in the fake must still answer, or the SDK would hang until its timeout.
            return (500, ErrorBody("InternalError", bug.ToString(), requestId));
        }
    }

    private List<XElement> Dispatch(string action, QueryParams parameters)
    {
        if (_errorRate > 0 && _random.NextDouble() < _errorRate)
            throw new Ec2Fault(503, "Unavailable", "The server is unavailable. Please try again shortly.");
        if (!_handlers.TryGetValue(action, out var handler))
            throw new Ec2Fault(400, "InvalidAction", $"The action {action} is not valid for this web service.");
        if (MutatingActions.Contains(action) && _throttle is { } bucket && !bucket.TryTake())
            throw new Ec2Fault(503, "RequestLimitExceeded", "Request limit exceeded.");
        return handler(parameters).ToList();
    }

    private static XElement ErrorBody(string code, string message, string requestId) =>
        new("Response",
            new XElement("Errors",
                new XElement("Error", new XElement("Code", code), new XElement("Message", message))),
            new XElement("RequestID", requestId));

    private static async Task WriteAsync(HttpListenerResponse response, int status, XElement body)
    {
        var bytes = Encoding.UTF8.GetBytes(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + body.ToString(SaveOptions.DisableFormatting));
        response.StatusCode = status;
        response.ContentType = "text/xml;charset=UTF-8";
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
        response.Close();
    }

    // ---------------------------------------------------------------- actions (called under _gate)

    private IEnumerable<XElement> DescribeRouteTables(QueryParams p)
    {
        var ids = p.List("RouteTableId");
        var missing = ids.FirstOrDefault(id => FindTable(id) is null);
        if (missing is not null)
            throw TableNotFound(missing);
        var filters = p.Filters().Select(ToTableFilter).ToList();
        var matching = _tables
            .Where(t => ids.Count == 0 || ids.Contains(t.Id))
            .Where(t => filters.All(f => f.Matches(t)))
            .ToList();

        var offset = ParseNextToken(p.Get("NextToken"));
        var pageSize = p.PositiveInt("MaxResults") ?? int.MaxValue;
        var page = matching.Skip(offset).Take(pageSize).ToList();
        var next = offset + page.Count;

        yield return El("routeTableSet", page.Select(RouteTableXml));
        if (next < matching.Count)
            yield return El("nextToken", $"page-{next}");
    }

    private IEnumerable<XElement> CreateRoute(QueryParams p)
    {
        var cidr = RequireCidr(p);
        var target = RequireTarget(p);
        var table = RequireTable(p);
        if (table.FindRoute(cidr) is not null)
            throw new Ec2Fault(400, "RouteAlreadyExists",
                $"The route identified by {cidr} already exists.");
        if (table.Routes.Count(r => r.Target != "local") >= table.Limit)
            throw new Ec2Fault(400, "RouteLimitExceeded",
                $"The maximum number of routes has been reached for route table {table.Id}.");
        table.Routes.Add(new Route(cidr, target, "CreateRoute"));
        return ReturnTrue();
    }

    private IEnumerable<XElement> ReplaceRoute(QueryParams p)
    {
        var cidr = RequireCidr(p);
        var target = RequireTarget(p);
        var table = RequireTable(p);
        var index = table.Routes.FindIndex(r => r.Cidr == cidr);
        if (index < 0)
            throw RouteNotFound(cidr, table.Id);
        table.Routes[index] = table.Routes[index] with { Target = target };
        return ReturnTrue();
    }

    private IEnumerable<XElement> DeleteRoute(QueryParams p)
    {
        var cidr = RequireCidr(p);
        var table = RequireTable(p);
        var route = table.FindRoute(cidr) ?? throw RouteNotFound(cidr, table.Id);
        if (route.Target == "local")
            throw new Ec2Fault(400, "InvalidParameterValue",
                $"cannot remove local route {cidr} in route table {table.Id}");
        table.Routes.Remove(route);
        return ReturnTrue();
    }

    private IEnumerable<XElement> ModifyNetworkInterfaceAttribute(QueryParams p)
    {
        var eni = p.Require("NetworkInterfaceId");
        if (p.Get("SourceDestCheck.Value") is { } raw)
        {
            if (!bool.TryParse(raw, out var value))
                throw InvalidValue(raw, "SourceDestCheck");
            _sourceDestCheck[eni] = value;
        }
        return ReturnTrue();
    }

    // ---------------------------------------------------------------- helpers

    private static readonly Dictionary<string, Func<RouteTable, IEnumerable<string>>> FilterFields =
        new(StringComparer.Ordinal)
        {
            ["route-table-id"] = t => [t.Id],
            ["vpc-id"] = t => [t.VpcId],
            ["owner-id"] = _ => [OwnerId],
            ["tag-key"] = t => t.Tags.Keys,
            ["tag-value"] = t => t.Tags.Values,
            ["association.subnet-id"] = t => t.Associations.Select(a => a.SubnetId),
            ["association.route-table-association-id"] = t => t.Associations.Select(a => a.Id),
            ["association.route-table-id"] = t => t.Associations.Select(_ => t.Id),
            ["association.main"] = t => t.Associations.Select(_ => "false"),
            ["route.destination-cidr-block"] = t => t.Routes.Select(r => r.Cidr),
            ["route.network-interface-id"] = t => t.Routes.Select(r => r.Target).Where(IsNetworkInterface),
            ["route.instance-id"] = t => t.Routes.Select(r => r.Target).Where(IsInstance),
            ["route.gateway-id"] = t => t.Routes.Select(r => r.Target).Where(IsGateway),
            ["route.origin"] = t => t.Routes.Select(r => r.Origin),
            ["route.state"] = t => t.Routes.Select(_ => "active"),
        };

    private static TableFilter ToTableFilter((string Name, List<string> Values) filter)
    {
        var field = filter.Name.StartsWith("tag:", StringComparison.Ordinal)
            ? TagField(filter.Name["tag:".Length..])
            : FilterFields.GetValueOrDefault(filter.Name)
              ?? throw new Ec2Fault(400, "InvalidParameterValue", $"The filter '{filter.Name}' is invalid");
        return new TableFilter(field, filter.Values.Select(Glob).ToList());
    }

    private static Func<RouteTable, IEnumerable<string>> TagField(string key) =>
        t => t.Tags.TryGetValue(key, out var value) ? [value] : [];

    // EC2 filter values accept * and ? wildcards.
    private static Regex Glob(string pattern) =>
        new("^" + Regex.Escape(pattern)
                .Replace(@"\*", ".*", StringComparison.Ordinal)
                .Replace(@"\?", ".", StringComparison.Ordinal) + "$",
            RegexOptions.Singleline);

    private static XElement RouteTableXml(RouteTable table) =>
        El("item",
            El("routeTableId", table.Id),
            El("vpcId", table.VpcId),
            El("ownerId", OwnerId),
            El("routeSet", table.Routes.Select(RouteXml)),
            El("associationSet", table.Associations.Select(a => El("item",
                El("routeTableAssociationId", a.Id),
                El("routeTableId", table.Id),
                El("subnetId", a.SubnetId),
                El("main", "false"),
                El("associationState", El("state", "associated"))))),
            El("propagatingVgwSet"),
            El("tagSet", table.Tags.Select(t => El("item", El("key", t.Key), El("value", t.Value)))));

    private static XElement RouteXml(Route route) =>
        El("item",
            El("destinationCidrBlock", route.Cidr),
            TargetXml(route.Target),
            El("state", "active"),
            El("origin", route.Origin));

    private static IEnumerable<XElement> TargetXml(string target)
    {
        if (IsNetworkInterface(target))
            return [El("networkInterfaceId", target)];
        if (IsInstance(target))
            return [El("instanceId", target), El("instanceOwnerId", OwnerId)];
        return [El("gatewayId", target)];
    }

    private static bool IsNetworkInterface(string target) => target.StartsWith("eni-", StringComparison.Ordinal);

    private static bool IsInstance(string target) => target.StartsWith("i-", StringComparison.Ordinal);

    private static bool IsGateway(string target) => !IsNetworkInterface(target) && !IsInstance(target);

    private static XElement El(string name, params object?[] content) => new(Ns + name, content);

    private static IEnumerable<XElement> ReturnTrue() => [El("return", "true")];

    private RouteTable? FindTable(string id) => _tables.Find(t => t.Id == id);

    private RouteTable RequireTable(string id) =>
        FindTable(id) ?? throw new KeyNotFoundException($"No route table {id} in the fake.");

    private RouteTable RequireTable(QueryParams p)
    {
        var id = p.Require("RouteTableId");
        return FindTable(id) ?? throw TableNotFound(id);
    }

    private static string RequireCidr(QueryParams p)
    {
        var raw = p.Require("DestinationCidrBlock");
        return CanonicalCidr(raw) ?? throw new Ec2Fault(400, "InvalidParameterValue",
            $"Value ({raw}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block.");
    }

    private static string RequireTarget(QueryParams p)
    {
        var targets = TargetParameters.Select(p.Get).OfType<string>().ToList();
        return targets.Count switch
        {
            1 => targets[0],
            0 => throw new Ec2Fault(400, "MissingParameter",
                "The request must contain exactly one of gatewayId, networkInterfaceId or instanceId"),
            _ => throw new Ec2Fault(400, "InvalidParameterCombination",
                "The request must contain exactly one of gatewayId, networkInterfaceId or instanceId"),
        };
    }

    // Real EC2 rejects host bits beyond the prefix; IPNetwork.TryParse does the same.
    private static string? CanonicalCidr(string raw) =>
        IPNetwork.TryParse(raw, out var network) && network.BaseAddress.AddressFamily == AddressFamily.InterNetwork
            ? network.ToString()
            : null;

    private static int ParseNextToken(string? token)
    {
        if (token is null)
            return 0;
        if (token.StartsWith("page-", StringComparison.Ordinal) && int.TryParse(token["page-".Length..], out var offset) && offset >= 0)
            return offset;
        throw new Ec2Fault(400, "InvalidPaginationToken", $"Invalid pagination token: {token}");
    }

    private static Ec2Fault TableNotFound(string id) =>
        new(400, "InvalidRouteTableID.NotFound", $"The routeTable ID '{id}' does not exist");

    private static Ec2Fault RouteNotFound(string cidr, string tableId) =>
        new(400, "InvalidRoute.NotFound", $"no route with destination-cidr-block {cidr} in route table {tableId}");

    private static Ec2Fault InvalidValue(string value, string parameter) =>
        new(400, "InvalidParameterValue", $"Value ({value}) for parameter {parameter} is invalid.");

    // ---------------------------------------------------------------- model

    private sealed class RouteTable(string id, string vpcId)
    {
        public string Id { get; } = id;
        public string VpcId { get; } = vpcId;
        public int Limit { get; set; } = DefaultRouteLimit;
        public List<Association> Associations { get; } = [];
        public Dictionary<string, string> Tags { get; } = new(StringComparer.Ordinal);
        public List<Route> Routes { get; } = [];

        public Route? FindRoute(string cidr) => Routes.Find(r => r.Cidr == cidr);
    }

    private sealed record Route(string Cidr, string Target, string Origin);

    private sealed record Association(string Id, string SubnetId);

    // Values of one filter are OR-ed; the server AND-s the filters.
    private sealed record TableFilter(Func<RouteTable, IEnumerable<string>> Field, IReadOnlyList<Regex> Patterns)
    {
        public bool Matches(RouteTable table) => Field(table).Any(c => Patterns.Any(p => p.IsMatch(c)));
    }

    private sealed class Ec2Fault(int status, string code, string message) : Exception(message)
    {
        public int Status { get; } = status;
        public string Code { get; } = code;
    }

    private sealed class TokenBucket(int capacity, double refillPerSecond)
    {
        private double _tokens = capacity;
        private long _lastRefill = Stopwatch.GetTimestamp();

        public bool TryTake()
        {
            var now = Stopwatch.GetTimestamp();
            _tokens = Math.Min(capacity, _tokens + Stopwatch.GetElapsedTime(_lastRefill, now).TotalSeconds * refillPerSecond);
            _lastRefill = now;
            if (_tokens < 1)
                return false;
            _tokens -= 1;
            return true;
        }
    }

    /// <summary>EC2 Query parameters: flat names, lists as Name.N, filters as Filter.N.Name / Filter.N.Value.M.</summary>
    private sealed class QueryParams(IReadOnlyDictionary<string, string> values)
    {
        public string? Get(string name) => values.TryGetValue(name, out var value) ? value : null;

        public string Require(string name) =>
            Get(name) is { Length: > 0 } value
                ? value
                : throw new Ec2Fault(400, "MissingParameter", $"The request must contain the parameter {name}");

        public int? PositiveInt(string name)
        {
            var raw = Get(name);
            if (raw is null)
                return null;
            return int.TryParse(raw, out var value) && value > 0 ? value : throw InvalidValue(raw, name);
        }

        public List<string> List(string prefix) => Indexed(prefix).Select(i => values[$"{prefix}.{i}"]).ToList();

        public List<(string Name, List<string> Values)> Filters() =>
            Indexed("Filter", ".Name").Select(i => (values[$"Filter.{i}.Name"], List($"Filter.{i}.Value"))).ToList();

        // Indices N for which "{prefix}.N{suffix}" is present, in numeric order.
        private IEnumerable<int> Indexed(string prefix, string suffix = "") =>
            values.Keys
                .Where(k => k.Length > prefix.Length + 1 + suffix.Length
                    && k.StartsWith(prefix + ".", StringComparison.Ordinal)
                    && k.EndsWith(suffix, StringComparison.Ordinal))
                .Select(k => k[(prefix.Length + 1)..(k.Length - suffix.Length)])
                .Select(n => int.TryParse(n, out var i) ? i : -1)
                .Where(i => i >= 0)
                .Order();
    }
}
