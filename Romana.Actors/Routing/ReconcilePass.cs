using System.Collections.Immutable;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Routing;

/// <summary>What a reconcile pass waits for; the route manager's view names it (the simulation's settle loop reads it).</summary>
public enum PassWait
{
    /// <summary>Nothing outside the actor: the pass is deciding, or writing to its journal.</summary>
    Nothing,
    /// <summary>The cluster's state, from IPAM and health.</summary>
    Cluster,
    /// <summary>An answer from EC2.</summary>
    Ec2,
    /// <summary>The backoff before an EC2 call is sent again.</summary>
    Retry,
}

/// <summary>One EC2 call of a pass: describing the managed tables, or the call that carries out one operation.</summary>
public abstract record Ec2Request(string Action, string Table)
{
    public sealed record DescribeTables() : Ec2Request("DescribeRouteTables", "");

    /// <summary>The call of an operation that needs one (see <see cref="ReconcilePass.NextStep"/>).</summary>
    public sealed record Operate(RouteOperation Operation) : Ec2Request(ActionOf(Operation), Operation.Table);

    private static string ActionOf(RouteOperation operation) => operation switch
    {
        RouteOperation.DisableSourceDestCheck => "ModifyNetworkInterfaceAttribute",
        RouteOperation.Create => "CreateRoute",
        RouteOperation.Replace => "ReplaceRoute",
        RouteOperation.Delete { Call: true } => "DeleteRoute",
        _ => throw new ArgumentException($"{operation} needs no EC2 call", nameof(operation)),
    };
}

/// <summary>What a pass does next with its operations.</summary>
public abstract record PassStep
{
    /// <summary>Every operation is done.</summary>
    public sealed record Finish : PassStep;

    /// <summary>The operation needs no EC2 call: record what it found, then go on with the next.</summary>
    public sealed record RecordThenAdvance(ImmutableArray<IRouteEvent> Events) : PassStep;

    /// <summary>
    /// Record <paramref name="RecordFirst"/> (a create's claim, so that a crash cannot leave a route nobody owns), then
    /// send the call.
    /// </summary>
    public sealed record CallEc2(ImmutableArray<IRouteEvent> RecordFirst, Ec2Request.Operate Request) : PassStep;
}

/// <summary>
/// One reconcile pass of the route manager, as a value: why it runs, the cluster it read (with health applied), the
/// tables EC2 described, the operations planned and how far they got, the attempt of the EC2 call under way, the
/// non-local routes each table holds now (a RouteLimitExceeded teaches that count as the table's limit), and what it
/// waits for. The actor keeps one while a pass runs and replaces it at each step; the steps here are pure.
/// </summary>
public sealed record ReconcilePass(
    string Reason,
    RoutingSnapshot? Cluster,
    ImmutableArray<Ec2RouteTable> Tables,
    ImmutableArray<RouteOperation> Operations,
    int Next,
    int Attempt,
    ImmutableDictionary<string, int> RouteCounts,
    PassWait WaitingFor)
{
    /// <summary>A pass starts by reading the cluster.</summary>
    public static ReconcilePass Start(string reason) =>
        new(reason, null, [], [], 0, 0, ImmutableDictionary<string, int>.Empty, PassWait.Cluster);

    /// <summary>The reason the planned operations carry: a pass started to fit a learned limit says so.</summary>
    public string OperationReason => Reason == "budget" ? "budget" : "plan";

    /// <summary>The operation under way: none before the plan, none after the last.</summary>
    public RouteOperation? Current => Next < Operations.Length ? Operations[Next] : null;

    /// <summary>The name in <see cref="RouteManagerView.WaitingFor"/>: "cluster", "ec2", "retry", or none.</summary>
    public string? WaitingForName => WaitingFor switch
    {
        PassWait.Cluster => "cluster",
        PassWait.Ec2 => "ec2",
        PassWait.Retry => "retry",
        _ => null,
    };

    public ReconcilePass Described(IReadOnlyList<Ec2RouteTable> tables) =>
        this with { Tables = [.. tables], WaitingFor = PassWait.Nothing };

    /// <summary>The operations to carry out, from the first, with each described table's non-local routes counted.</summary>
    public ReconcilePass Planned(ImmutableArray<RouteOperation> operations) => this with
    {
        Operations = operations,
        Next = 0,
        RouteCounts = Tables.ToImmutableDictionary(t => t.Id, t => t.Routes.Count(r => !r.IsLocal)),
    };

    /// <summary>On to the next operation; its EC2 call starts at the first attempt.</summary>
    public ReconcilePass Advanced() => this with { Next = Next + 1, Attempt = 0 };

    public ReconcilePass RetryScheduled(int attempt) => this with { Attempt = attempt, WaitingFor = PassWait.Retry };

    /// <summary>What to do for the operation under way; <paramref name="now"/> dates what it records.</summary>
    public PassStep NextStep(DateTimeOffset now) => Current switch
    {
        null => new PassStep.Finish(),
        RouteOperation.Confirm confirm =>
            Record(new RouteCreated(confirm.Table, confirm.Cidr, confirm.Target, confirm.Eni, now, confirm.Reason)),
        RouteOperation.DropClaim drop => Record(new RouteClaimDropped(drop.Table, drop.Cidr, now, drop.Reason)),
        RouteOperation.TakeAsFound found =>
            Record(new RouteReplaced(found.Table, found.Cidr, found.Previous, found.Target, found.Eni, now, found.Reason)),
        RouteOperation.Delete { Call: false } gone => Record(new RouteDeleted(gone.Table, gone.Cidr, gone.Target, now, gone.Reason)),
        RouteOperation.Create { Claimed: false } create => new PassStep.CallEc2(
            [new RouteClaimed(create.Table, create.Cidr, create.Target, create.Eni, now, create.Reason)], new Ec2Request.Operate(create)),
        var operation => new PassStep.CallEc2([], new Ec2Request.Operate(operation)),
    };

    private static PassStep.RecordThenAdvance Record(IRouteEvent e) => new([e]);

    /// <summary>
    /// The operation's call went through: the event that records it, and the pass with the table's route count
    /// following EC2 (a create adds a route, a delete removes one).
    /// </summary>
    public (ReconcilePass Pass, IRouteEvent Done) Succeeded(RouteOperation operation, DateTimeOffset now)
    {
        var counts = operation switch
        {
            RouteOperation.Create create => RouteCounts.SetItem(create.Table, RouteCounts[create.Table] + 1),
            RouteOperation.Delete delete => RouteCounts.SetItem(delete.Table, RouteCounts[delete.Table] - 1),
            _ => RouteCounts,
        };
        IRouteEvent done = operation switch
        {
            RouteOperation.DisableSourceDestCheck check => new SourceDestCheckDisabled(check.Node, check.Eni, now, check.Reason),
            RouteOperation.Create create => new RouteCreated(create.Table, create.Cidr, create.Target, create.Eni, now, create.Reason),
            RouteOperation.Replace replace =>
                new RouteReplaced(replace.Table, replace.Cidr, replace.Previous, replace.Target, replace.Eni, now, replace.Reason),
            RouteOperation.Delete delete => new RouteDeleted(delete.Table, delete.Cidr, delete.Target, now, delete.Reason),
            _ => throw new ArgumentException($"{operation} makes no EC2 call", nameof(operation)),
        };
        return (this with { RouteCounts = counts, WaitingFor = PassWait.Nothing }, done);
    }
}

/// <summary>
/// What the route manager does when an EC2 call of a pass fails. EC2 errors never stop it: throttling and 5xx answers
/// are retried with backoff while attempts are left, a few answers say something useful about the operation, and
/// anything else is recorded and tried again on the next pass.
/// </summary>
public abstract record FailedCallDecision(Ec2Error Error)
{
    /// <summary>Send the same call again after a backoff; this is attempt <paramref name="Attempt"/> of the operation's call.</summary>
    public sealed record RetryAfterBackoff(Ec2Error Error, int Attempt) : FailedCallDecision(Error);

    /// <summary>
    /// RouteLimitExceeded on a create: the table holds no more than it does now; the pass ends and the next plans
    /// within that.
    /// </summary>
    public sealed record LearnRouteLimit(Ec2Error Error, RouteLimitLearned Learned) : FailedCallDecision(Error);

    /// <summary>
    /// RouteAlreadyExists on a create: claimed and not confirmed, so the next describe tells whether the route there is
    /// Romana's.
    /// </summary>
    public sealed record SkipOperation(Ec2Error Error) : FailedCallDecision(Error);

    /// <summary>InvalidRoute.NotFound on a delete: the route is gone already, which is what the delete wanted.</summary>
    public sealed record RecordAlreadyGone(Ec2Error Error, RouteDeleted Deleted) : FailedCallDecision(Error);

    /// <summary>Recorded; the pass goes on with the next operation, and the next pass tries this one again.</summary>
    public sealed record RecordFailureAndAdvance(Ec2Error Error, Ec2CallFailed Failed) : FailedCallDecision(Error);

    /// <summary>Recorded, and the pass ends: EC2 kept answering an error worth retrying, or the tables could not be described.</summary>
    public sealed record RecordFailureAndEndPass(Ec2Error Error, Ec2CallFailed Failed, string Problem) : FailedCallDecision(Error);

    /// <summary>
    /// Decides for <paramref name="request"/> of <paramref name="pass"/>, failed with <paramref name="failure"/>; an
    /// exception that is not an EC2 answer (a timeout, a lost connection) counts as 503 Unavailable.
    /// </summary>
    public static FailedCallDecision For(ReconcilePass pass, Ec2Request request, Exception failure, int maxAttempts, DateTimeOffset now)
    {
        var error = failure as Ec2Error ?? new Ec2Error("Unavailable", 503, failure.Message);
        if (error.IsRetryable && pass.Attempt < maxAttempts) return new RetryAfterBackoff(error, pass.Attempt + 1);
        var operation = (request as Ec2Request.Operate)?.Operation;
        switch (operation)
        {
            case RouteOperation.Create create when error.IsRouteLimit:
                return new LearnRouteLimit(error, new RouteLimitLearned(create.Table, pass.RouteCounts[create.Table], now, "budget"));
            case RouteOperation.Create when error.IsAlreadyExists:
                return new SkipOperation(error);
            case RouteOperation.Delete delete when error.IsRouteNotFound:
                return new RecordAlreadyGone(error,
                    new RouteDeleted(delete.Table, delete.Cidr, delete.Target, now, "already gone from EC2"));
        }
        var failed = new Ec2CallFailed(request.Action, request.Table, error.Code, error.Message, now, "retried on the next pass");
        if (error.IsRetryable) return new RecordFailureAndEndPass(error, failed, $"EC2 kept answering {error.Code}");
        // Without a description there is nothing to plan, so no operation to go on with.
        if (operation is null)
            return new RecordFailureAndEndPass(error, failed, $"the route tables could not be described: {error.Message}");
        return new RecordFailureAndAdvance(error, failed);
    }
}
