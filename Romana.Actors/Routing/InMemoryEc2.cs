using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>
/// EC2 route tables in memory, behind the same port as the real adapter, with EC2's error codes: RouteAlreadyExists,
/// InvalidRoute.NotFound, RouteLimitExceeded at a table's limit, and RequestLimitExceeded from a token bucket for
/// mutating calls. For actor tests and simulations; the wire tests use AWSSDK.EC2 against a local HTTP endpoint.
/// </summary>
public sealed class InMemoryEc2 : IEc2RouteTables
{
    private readonly object _gate = new();
    private readonly Dictionary<string, Table> _tables = new();
    private readonly Dictionary<string, bool> _sourceDestCheck = new();
    private readonly List<string> _calls = new();
    private readonly IClock _clock;
    private (int Burst, double PerSecond)? _throttle;
    private double _tokens;
    private DateTimeOffset _refilled;

    public InMemoryEc2(IClock? clock = null) => _clock = clock ?? SystemClock.Instance;

    /// <summary>How long each call takes; the simulation waits in virtual time through <see cref="Delay"/>.</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>Waits for a duration; by default in real time.</summary>
    public Func<TimeSpan, Task> Delay { get; set; } = d => Task.Delay(d);

    public void AddTable(string id, int limit = 50, IEnumerable<string>? subnets = null, IEnumerable<string>? tags = null)
    {
        lock (_gate) _tables[id] = new Table(id, limit, [.. subnets ?? []], [.. tags ?? []]);
    }

    public void AddRoute(string table, string destination, string target)
    {
        lock (_gate) _tables[table].Routes[destination] = target;
    }

    public void RemoveRoute(string table, string destination)
    {
        lock (_gate) _tables[table].Routes.Remove(destination);
    }

    public void SetLimit(string table, int limit)
    {
        lock (_gate) _tables[table].Limit = limit;
    }

    /// <summary>Mutating calls draw from a bucket of <paramref name="burst"/> tokens refilled at <paramref name="perSecond"/>; null: no limit.</summary>
    public void Throttle(int? burst, double perSecond = 0)
    {
        lock (_gate)
        {
            _throttle = burst is null ? null : (burst.Value, perSecond);
            _tokens = burst ?? 0;
            _refilled = _clock.Now;
        }
    }

    public IReadOnlyDictionary<string, string> RoutesOf(string table)
    {
        lock (_gate) return new Dictionary<string, string>(_tables[table].Routes);
    }

    public bool? SourceDestCheck(string eni)
    {
        lock (_gate) return _sourceDestCheck.TryGetValue(eni, out var on) ? on : null;
    }

    /// <summary>Every call, as "Action table cidr".</summary>
    public IReadOnlyList<string> Calls
    {
        get { lock (_gate) return [.. _calls]; }
    }

    public void ClearCalls()
    {
        lock (_gate) _calls.Clear();
    }

    public async Task<IReadOnlyList<Ec2RouteTable>> DescribeAsync(RouteTableSelector selector, CancellationToken cancellation = default)
    {
        if (Latency > TimeSpan.Zero) await Delay(Latency);
        lock (_gate)
        {
            _calls.Add("DescribeRouteTables");
            IReadOnlyList<Ec2RouteTable> tables = [.. _tables.Values
                .Where(t => selector.Ids.Contains(t.Id) || (selector.TagKey is not null && t.Tags.Contains(Tag(selector))))
                .OrderBy(t => t.Id, StringComparer.Ordinal)
                .Select(t => new Ec2RouteTable(t.Id, t.Subnets, [.. t.Routes.Select(r => new Ec2Route(r.Key, r.Value))]))];
            var missing = selector.Ids.FirstOrDefault(id => !_tables.ContainsKey(id));
            return missing is null
                ? tables
                : throw new Ec2Error("InvalidRouteTableID.NotFound", 400, $"The routeTable ID '{missing}' does not exist");
        }
    }

    public Task CreateRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
        Mutate($"CreateRoute {table} {destination} {eni}", table, t =>
        {
            if (t.Routes.ContainsKey(destination.ToString()))
                throw new Ec2Error("RouteAlreadyExists", 400, $"The route identified by {destination} already exists.");
            if (t.Routes.Count(r => r.Value != "local") >= t.Limit)
                throw new Ec2Error("RouteLimitExceeded", 400, $"The maximum number of routes has been reached for {table}");
            t.Routes[destination.ToString()] = eni;
        });

    public Task ReplaceRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
        Mutate($"ReplaceRoute {table} {destination} {eni}", table, t =>
        {
            if (!t.Routes.ContainsKey(destination.ToString())) throw NotFound(table, destination);
            t.Routes[destination.ToString()] = eni;
        });

    public Task DeleteRouteAsync(string table, Ipv4Cidr destination, CancellationToken cancellation = default) =>
        Mutate($"DeleteRoute {table} {destination}", table, t =>
        {
            if (!t.Routes.Remove(destination.ToString())) throw NotFound(table, destination);
        });

    public Task DisableSourceDestCheckAsync(string eni, CancellationToken cancellation = default) =>
        Mutate($"ModifyNetworkInterfaceAttribute {eni}", null, _ => _sourceDestCheck[eni] = false);

    private async Task Mutate(string call, string? table, Action<Table> change)
    {
        if (Latency > TimeSpan.Zero) await Delay(Latency);
        lock (_gate)
        {
            _calls.Add(call);
            TakeToken();
            Table? t = null;
            if (table is not null && !_tables.TryGetValue(table, out t))
                throw new Ec2Error("InvalidRouteTableID.NotFound", 400, $"The routeTable ID '{table}' does not exist");
            change(t!);
        }
    }

    private void TakeToken()
    {
        if (_throttle is not { } throttle) return;
        var now = _clock.Now;
        _tokens = Math.Min(throttle.Burst, _tokens + (now - _refilled).TotalSeconds * throttle.PerSecond);
        _refilled = now;
        if (_tokens < 1) throw new Ec2Error("RequestLimitExceeded", 503, "Request limit exceeded.");
        _tokens -= 1;
    }

    private static Ec2Error NotFound(string table, Ipv4Cidr destination) =>
        new("InvalidRoute.NotFound", 400, $"no route with destination-cidr-block {destination} in route table {table}");

    private static string Tag(RouteTableSelector selector) => $"{selector.TagKey}={selector.TagValue}";

    private sealed class Table(string id, int limit, ImmutableArray<string> subnets, ImmutableArray<string> tags)
    {
        public string Id { get; } = id;
        public int Limit { get; set; } = limit;
        public ImmutableArray<string> Subnets { get; } = subnets;
        public ImmutableArray<string> Tags { get; } = tags;
        public Dictionary<string, string> Routes { get; } = new();
    }
}
