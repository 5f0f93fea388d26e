using System.Collections.Immutable;
using System.Text.RegularExpressions;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Host.Ec2;

/// <summary>
/// EC2's VPC route tables in memory, as the route manager sees them through the EC2 API: tables with their VPC, subnet
/// associations, tags, routes (target and origin, the VPC's local route) and route limit, and each network interface's
/// source/destination check. Calls come in as EC2 Query API actions (<see cref="CallAsync"/>) and fail with EC2's error
/// codes and statuses as <see cref="Ec2Error"/>. Every call is recorded, in order. Faults: a token bucket for mutating
/// calls (<see cref="Throttle"/>, off unless set), random 503s from a seeded generator (<see cref="ErrorRate"/>), and
/// latency awaited through <see cref="Delay"/> (virtual time in the simulation). Time comes from an <see cref="IClock"/>.
/// The simulation and actor tests use it in-process (<see cref="Ec2LabRouteTables"/>); <c>romana ec2 serve</c> and the wire
/// tests put it behind HTTP (<see cref="Ec2QueryApiServer"/>). Thread-safe: one lock around all state.
/// </summary>
public sealed class Ec2Lab
{
    public const string LocalTarget = "local";
    public const string AccountId = "123456789012";
    public const int DefaultRouteLimit = 50;
    public const int DefaultSeed = 12345;
    public const string DefaultVpcId = "vpc-lab";

    /// <summary>The actions that change something; only these draw from the token bucket, as in EC2.</summary>
    public static readonly IReadOnlySet<string> MutatingActions =
        new HashSet<string>(["CreateRoute", "ReplaceRoute", "DeleteRoute", "ModifyNetworkInterfaceAttribute"], StringComparer.Ordinal);

    private readonly object _gate = new();
    private readonly Dictionary<string, Func<Ec2QueryParameters, Ec2Answer>> _actions;
    private readonly OrderedDictionary<string, Table> _tables = new(StringComparer.Ordinal);
    private readonly Dictionary<string, bool> _sourceDestCheck = new(StringComparer.Ordinal);
    private readonly Queue<Ec2Call> _calls = new();
    private readonly int _callLogCapacity;
    private readonly IClock _clock;
    private readonly Random _random;
    private Ec2Throttle? _throttle;
    private double _tokens;
    private DateTimeOffset _refilled;
    private double _errorRate;
    private TimeSpan _latency;
    private Func<TimeSpan, Task> _delay = latency => Task.Delay(latency);
    private int _associationCounter;
    private long _callsReceived;

    /// <param name="clock">Refills the token bucket; the system clock unless given.</param>
    /// <param name="seed">Seeds the generator that decides which calls fail under <see cref="ErrorRate"/>.</param>
    /// <param name="callLogCapacity">The call log keeps this many of the latest calls (a long-running server needs a bound).</param>
    public Ec2Lab(IClock? clock = null, int seed = DefaultSeed, int callLogCapacity = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(callLogCapacity);
        _clock = clock ?? SystemClock.Instance;
        _random = new Random(seed);
        _callLogCapacity = callLogCapacity;
        _actions = new(StringComparer.Ordinal)
        {
            ["DescribeRouteTables"] = DescribeRouteTables,
            ["CreateRoute"] = CreateRoute,
            ["ReplaceRoute"] = ReplaceRoute,
            ["DeleteRoute"] = DeleteRoute,
            ["ModifyNetworkInterfaceAttribute"] = ModifyNetworkInterfaceAttribute,
        };
    }

    /// <summary>
    /// Raised after every change to a table's routes, whether through the API or <see cref="PutRoute"/>/<see cref="RemoveRoute"/>:
    /// the seam where the lab mirrors EC2's tables into kernel routing tables. Raised under the lab's lock, so handlers see the
    /// changes in the order they happened; a handler must be quick and must not wait for another thread that uses the lab.
    /// </summary>
    public event Action<Ec2RouteChange>? RouteChanged;

    /// <summary>
    /// Raised when ModifyNetworkInterfaceAttribute sets an ENI's source/destination check (ENI id, on), under the lab's lock
    /// as <see cref="RouteChanged"/>: the seam where <c>romana lab</c>'s router enforces the check.
    /// </summary>
    public event Action<string, bool>? SourceDestCheckChanged;

    // ---- arrange ---------------------------------------------------------------------------------------------------

    /// <summary>A table; with <paramref name="vpcCidr"/> it starts with the VPC's local route, as EC2 creates every table.</summary>
    public void AddRouteTable(string id, string vpcId = DefaultVpcId, int routeLimit = DefaultRouteLimit,
        IEnumerable<string>? subnetIds = null, IEnumerable<KeyValuePair<string, string>>? tags = null, string? vpcCidr = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        ArgumentOutOfRangeException.ThrowIfNegative(routeLimit);
        var local = vpcCidr is null ? null : Cidr(vpcCidr, nameof(vpcCidr));
        lock (_gate)
        {
            if (_tables.ContainsKey(id)) throw new InvalidOperationException($"route table {id} already exists");
            var table = new Table(id, vpcId) { Limit = routeLimit };
            foreach (var subnet in subnetIds ?? [])
                table.Associations.Add(new Ec2LabAssociation($"rtbassoc-{++_associationCounter:x17}", subnet));
            foreach (var (key, value) in tags ?? []) table.Tags[key] = value;
            _tables.Add(id, table);
            if (local is not null) Put(table, local, LocalTarget);
        }
    }

    /// <summary>
    /// Adds a route, or points an existing one at <paramref name="target"/>, bypassing limits, throttling and the call log:
    /// routes that others made. A target of <c>local</c> is the VPC's own route (origin CreateRouteTable).
    /// </summary>
    public void PutRoute(string table, string destination, string target)
    {
        var cidr = Cidr(destination, nameof(destination));
        lock (_gate) Put(Existing(table), cidr, target);
    }

    public void RemoveRoute(string table, string destination)
    {
        var cidr = Cidr(destination, nameof(destination));
        lock (_gate)
        {
            if (Existing(table).Routes.Remove(cidr)) Changed(table, cidr, null);
        }
    }

    /// <summary>How many routes the table holds besides the local one (AWS: 50 for years, 500 by default since 2025).</summary>
    public void SetRouteLimit(string table, int limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        lock (_gate) Existing(table).Limit = limit;
    }

    // ---- faults ----------------------------------------------------------------------------------------------------

    /// <summary>
    /// The token bucket of mutating calls (null: no limit); setting one starts it full. An empty bucket answers 503
    /// RequestLimitExceeded.
    /// </summary>
    public Ec2Throttle? Throttle
    {
        get { lock (_gate) return _throttle; }
        set
        {
            if (value is not null)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(value.Burst);
                ArgumentOutOfRangeException.ThrowIfNegative(value.RefillPerSecond);
            }
            lock (_gate)
            {
                _throttle = value;
                _tokens = value?.Burst ?? 0;
                _refilled = _clock.Now;
            }
        }
    }

    /// <summary>The share of calls (0 to 1) answered 503 Unavailable, by the seeded generator: one seed fails the same calls.</summary>
    public double ErrorRate
    {
        get { lock (_gate) return _errorRate; }
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 1.0);
            lock (_gate) _errorRate = value;
        }
    }

    /// <summary>How long every call takes before it is answered.</summary>
    public TimeSpan Latency
    {
        get { lock (_gate) return _latency; }
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            lock (_gate) _latency = value;
        }
    }

    /// <summary>Waits out the latency: Task.Delay unless replaced (the simulation waits in virtual time).</summary>
    public Func<TimeSpan, Task> Delay
    {
        get { lock (_gate) return _delay; }
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            lock (_gate) _delay = value;
        }
    }

    // ---- inspect ---------------------------------------------------------------------------------------------------

    /// <summary>Every table, in the order they were added.</summary>
    public IReadOnlyList<Ec2LabRouteTable> RouteTables
    {
        get { lock (_gate) return [.. _tables.Values.Select(t => t.Snapshot())]; }
    }

    public Ec2LabRouteTable RouteTable(string id)
    {
        lock (_gate) return Existing(id).Snapshot();
    }

    /// <summary>The table's routes (destination and target), in the order they were created.</summary>
    public IReadOnlyList<(string Destination, string Target)> RoutesOf(string table)
    {
        lock (_gate) return [.. Existing(table).Routes.Values.Select(r => (r.Destination, r.Target))];
    }

    /// <summary>The last source/destination check set through the API, or null if it was never modified.</summary>
    public bool? SourceDestCheck(string eni)
    {
        lock (_gate) return _sourceDestCheck.TryGetValue(eni, out var on) ? on : null;
    }

    /// <summary>Every call received (failed ones too), oldest first.</summary>
    public IReadOnlyList<Ec2Call> Calls
    {
        get { lock (_gate) return [.. _calls]; }
    }

    /// <summary>Calls received per action.</summary>
    public IReadOnlyDictionary<string, int> CallCounts
    {
        get { lock (_gate) return _calls.GroupBy(c => c.Action).ToDictionary(g => g.Key, g => g.Count()); }
    }

    /// <summary>Calls received since the lab started (the log may keep fewer).</summary>
    public long CallCount => Interlocked.Read(ref _callsReceived);

    public int CountOf(string action)
    {
        lock (_gate) return _calls.Count(c => c.Action == action);
    }

    public void ClearCalls()
    {
        lock (_gate) _calls.Clear();
    }

    // ---- the API ---------------------------------------------------------------------------------------------------

    /// <summary>
    /// One call, as EC2 handles it: recorded, answered after the latency; then a random 503 (under <see cref="ErrorRate"/>), an
    /// unknown action, an empty token bucket (mutating calls) or the action's own errors throw <see cref="Ec2Error"/>.
    /// </summary>
    public async Task<Ec2Answer> CallAsync(Ec2Call call, CancellationToken cancellation = default)
    {
        TimeSpan latency;
        Func<TimeSpan, Task> delay;
        lock (_gate)
        {
            _calls.Enqueue(call);
            _callsReceived++;
            while (_calls.Count > _callLogCapacity) _calls.Dequeue();
            (latency, delay) = (_latency, _delay);
        }
        if (latency > TimeSpan.Zero) await delay(latency);
        cancellation.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (_errorRate > 0 && _random.NextDouble() < _errorRate)
                throw new Ec2Error("Unavailable", 503, "The server is unavailable. Please try again shortly.");
            if (!_actions.TryGetValue(call.Action, out var action))
                throw Fault("InvalidAction", $"The action {call.Action} is not valid for this web service.");
            if (MutatingActions.Contains(call.Action) && !TakeToken())
                throw new Ec2Error("RequestLimitExceeded", 503, "Request limit exceeded.");
            return action(new Ec2QueryParameters(call.Parameters));
        }
    }

    // ---- actions (called under _gate) ------------------------------------------------------------------------------

    private Ec2Answer DescribeRouteTables(Ec2QueryParameters p)
    {
        var ids = p.List("RouteTableId");
        var maxResults = p.Int("MaxResults");
        if (maxResults is not null && ids.Count > 0)
            throw Fault("InvalidParameterCombination", "The parameter routeTableIds cannot be used with the parameter maxResults");
        if (maxResults is < 5 or > 100)
            throw Fault("InvalidParameterValue",
                $"Value ( {maxResults} ) for parameter maxResults is invalid. Expecting a value between 5 and 100.");
        if (ids.FirstOrDefault(id => !_tables.ContainsKey(id)) is { } missing) throw TableNotFound(missing);
        var filters = p.Filters().Select(ToTableFilter).ToList();
        var matching = _tables.Values.Where(t => ids.Count == 0 || ids.Contains(t.Id)).Where(t => filters.All(f => f.Matches(t))).ToList();

        var offset = PageOffset(p.Get("NextToken"));
        var page = matching.Skip(offset).Take(maxResults ?? int.MaxValue).ToList();
        var next = offset + page.Count;
        return new Ec2Answer.RouteTables([.. page.Select(t => t.Snapshot())], next < matching.Count ? $"page-{next}" : null);
    }

    private Ec2Answer CreateRoute(Ec2QueryParameters p)
    {
        var cidr = RequireCidr(p);
        var target = Ec2Targets.Require(p);
        var table = RequireTable(p);
        if (table.Routes.ContainsKey(cidr)) throw Fault("RouteAlreadyExists", $"The route identified by {cidr} already exists.");
        if (table.Routes.Values.Count(r => !r.IsLocal) >= table.Limit)
            throw Fault("RouteLimitExceeded", $"The maximum number of routes has been reached for route table {table.Id}.");
        Put(table, cidr, target);
        return Ec2Answer.Succeeded;
    }

    private Ec2Answer ReplaceRoute(Ec2QueryParameters p)
    {
        var cidr = RequireCidr(p);
        var target = Ec2Targets.Require(p);
        var table = RequireTable(p);
        if (!table.Routes.ContainsKey(cidr)) throw RouteNotFound(cidr, table.Id);
        Put(table, cidr, target);
        return Ec2Answer.Succeeded;
    }

    private Ec2Answer DeleteRoute(Ec2QueryParameters p)
    {
        var cidr = RequireCidr(p);
        var table = RequireTable(p);
        var route = table.Routes.GetValueOrDefault(cidr) ?? throw RouteNotFound(cidr, table.Id);
        if (route.IsLocal) throw Fault("InvalidParameterValue", $"cannot remove local route {cidr} in route table {table.Id}");
        table.Routes.Remove(cidr);
        Changed(table.Id, cidr, null);
        return Ec2Answer.Succeeded;
    }

    private Ec2Answer ModifyNetworkInterfaceAttribute(Ec2QueryParameters p)
    {
        var eni = p.Require("NetworkInterfaceId");
        if (p.Get("SourceDestCheck.Value") is { } raw)
        {
            _sourceDestCheck[eni] = bool.TryParse(raw, out var on) ? on : throw InvalidValue(raw, "SourceDestCheck");
            SourceDestCheckChanged?.Invoke(eni, on);
        }
        return Ec2Answer.Succeeded;
    }

    // ---- helpers ---------------------------------------------------------------------------------------------------

    private void Put(Table table, string cidr, string target)
    {
        // A replaced route keeps its place and its origin, as EC2 shows it.
        var origin = table.Routes.GetValueOrDefault(cidr)?.Origin ?? (target == LocalTarget ? "CreateRouteTable" : "CreateRoute");
        table.Routes[cidr] = new Ec2LabRoute(cidr, target, origin);
        Changed(table.Id, cidr, target);
    }

    private void Changed(string table, string cidr, string? target) => RouteChanged?.Invoke(new Ec2RouteChange(table, cidr, target));

    private bool TakeToken()
    {
        if (_throttle is not { } throttle) return true;
        var now = _clock.Now;
        _tokens = Math.Min(throttle.Burst, _tokens + Math.Max(0, (now - _refilled).TotalSeconds) * throttle.RefillPerSecond);
        _refilled = now;
        if (_tokens < 1) return false;
        _tokens -= 1;
        return true;
    }

    private Table Existing(string id) =>
        _tables.TryGetValue(id, out var table) ? table : throw new KeyNotFoundException($"no route table {id} in the lab");

    private Table RequireTable(Ec2QueryParameters p)
    {
        var id = p.Require("RouteTableId");
        return _tables.TryGetValue(id, out var table) ? table : throw TableNotFound(id);
    }

    private static string RequireCidr(Ec2QueryParameters p)
    {
        var raw = p.Require("DestinationCidrBlock");
        return CanonicalCidr(raw)
            ?? throw Fault("InvalidParameterValue",
                $"Value ({raw}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block.");
    }

    // EC2 refuses host bits beyond the prefix, and so does Ipv4Cidr (IPNetwork would clear them).
    private static string? CanonicalCidr(string raw) => Ipv4Cidr.TryParse(raw, out var cidr) ? cidr.ToString() : null;

    private static string Cidr(string raw, string parameter) =>
        CanonicalCidr(raw) ?? throw new ArgumentException($"'{raw}' is not an IPv4 CIDR", parameter);

    private static int PageOffset(string? token)
    {
        if (token is null) return 0;
        if (token.StartsWith("page-", StringComparison.Ordinal) && int.TryParse(token["page-".Length..], out var offset) && offset >= 0)
            return offset;
        throw Fault("InvalidPaginationToken", $"Invalid pagination token: {token}");
    }

    internal static Ec2Error Fault(string code, string message) => new(code, 400, message);

    internal static Ec2Error InvalidValue(string value, string parameter) =>
        Fault("InvalidParameterValue", $"Value ({value}) for parameter {parameter} is invalid.");

    private static Ec2Error TableNotFound(string id) => Fault("InvalidRouteTableID.NotFound", $"The routeTable ID '{id}' does not exist");

    private static Ec2Error RouteNotFound(string cidr, string table) =>
        Fault("InvalidRoute.NotFound", $"no route with destination-cidr-block {cidr} in route table {table}");

    // ---- filters ---------------------------------------------------------------------------------------------------

    private static readonly Dictionary<string, Func<Table, IEnumerable<string>>> FilterFields = new(StringComparer.Ordinal)
    {
        ["route-table-id"] = t => [t.Id],
        ["vpc-id"] = t => [t.VpcId],
        ["owner-id"] = _ => [AccountId],
        ["tag-key"] = t => t.Tags.Keys,
        ["tag-value"] = t => t.Tags.Values,
        ["association.subnet-id"] = t => t.Associations.Select(a => a.SubnetId),
        ["association.route-table-association-id"] = t => t.Associations.Select(a => a.Id),
        ["association.route-table-id"] = t => t.Associations.Select(_ => t.Id),
        ["association.main"] = t => t.Associations.Select(_ => "false"),
        ["route.destination-cidr-block"] = t => t.Routes.Keys,
        ["route.network-interface-id"] = t => TargetsOf(t, "NetworkInterfaceId"),
        ["route.instance-id"] = t => TargetsOf(t, "InstanceId"),
        ["route.vpc-peering-connection-id"] = t => TargetsOf(t, "VpcPeeringConnectionId"),
        ["route.nat-gateway-id"] = t => TargetsOf(t, "NatGatewayId"),
        ["route.transit-gateway-id"] = t => TargetsOf(t, "TransitGatewayId"),
        ["route.gateway-id"] = t => TargetsOf(t, "GatewayId"),
        ["route.origin"] = t => t.Routes.Values.Select(r => r.Origin),
        ["route.state"] = t => t.Routes.Values.Select(_ => "active"),
    };

    private static IEnumerable<string> TargetsOf(Table table, string parameter) =>
        table.Routes.Values.Select(r => r.Target).Where(target => Ec2Targets.ParameterOf(target) == parameter);

    private static TableFilter ToTableFilter((string Name, List<string> Values) filter)
    {
        var field = filter.Name.StartsWith("tag:", StringComparison.Ordinal)
            ? TagField(filter.Name["tag:".Length..])
            : FilterFields.GetValueOrDefault(filter.Name) ?? throw Fault("InvalidParameterValue", $"The filter '{filter.Name}' is invalid");
        return new TableFilter(field, [.. filter.Values.Select(Pattern)]);
    }

    private static Func<Table, IEnumerable<string>> TagField(string key) => t => t.Tags.TryGetValue(key, out var value) ? [value] : [];

    // EC2 filter values take * and ? as wildcards.
    private static Func<string, bool> Pattern(string value)
    {
        if (value.IndexOfAny(['*', '?']) < 0) return candidate => candidate == value;
        var escaped = Regex.Escape(value).Replace(@"\*", ".*", StringComparison.Ordinal).Replace(@"\?", ".", StringComparison.Ordinal);
        var regex = new Regex($"^{escaped}$", RegexOptions.Singleline);
        return regex.IsMatch;
    }

    // The values of one filter are OR-ed; the filters are AND-ed.
    private sealed record TableFilter(Func<Table, IEnumerable<string>> Field, IReadOnlyList<Func<string, bool>> Patterns)
    {
        public bool Matches(Table table) => Field(table).Any(candidate => Patterns.Any(matches => matches(candidate)));
    }

    private sealed class Table(string id, string vpcId)
    {
        public string Id { get; } = id;
        public string VpcId { get; } = vpcId;
        public int Limit { get; set; }
        public List<Ec2LabAssociation> Associations { get; } = [];
        public Dictionary<string, string> Tags { get; } = new(StringComparer.Ordinal);
        public OrderedDictionary<string, Ec2LabRoute> Routes { get; } = new(StringComparer.Ordinal);

        public Ec2LabRouteTable Snapshot() =>
            new(Id, VpcId, Limit, [.. Associations], Tags.ToImmutableSortedDictionary(StringComparer.Ordinal), [.. Routes.Values]);
    }
}
