using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>A route as EC2 shows it: the destination as written, and the target's id (eni-, igw-, i-, local, ...).</summary>
public sealed record Ec2Route(string Destination, string Target)
{
    public bool IsLocal => Target == "local";
}

public sealed record Ec2RouteTable(string Id, ImmutableArray<string> SubnetIds, ImmutableArray<Ec2Route> Routes);

/// <summary>Which route tables Romana manages: named ones, and/or those carrying a tag.</summary>
public sealed record RouteTableSelector(ImmutableArray<string> Ids, string? TagKey = null, string? TagValue = null)
{
    public bool IsEmpty => Ids.IsEmpty && TagKey is null;
    public override string ToString() => string.Join(" and ", new[]
    {
        Ids.IsEmpty ? null : $"ids {string.Join(", ", Ids)}",
        TagKey is null ? null : $"tag {TagKey}={TagValue ?? "*"}",
    }.OfType<string>());
}

/// <summary>An error EC2 answered, by its code; throttling and server errors are worth retrying.</summary>
public sealed class Ec2Error(string code, int statusCode, string message) : Exception($"{code}: {message}")
{
    public string Code { get; } = code;
    public int StatusCode { get; } = statusCode;
    /// <summary>The message as EC2 worded it, without the code.</summary>
    public string Detail { get; } = message;
    public bool IsThrottling => Code is "RequestLimitExceeded" or "Throttling" or "ThrottlingException";
    public bool IsRetryable => IsThrottling || StatusCode >= 500;
    public bool IsRouteLimit => Code == "RouteLimitExceeded";
    public bool IsAlreadyExists => Code == "RouteAlreadyExists";
    public bool IsRouteNotFound => Code == "InvalidRoute.NotFound";
}

/// <summary>The EC2 calls the route manager makes: AWSSDK.EC2 in production, the in-memory EC2 of Romana.Host/Ec2 in simulations.</summary>
public interface IEc2RouteTables
{
    /// <summary>Every selected table with its routes and subnet associations, all pages; throws <see cref="Ec2Error"/>.</summary>
    Task<IReadOnlyList<Ec2RouteTable>> DescribeAsync(RouteTableSelector selector, CancellationToken cancellation = default);
    Task CreateRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default);
    Task ReplaceRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default);
    Task DeleteRouteAsync(string table, Ipv4Cidr destination, CancellationToken cancellation = default);
    /// <summary>A node that receives or forwards pod traffic must accept packets not addressed to its own IP.</summary>
    Task DisableSourceDestCheckAsync(string eni, CancellationToken cancellation = default);
}
