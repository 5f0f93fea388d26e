using System.Collections.Immutable;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Routing;

/// <summary>
/// What carrying out an operation means, as pure functions: whether it makes an EC2 call and which, what is recorded
/// before the call (a create's claim, so that a crash cannot leave a route nobody owns), what is recorded once it went
/// through, and how EC2's routes look after it (the route manager keeps its view of EC2 in step with its own calls).
/// </summary>
public static class RouteCalls
{
    public static bool NeedsCall(RouteOperation operation) => operation switch
    {
        RouteOperation.Confirm or RouteOperation.DropClaim or RouteOperation.TakeAsFound or RouteOperation.Delete { Call: false } => false,
        _ => true,
    };

    public static string ActionOf(RouteOperation operation) => operation switch
    {
        RouteOperation.DisableSourceDestCheck => "ModifyNetworkInterfaceAttribute",
        RouteOperation.Create => "CreateRoute",
        RouteOperation.Replace => "ReplaceRoute",
        RouteOperation.Delete { Call: true } => "DeleteRoute",
        _ => throw new ArgumentException($"{operation} needs no EC2 call", nameof(operation)),
    };

    /// <summary>What an operation without a call records: what EC2 was found to show.</summary>
    public static IRouteEvent Found(RouteOperation operation, DateTimeOffset now) => operation switch
    {
        RouteOperation.Confirm confirm => new RouteCreated(confirm.Table, confirm.Cidr, confirm.Target, confirm.Eni, now, confirm.Reason),
        RouteOperation.DropClaim drop => new RouteClaimDropped(drop.Table, drop.Cidr, now, drop.Reason),
        RouteOperation.TakeAsFound found =>
            new RouteReplaced(found.Table, found.Cidr, found.Previous, found.Target, found.Eni, now, found.Reason),
        RouteOperation.Delete { Call: false } gone => new RouteDeleted(gone.Table, gone.Cidr, gone.Target, now, gone.Reason),
        _ => throw new ArgumentException($"{operation} makes an EC2 call", nameof(operation)),
    };

    /// <summary>Recorded before the call is sent: a new route's claim; nothing for a route already Romana's.</summary>
    public static ImmutableArray<IRouteEvent> RecordFirst(RouteOperation operation, DateTimeOffset now) => operation is
        RouteOperation.Create { Claimed: false } create
        ? [new RouteClaimed(create.Table, create.Cidr, create.Target, create.Eni, now, create.Reason)]
        : [];

    /// <summary>The record of a call that went through.</summary>
    public static IRouteEvent Succeeded(RouteOperation operation, DateTimeOffset now) => operation switch
    {
        RouteOperation.DisableSourceDestCheck check => new SourceDestCheckDisabled(check.Node, check.Eni, now, check.Reason),
        RouteOperation.Create create => new RouteCreated(create.Table, create.Cidr, create.Target, create.Eni, now, create.Reason),
        RouteOperation.Replace replace =>
            new RouteReplaced(replace.Table, replace.Cidr, replace.Previous, replace.Target, replace.Eni, now, replace.Reason),
        RouteOperation.Delete delete => new RouteDeleted(delete.Table, delete.Cidr, delete.Target, now, delete.Reason),
        _ => throw new ArgumentException($"{operation} makes no EC2 call", nameof(operation)),
    };

    /// <summary>
    /// EC2's tables after the call of <paramref name="operation"/> went through; the same tables again when done twice (a
    /// describe that already saw it).
    /// </summary>
    public static ImmutableArray<Ec2RouteTable> After(ImmutableArray<Ec2RouteTable> tables, RouteOperation operation)
    {
        (string Table, string Destination, string? Target)? change = operation switch
        {
            RouteOperation.Create create => (create.Table, create.Cidr.ToString(), create.Eni),
            RouteOperation.Replace replace => (replace.Table, replace.Cidr.ToString(), replace.Eni),
            RouteOperation.Delete delete => (delete.Table, delete.Cidr.ToString(), null),
            _ => null,
        };
        if (change is not { } c) return tables;
        return [.. tables.Select(t => t.Id != c.Table ? t : t with
        {
            Routes = c.Target is null
                ? [.. t.Routes.Where(r => r.Destination != c.Destination)]
                : [.. t.Routes.Where(r => r.Destination != c.Destination), new Ec2Route(c.Destination, c.Target)],
        })];
    }
}

/// <summary>
/// What the route manager does when an EC2 call fails. EC2 errors never stop it: throttling and 5xx answers are retried
/// with backoff (recorded once the attempts reach romana.routes.retry.max-attempts, and retried at the longest backoff
/// after that), a few answers say something useful about the operation, and anything else is recorded and tried again at
/// the next periodic check.
/// </summary>
public abstract record FailedCallDecision(Ec2Error Error)
{
    /// <summary>
    /// Send the same call again after a backoff, as attempt <paramref name="Attempt"/>; <paramref name="Failed"/>: the attempts
    /// ran out, which is recorded once.
    /// </summary>
    public sealed record RetryAfterBackoff(Ec2Error Error, int Attempt, Ec2CallFailed? Failed) : FailedCallDecision(Error);

    /// <summary>RouteLimitExceeded on a create: the table holds no more than it does now; it is planned again within that.</summary>
    public sealed record LearnRouteLimit(Ec2Error Error, RouteLimitLearned Learned) : FailedCallDecision(Error);

    /// <summary>
    /// RouteAlreadyExists on a create: claimed and not confirmed, so the next describe tells whether the route there is
    /// Romana's.
    /// </summary>
    public sealed record DescribeAgain(Ec2Error Error) : FailedCallDecision(Error);

    /// <summary>InvalidRoute.NotFound on a delete: the route is gone already, which is what the delete wanted.</summary>
    public sealed record RecordAlreadyGone(Ec2Error Error, RouteDeleted Deleted) : FailedCallDecision(Error);

    /// <summary>Recorded; the call is tried again at the next periodic check.</summary>
    public sealed record RecordAndRetryLater(Ec2Error Error, Ec2CallFailed Failed) : FailedCallDecision(Error);

    /// <summary>
    /// Decides for <paramref name="operation"/> (null: the describe), whose attempt <paramref name="attempt"/> failed with
    /// <paramref name="failure"/>; <paramref name="routesInTable"/> is what the operation's table holds now (not local). An
    /// exception that is not an EC2 answer (a timeout, a lost connection) counts as 503 Unavailable.
    /// </summary>
    public static FailedCallDecision For(RouteOperation? operation, int attempt, Exception failure, int maxAttempts, int routesInTable,
        DateTimeOffset now)
    {
        var error = failure as Ec2Error ?? new Ec2Error("Unavailable", 503, failure.Message);
        var action = operation is null ? "DescribeRouteTables" : RouteCalls.ActionOf(operation);
        var table = operation?.Table ?? "";
        if (error.IsRetryable)
            return new RetryAfterBackoff(error, attempt + 1, attempt + 1 == maxAttempts
                ? new Ec2CallFailed(action, table, error.Code, error.Message, now, $"EC2 kept answering {error.Code}; still retried")
                : null);
        switch (operation)
        {
            case RouteOperation.Create create when error.IsRouteLimit:
                return new LearnRouteLimit(error, new RouteLimitLearned(create.Table, routesInTable, now, "budget"));
            case RouteOperation.Create when error.IsAlreadyExists:
                return new DescribeAgain(error);
            case RouteOperation.Delete delete when error.IsRouteNotFound:
                return new RecordAlreadyGone(error,
                    new RouteDeleted(delete.Table, delete.Cidr, delete.Target, now, "already gone from EC2"));
        }
        return new RecordAndRetryLater(error,
            new Ec2CallFailed(action, table, error.Code, error.Message, now, "retried at the next check"));
    }
}
