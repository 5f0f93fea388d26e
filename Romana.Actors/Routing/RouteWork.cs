using System.Collections.Immutable;
using Romana.Actors.Addressing;

namespace Romana.Actors.Routing;

/// <summary>What an operation works on: a route (table and destination) or a network interface. One call per key at a time.</summary>
public readonly record struct OperationKey(string Table, string Subject)
{
    public static OperationKey Of(RouteOperation operation) => operation switch
    {
        RouteOperation.DisableSourceDestCheck check => new("", check.Eni),
        RouteOperation.Create create => new(create.Table, create.Cidr.ToString()),
        RouteOperation.Replace replace => new(replace.Table, replace.Cidr.ToString()),
        RouteOperation.Delete delete => new(delete.Table, delete.Cidr.ToString()),
        RouteOperation.Confirm confirm => new(confirm.Table, confirm.Cidr.ToString()),
        RouteOperation.DropClaim drop => new(drop.Table, drop.Cidr.ToString()),
        RouteOperation.TakeAsFound found => new(found.Table, found.Cidr.ToString()),
        _ => throw new ArgumentException($"unknown operation {operation}", nameof(operation)),
    };
}

/// <summary>The order work goes in: repairs before plan work, plan work before source/destination checks.</summary>
public enum WorkPriority
{
    /// <summary>A record without an EC2 call (what EC2 already shows): no token, at once.</summary>
    Record = 0,
    /// <summary>A route taken off a node judged failed: may spend the bucket's reserve.</summary>
    Repair = 1,
    Plan = 2,
    /// <summary>Needed once per ENI; never ahead of a route.</summary>
    SourceDestCheck = 3,
}

/// <summary>How the route manager spends EC2's rate (romana.routes.ec2).</summary>
/// <param name="ReserveForRepairs">Tokens plan work and checks leave in the bucket, for the repairs of a failure.</param>
/// <param name="MaxCallsInFlight">Calls sent and not yet answered, at most.</param>
public sealed record CallBudget(int ReserveForRepairs, int MaxCallsInFlight);

/// <summary>An operation started: its call (or record) is under way until <see cref="RouteWork.Finished"/>.</summary>
public sealed record StartedOperation(RouteOperation Operation, int Attempt);

/// <summary>
/// The route manager's work as a value: the operations waiting (in order of priority), those under way (one per key), the
/// retries waiting for their backoff, and the client-side token bucket. <see cref="Replanned"/> replaces what waits with a
/// new diff, <see cref="Take"/> starts what may start now; the actor carries out what it starts and reports back.
/// </summary>
public sealed record RouteWork(
    ImmutableArray<RouteOperation> Waiting,
    ImmutableDictionary<OperationKey, StartedOperation> InFlight,
    ImmutableDictionary<OperationKey, (int Attempt, DateTimeOffset NotBefore)> Retries,
    TokenBucket Bucket)
{
    public static RouteWork Start(TokenBucket bucket) => new([], ImmutableDictionary<OperationKey, StartedOperation>.Empty,
        ImmutableDictionary<OperationKey, (int, DateTimeOffset)>.Empty, bucket);

    /// <summary>Nothing waits and nothing is under way.</summary>
    public bool Idle => Waiting.IsEmpty && InFlight.IsEmpty;

    /// <summary>Calls under way (records without a call left out).</summary>
    public int CallsInFlight => InFlight.Values.Count(s => RouteCalls.NeedsCall(s.Operation));

    /// <summary>Whether a repair waits or is under way.</summary>
    public bool Repairing(IReadOnlySet<NodeName> failed) =>
        Waiting.Concat(InFlight.Values.Select(s => s.Operation)).Any(o => PriorityOf(o, failed) == WorkPriority.Repair);

    /// <summary>A repair: a call that takes a route off a node judged failed.</summary>
    public static WorkPriority PriorityOf(RouteOperation operation, IReadOnlySet<NodeName> failed) => operation switch
    {
        _ when !RouteCalls.NeedsCall(operation) => WorkPriority.Record,
        RouteOperation.Replace replace when failed.Contains(replace.Previous) => WorkPriority.Repair,
        RouteOperation.Delete delete when failed.Contains(delete.Target) => WorkPriority.Repair,
        RouteOperation.DisableSourceDestCheck => WorkPriority.SourceDestCheck,
        _ => WorkPriority.Plan,
    };

    /// <summary>
    /// What waits is now <paramref name="operations"/> (a fresh diff), in order of priority (stable within one), less the
    /// keys already under way; a retry keeps its attempt and backoff while its key is still wanted.
    /// </summary>
    public RouteWork Replanned(IEnumerable<RouteOperation> operations, IReadOnlySet<NodeName> failed)
    {
        var waiting = operations.Where(o => !InFlight.ContainsKey(OperationKey.Of(o)))
            .Select((o, i) => (Operation: o, Priority: PriorityOf(o, failed), Index: i))
            .OrderBy(o => o.Priority).ThenBy(o => o.Index).Select(o => o.Operation).ToImmutableArray();
        var wanted = waiting.Select(OperationKey.Of).ToHashSet();
        return this with { Waiting = waiting, Retries = Retries.Where(r => wanted.Contains(r.Key)).ToImmutableDictionary() };
    }

    /// <summary>
    /// The operations that may start at <paramref name="now"/>, in order: records at once; a call when its key is free, its
    /// backoff over, a call slot free, a token left (plan work and checks leave <see cref="CallBudget.ReserveForRepairs"/>),
    /// and for a create, room in its table (<paramref name="room"/>: routes the table may still take, less creates under
    /// way). Also when to look again, if something waits for time (a token or a backoff).
    /// </summary>
    public (RouteWork Work, ImmutableArray<StartedOperation> Started, DateTimeOffset? WakeAt) Take(DateTimeOffset now,
        IReadOnlyDictionary<string, int> room, CallBudget budget, IReadOnlySet<NodeName> failed)
    {
        var bucket = Bucket;
        var inFlight = InFlight.ToBuilder();
        var retries = Retries;
        var calls = CallsInFlight;
        var creating = InFlight.Values.Select(s => s.Operation).OfType<RouteOperation.Create>()
            .GroupBy(c => c.Table).ToDictionary(g => g.Key, g => g.Count());
        var started = ImmutableArray.CreateBuilder<StartedOperation>();
        var left = ImmutableArray.CreateBuilder<RouteOperation>();
        DateTimeOffset? wake = null;
        void WakeAt(DateTimeOffset at) => wake = wake is { } w && w <= at ? w : at;

        foreach (var operation in Waiting)
        {
            var key = OperationKey.Of(operation);
            if (inFlight.ContainsKey(key))
            {
                left.Add(operation);
                continue;
            }
            if (!RouteCalls.NeedsCall(operation))
            {
                inFlight[key] = new StartedOperation(operation, 0);
                started.Add(inFlight[key]);
                continue;
            }
            var attempt = 0;
            if (retries.TryGetValue(key, out var retry))
            {
                attempt = retry.Attempt;
                if (retry.NotBefore > now)
                {
                    WakeAt(retry.NotBefore);
                    left.Add(operation);
                    continue;
                }
            }
            var keep = PriorityOf(operation, failed) == WorkPriority.Repair ? 0 : budget.ReserveForRepairs;
            var noRoom = operation is RouteOperation.Create create
                && creating.GetValueOrDefault(create.Table) >= room.GetValueOrDefault(create.Table, int.MaxValue);
            if (calls >= budget.MaxCallsInFlight || noRoom)
            {
                left.Add(operation);
                continue;
            }
            if (!bucket.CanTake(now, keep))
            {
                WakeAt(now + bucket.Until(now, keep));
                left.Add(operation);
                continue;
            }
            bucket = bucket.Take(now);
            calls++;
            if (operation is RouteOperation.Create c) creating[c.Table] = creating.GetValueOrDefault(c.Table) + 1;
            retries = retries.Remove(key);
            inFlight[key] = new StartedOperation(operation, attempt);
            started.Add(inFlight[key]);
        }
        return (this with { Waiting = left.ToImmutable(), InFlight = inFlight.ToImmutable(), Retries = retries, Bucket = bucket },
            started.ToImmutable(), wake);
    }

    /// <summary>The operation's record is written: its key is free again.</summary>
    public RouteWork Finished(RouteOperation operation) => this with { InFlight = InFlight.Remove(OperationKey.Of(operation)) };

    /// <summary>
    /// The call is sent again, as attempt <paramref name="attempt"/>, not before <paramref name="notBefore"/>; a throttled call
    /// empties the bucket, since EC2's own is empty.
    /// </summary>
    public RouteWork RetryLater(RouteOperation operation, int attempt, DateTimeOffset notBefore, bool throttled, DateTimeOffset now,
        IReadOnlySet<NodeName> failed)
    {
        var key = OperationKey.Of(operation);
        var priority = PriorityOf(operation, failed);
        var at = Waiting.Select((o, i) => (o, i)).FirstOrDefault(x => PriorityOf(x.o, failed) > priority, (null!, Waiting.Length)).Item2;
        return this with
        {
            InFlight = InFlight.Remove(key),
            Waiting = Waiting.Any(o => OperationKey.Of(o) == key) ? Waiting : Waiting.Insert(at, operation),
            Retries = Retries.SetItem(key, (attempt, notBefore)),
            Bucket = throttled ? Bucket.Emptied(now) : Bucket,
        };
    }
}
