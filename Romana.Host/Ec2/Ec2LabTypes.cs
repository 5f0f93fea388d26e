using System.Collections.Immutable;

namespace Romana.Host.Ec2;

/// <summary>
/// One request as EC2 receives it: the action and its Query API parameters, flat (lists as <c>Name.N</c>, filters as
/// <c>Filter.N.Name</c> / <c>Filter.N.Value.M</c>). The same shape whether it came over HTTP or from the in-process adapter.
/// </summary>
public sealed record Ec2Call(string Action, IReadOnlyDictionary<string, string> Parameters)
{
    public static Ec2Call Of(string action, params IEnumerable<(string Name, string Value)> parameters) =>
        new(action, parameters.ToDictionary(p => p.Name, p => p.Value, StringComparer.Ordinal).AsReadOnly());

    public override string ToString() => $"{Action} {string.Join(' ', Parameters.Select(p => $"{p.Key}={p.Value}"))}".TrimEnd();
}

/// <summary>A route as EC2 describes it; origin is CreateRouteTable for the VPC's local route, CreateRoute otherwise.</summary>
public sealed record Ec2LabRoute(string Destination, string Target, string Origin)
{
    public bool IsLocal => Target == Ec2Lab.LocalTarget;
}

public sealed record Ec2LabAssociation(string Id, string SubnetId);

/// <summary>A route table at one moment: what DescribeRouteTables shows, plus its route limit.</summary>
public sealed record Ec2LabRouteTable(string Id, string VpcId, int RouteLimit, ImmutableArray<Ec2LabAssociation> Associations,
    ImmutableSortedDictionary<string, string> Tags, ImmutableArray<Ec2LabRoute> Routes);

/// <summary>
/// A token bucket for mutating calls: <paramref name="Burst"/> tokens, refilled at <paramref name="RefillPerSecond"/>.
/// A bucket of 0 throttles every mutating call.
/// </summary>
public sealed record Ec2Throttle(int Burst, double RefillPerSecond)
{
    /// <summary>EC2's request-rate limit for mutating actions, per account and region: a bucket of 50 refilled 5 per second.</summary>
    public static readonly Ec2Throttle Ec2Default = new(50, 5);

    public override string ToString() => $"burst {Burst}, refilled {RefillPerSecond:0.###} per second";
}

/// <summary>A route that a table gained, lost (<paramref name="Target"/> null) or pointed elsewhere.</summary>
public sealed record Ec2RouteChange(string Table, string Destination, string? Target);

/// <summary>What EC2 answers to a call that succeeded.</summary>
public abstract record Ec2Answer
{
    /// <summary>DescribeRouteTables: one page of tables, and the token of the next page, if any.</summary>
    public sealed record RouteTables(ImmutableArray<Ec2LabRouteTable> Tables, string? NextToken) : Ec2Answer;

    /// <summary>The actions that answer only <c>&lt;return&gt;true&lt;/return&gt;</c>.</summary>
    public sealed record Done : Ec2Answer;

    public static readonly Ec2Answer Succeeded = new Done();
}
