using System.Collections.Immutable;
using Romana.Actors.Addressing;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Routing;

/// <summary>What the route manager's journal says: the tables it manages, the routes it owns, the limits EC2 taught it.</summary>
public sealed record RouteManagerState(
    ImmutableSortedSet<string> Tables,
    ImmutableDictionary<string, ImmutableSortedDictionary<Ipv4Cidr, OwnedRoute>> Owned,
    ImmutableDictionary<string, int> LearnedLimits,
    ImmutableHashSet<string> CheckedEnis,
    string? Refusal,
    ImmutableDictionary<string, int> Budgets,
    ImmutableDictionary<string, ImmutableArray<SubnetId>> Serves) : Persistence.IHasSnapshot
{
    public static readonly RouteManagerState Empty = new(ImmutableSortedSet<string>.Empty,
        ImmutableDictionary<string, ImmutableSortedDictionary<Ipv4Cidr, OwnedRoute>>.Empty, ImmutableDictionary<string, int>.Empty,
        ImmutableHashSet<string>.Empty, null, ImmutableDictionary<string, int>.Empty,
            ImmutableDictionary<string, ImmutableArray<SubnetId>>.Empty);

    public ImmutableSortedDictionary<Ipv4Cidr, OwnedRoute> OwnedIn(string table) =>
        Owned.TryGetValue(table, out var routes) ? routes : ImmutableSortedDictionary<Ipv4Cidr, OwnedRoute>.Empty;

    /// <summary>The owned routes as a plan, so the planner keeps healthy current targets.</summary>
    public RoutePlan AsPlan() => new([.. Owned.Select(t => new TablePlan(t.Key, 0,
        [.. t.Value.Values.Select(r => new PlannedRoute(r.Cidr, r.Target, r.Eni))]))], 0, []);

    public Persistence.IRomanaSnapshot ToSnapshotRecord() => new RouteManagerSnapshot([.. Tables],
        [.. Owned.SelectMany(t => t.Value.Values.Select(r => new OwnedRouteSnapshot(t.Key, r.Cidr, r.Target, r.Eni, r.Confirmed)))],
        LearnedLimits, [.. CheckedEnis.Order()], Refusal, Budgets, Serves);

    public RouteManagerState Apply(object e) => e switch
    {
        RouteTableAdopted adopted => this with { Tables = Tables.Add(adopted.Table) },
        RouteClaimed claimed => WithRoute(claimed.Table, new OwnedRoute(claimed.Cidr, claimed.Target, claimed.Eni, false)),
        RouteCreated created => WithRoute(created.Table, new OwnedRoute(created.Cidr, created.Target, created.Eni, true)),
        RouteReplaced replaced => WithRoute(replaced.Table, new OwnedRoute(replaced.Cidr, replaced.Target, replaced.Eni, true)),
        RouteDeleted deleted => WithoutRoute(deleted.Table, deleted.Cidr),
        RouteClaimDropped dropped => WithoutRoute(dropped.Table, dropped.Cidr),
        RouteLimitLearned learned => this with { LearnedLimits = LearnedLimits.SetItem(learned.Table, learned.Limit) },
        SourceDestCheckDisabled disabled => this with { CheckedEnis = CheckedEnis.Add(disabled.Eni) },
        PlanRefused refused => this with { Refusal = refused.Shortfalls },
        NoHealthyForwarder => this,
        RouteBudgetsObserved observed => this with { Budgets = observed.Budgets, Serves = observed.Serves ?? Serves },
        Ec2CallFailed => this,
        _ => throw new ArgumentException($"not a route event: {e.GetType().Name}", nameof(e)),
    };

    private RouteManagerState WithRoute(string table, OwnedRoute route) =>
        this with { Owned = Owned.SetItem(table, OwnedIn(table).SetItem(route.Cidr, route)), Refusal = null };

    private RouteManagerState WithoutRoute(string table, Ipv4Cidr cidr) =>
        this with { Owned = Owned.SetItem(table, OwnedIn(table).Remove(cidr)) };
}

public sealed record OwnedRouteSnapshot(string Table, Ipv4Cidr Cidr, NodeName Target, string Eni, bool Confirmed);

public sealed record RouteManagerSnapshot(ImmutableArray<string> Tables, ImmutableArray<OwnedRouteSnapshot> Routes,
    ImmutableDictionary<string, int> LearnedLimits, ImmutableArray<string> CheckedEnis, string? Refusal,
    ImmutableDictionary<string, int>? Budgets = null, ImmutableDictionary<string, ImmutableArray<SubnetId>>? Serves = null)
        : Persistence.IRomanaSnapshot
{
    public RouteManagerState ToState() => new([.. Tables],
        Routes.GroupBy(r => r.Table).ToImmutableDictionary(g => g.Key,
            g => g.ToImmutableSortedDictionary(r => r.Cidr, r => new OwnedRoute(r.Cidr, r.Target, r.Eni, r.Confirmed))),
        LearnedLimits, [.. CheckedEnis], Refusal, Budgets ?? ImmutableDictionary<string, int>.Empty,
        Serves ?? ImmutableDictionary<string, ImmutableArray<SubnetId>>.Empty);
}
