using System.Collections.Immutable;
using Romana.Actors.Addressing;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Routing;

/// <summary>One step of a reconcile pass: an EC2 call to make, or a fact to record without one.</summary>
public abstract record RouteOperation(string Table, string Reason)
{
    /// <summary>CreateRoute; <paramref name="Claimed"/> when the route is already Romana's (a claim, or drift repair).</summary>
    public sealed record Create(string Table, Ipv4Cidr Cidr, NodeName Target, string Eni, bool Claimed, string Reason)
        : RouteOperation(Table, Reason);
    public sealed record Replace(string Table, Ipv4Cidr Cidr, NodeName Previous, NodeName Target, string Eni, string Reason)
        : RouteOperation(Table, Reason);
    /// <summary>DeleteRoute; without <paramref name="Call"/> the route is already gone from EC2 and only the record is closed.</summary>
    public sealed record Delete(string Table, Ipv4Cidr Cidr, NodeName Target, bool Call, string Reason) : RouteOperation(Table, Reason);
    /// <summary>A claimed route found in EC2 with its target: the create went through.</summary>
    public sealed record Confirm(string Table, Ipv4Cidr Cidr, NodeName Target, string Eni, string Reason) : RouteOperation(Table, Reason);
    /// <summary>A claimed route found in EC2 with another target: not Romana's.</summary>
    public sealed record DropClaim(string Table, Ipv4Cidr Cidr, string Reason) : RouteOperation(Table, Reason);
    public sealed record DisableSourceDestCheck(NodeName Node, string Eni) : RouteOperation("", "node can receive and forward pod traffic");
    /// <summary>
    /// An owned route that EC2 already sends where the plan wants, though the journal names another target (a forwarder
    /// supervisor's standby repair moved it while the route manager was away): recorded as replaced, with no call.
    /// </summary>
    public sealed record TakeAsFound(string Table, Ipv4Cidr Cidr, NodeName Previous, NodeName Target, string Eni, string Reason)
        : RouteOperation(Table, Reason);
}

/// <summary>
/// Compares what the route manager owns, what EC2 shows and what the plan wants, and lists the steps, each at most one
/// EC2 call. A route Romana does not own is never touched: ownership comes only from its own journal.
/// </summary>
public static class Reconciler
{
    /// <summary>
    /// The planner's input: the cluster,
    /// and every managed table found in EC2 with its budget (its limit minus the routes Romana does not own).
    /// </summary>
    public static RoutingInput Input(RoutingSnapshot cluster, IReadOnlyList<Ec2RouteTable> tables, RouteManagerState state,
        int configuredLimit) =>
        new(cluster.Subnets, cluster.Nodes, cluster.Blocks, [.. tables.Select(t =>
        {
            var owned = state.OwnedIn(t.Id);
            var foreign = t.Routes.Count(r => !r.IsLocal && !(Ipv4Cidr.TryParse(r.Destination, out var cidr) && owned.ContainsKey(cidr)));
            var limit = Math.Min(configuredLimit, state.LearnedLimits.GetValueOrDefault(t.Id, int.MaxValue));
            return new PlanTable(t.Id, Math.Max(0, limit - foreign));
        })]);

    /// <summary>The described tables the journal does not know yet: from now on they are managed.</summary>
    public static ImmutableArray<IRouteEvent> Adopted(RouteManagerState state, IReadOnlyList<Ec2RouteTable> tables,
        RouteTableSelector selector, DateTimeOffset now) =>
        [.. tables.Where(t => !state.Tables.Contains(t.Id)).Select(t => new RouteTableAdopted(t.Id, now, $"selected by {selector}"))];

    /// <summary>
    /// The tables' budgets and the subnets each serves, when they differ from what the journal says (so a replay can
    /// tell what each table could hold and whom it reached); null when nothing changed.
    /// </summary>
    public static RouteBudgetsObserved? BudgetsObserved(RouteManagerState state, RoutingInput input, DateTimeOffset now)
    {
        var budgets = input.Tables.ToImmutableDictionary(t => t.Id, t => t.Budget);
        var serves = input.Tables.ToImmutableDictionary(t => t.Id,
            t => input.Subnets.Where(s => s.RouteTable == t.Id).Select(s => s.Id).ToImmutableArray());
        var unchanged = budgets.OrderBy(b => b.Key).SequenceEqual(state.Budgets.OrderBy(b => b.Key))
            && serves.All(s => state.Serves.TryGetValue(s.Key, out var known) && known.SequenceEqual(s.Value));
        return unchanged ? null : new RouteBudgetsObserved(budgets, now, "tables described", serves);
    }

    /// <summary>
    /// Steps in the order they matter: what EC2 already shows is recorded, failed targets are replaced, unwanted routes
    /// make room, then new routes, the least specific first (one route per subnet is what makes every pod reachable; more
    /// specific ones only save a hop), then the source/destination checks, those of route targets first. No route is
    /// created or replaced toward a node judged failed (a subnet without a healthy node keeps the routes it has).
    /// </summary>
    public static ImmutableArray<RouteOperation> Diff(RouteManagerState state, IReadOnlyList<Ec2RouteTable> actual, RoutePlan desired,
        RoutingInput input, string passReason)
    {
        var unhealthy = input.Nodes.Where(n => !n.Healthy).Select(n => n.Name).ToHashSet();
        var subnetOf = input.Nodes.ToDictionary(n => n.Name, n => n.Subnet.Value);
        var targets = desired.Tables.SelectMany(t => t.Routes).Select(r => r.Target).ToHashSet();
        var checks = input.Nodes.Where(n => n.Eni.Length > 0 && !state.CheckedEnis.Contains(n.Eni))
            .OrderBy(n => targets.Contains(n.Name) ? 0 : 1)
            .Select(n => (RouteOperation)new RouteOperation.DisableSourceDestCheck(n.Name, n.Eni));
        var claims = new List<RouteOperation>();
        var replaces = new List<RouteOperation>();
        var deletes = new List<RouteOperation>();
        var creates = new List<RouteOperation.Create>();

        foreach (var table in actual)
        {
            var wanted = desired.Table(table.Id)?.Routes.ToDictionary(r => r.Cidr) ?? [];
            var inEc2 = table.Routes.Where(r => !r.IsLocal && Ipv4Cidr.TryParse(r.Destination, out _))
                .ToDictionary(r => Ipv4Cidr.Parse(r.Destination), r => r.Target);
            var owned = state.OwnedIn(table.Id);
            var dropped = new HashSet<Ipv4Cidr>();

            foreach (var route in owned.Values.Where(r => !r.Confirmed))
            {
                if (!inEc2.TryGetValue(route.Cidr, out var target)) continue; // the create did not happen: it is sent again below
                if (target == route.Eni)
                    claims.Add(new RouteOperation.Confirm(table.Id, route.Cidr, route.Target, route.Eni,
                        "created before the manager restarted"));
                else
                {
                    claims.Add(new RouteOperation.DropClaim(table.Id, route.Cidr,
                        $"exists with target {target}, which Romana did not set"));
                    dropped.Add(route.Cidr);
                }
            }

            foreach (var (cidr, route) in wanted)
            {
                if (dropped.Contains(cidr) || unhealthy.Contains(route.Target)) continue;
                var present = inEc2.TryGetValue(cidr, out var target);
                if (!owned.TryGetValue(cidr, out var mine))
                {
                    // Not Romana's: create only where the destination is free; an occupied one is left alone.
                    if (!present) creates.Add(new RouteOperation.Create(table.Id, cidr, route.Target, route.Eni, false, passReason));
                    continue;
                }
                if (!present)
                    creates.Add(new RouteOperation.Create(table.Id, cidr, route.Target, route.Eni, true,
                        mine.Confirmed ? "drift repair" : passReason));
                else if (target != route.Eni)
                {
                    var reason = mine.Eni == route.Eni ? "drift repair" : unhealthy.Contains(mine.Target) ? "failover" : passReason;
                    replaces.Add(new RouteOperation.Replace(table.Id, cidr, mine.Target, route.Target, route.Eni, reason));
                }
                else if (mine.Eni != route.Eni)
                    // EC2 is right already; the journal follows it, so the state matches EC2 and the route stays Romana's.
                    claims.Add(new RouteOperation.TakeAsFound(table.Id, cidr, mine.Target, route.Target, route.Eni,
                        mine.Target == route.Target ? "found in EC2 with the node's current ENI"
                            : $"moved by the supervisor of subnet {subnetOf.GetValueOrDefault(route.Target, "?")} while the route "
                                + "manager was away"));
            }

            foreach (var route in owned.Values.Where(r => !wanted.ContainsKey(r.Cidr) && !dropped.Contains(r.Cidr)))
                deletes.Add(new RouteOperation.Delete(table.Id, route.Cidr, route.Target, inEc2.ContainsKey(route.Cidr),
                    inEc2.ContainsKey(route.Cidr) ? passReason : "already gone from EC2"));
        }
        return [.. claims, .. replaces, .. deletes,
            .. creates.OrderBy(c => c.Cidr.PrefixLength).ThenBy(c => c.Table, StringComparer.Ordinal),
            .. checks];
    }
}
