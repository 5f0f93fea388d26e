using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Routing;
using Romana.Host.Composition;
using Romana.Host.Ec2;
using Romana.Host.Ipam;
using Romana.Host.Persistence;

namespace Romana.Host.Benchmarks;

/// <summary>
/// Planner speed on a large cluster (5,000 nodes in 60 subnets of 3 zones, one route table per zone), re-planning after
/// one node's health changes, and the number of EC2 calls a reconcile sends per differing route.
/// </summary>
public static class RouteBenchmark
{
    public sealed record Figure(string Measure, double MedianMs, int Runs, string Note);
    public sealed record Result(string Machine, int Nodes, int Subnets, int Blocks, int Pods, IReadOnlyList<Figure> Figures,
        int DifferingRoutes, int MutatingCalls);

    public static async Task<Result> RunAsync(int nodes, int subnets, int runs, Action<string>? progress)
    {
        var cluster = Cluster(nodes, subnets, seed: 42);
        var figures = new List<Figure>();
        foreach (var limit in new[] { 50, 100, 500 })
        {
            var input = cluster with { Tables = [.. cluster.Tables.Select(t => t with { Budget = limit })] };
            RoutePlan? plan = null;
            ImmutableArray<BudgetShortfall> shortfalls = [];
            var ms = Median(runs, () => plan = RoutePlanner.Plan(input, null, out shortfalls));
            figures.Add(new Figure($"plan, budget {limit}", ms, runs, plan is null
                ? $"refused: {shortfalls[0]}"
                : $"{plan.Tables.Sum(t => t.Routes.Length)} routes, {plan.ForwardedFraction:P1} of pods forwarded"));
            progress?.Invoke($"plan at budget {limit}: {ms:0.00} ms");
        }

        var budget500 = cluster with { Tables = [.. cluster.Tables.Select(t => t with { Budget = 500 })] };
        var layout = RoutePlanner.Layout(budget500, out _)!;
        var current = RoutePlanner.AssignTargets(layout, budget500, null);
        var forwarder = current.Tables[0].Routes[0].Target;
        var failed = budget500 with { Nodes = [.. budget500.Nodes.Select(n => n.Name == forwarder ? n with { Healthy = false } : n)] };
        var replanMs = Median(runs * 10, () => RoutePlanner.AssignTargets(layout, failed, current));
        figures.Add(new Figure("re-plan after one node's health changed (budget 500)", replanMs, runs * 10,
            "targets only: the layout is kept"));

        progress?.Invoke("reconcile through the route manager on an in-memory EC2");
        var (differing, calls) = await ReconcileCallsAsync(budget500, forwarder);
        return new Result(Machine(), nodes, subnets, cluster.Blocks.Length, cluster.Blocks.Sum(b => b.Pods), figures, differing, calls);
    }

    /// <summary>Converges on an in-memory EC2, fails one forwarder, and counts the mutating calls of the next pass.</summary>
    private static async Task<(int Differing, int Calls)> ReconcileCallsAsync(RoutingInput input, NodeName forwarder)
    {
        var ec2 = new Ec2Lab();
        foreach (var table in input.Tables) ec2.AddRouteTable(table.Id, routeLimit: 500, tags: [new("romana.io/cluster", "bench")]);
        var source = new Source(new RoutingSnapshot(input.Subnets, input.Nodes, input.Blocks));
        var settings = RouteSettings.Default with
        {
            Tables = new RouteTableSelector([], "romana.io/cluster", "bench"),
            RouteLimit = 500,
            ReconcileInterval = TimeSpan.FromHours(1),
            // Calls are counted here, not paced: EC2's rate would make the 5,000 checks of the first convergence take 17 minutes.
            Ec2Rate = new TokenBucketSettings(1_000_000, 1_000_000),
        };
        await using var journal = await FreshJournal.SqliteAsync();
        await using var romana = await RomanaHost.StartAsync(ConfigurationFactory.ParseString("akka.loglevel = WARNING"),
            akka => akka.AddRomanaPersistence(journal.Settings).AddRomanaRoutes(null), services => services
                .AddSingleton<IEc2RouteTables>(new Ec2LabRouteTables(ec2)).AddSingleton<IRoutingSource>(source)
                .AddSingleton(settings), "bench");
        var manager = romana.Registry.Get<VpcRouteActor>();
        var before = await SettledAsync(manager);
        ec2.ClearCalls();
        source.Snapshot = source.Snapshot with
        {
            Nodes = [.. source.Snapshot.Nodes.Select(n => n.Name == forwarder ? n with { Healthy = false } : n)]
        };
        manager.Tell(new RouteManagerMessages.Reconcile("health changed"));
        var after = await SettledAsync(manager, before.Passes);
        var differing = after.Routes.Count(r => !before.Routes.Contains(r));
        return (differing, ec2.Calls.Count(c => !c.Action.StartsWith("Describe", StringComparison.Ordinal)));
    }

    private static async Task<RouteManagerMessages.RouteManagerView> SettledAsync(IActorRef manager, long afterPasses = 0)
    {
        while (true)
        {
            var view = await manager.Ask<RouteManagerMessages.RouteManagerView>(new RouteManagerMessages.GetRouteState(),
                TimeSpan.FromSeconds(30));
            if (view.Passes > afterPasses && view.Routes.Length > 0) return view;
            await Task.Delay(50);
        }
    }

    /// <summary>Zones of equal subnets; each node owns one to three /26 blocks with 20 to 110 pods each.</summary>
    public static RoutingInput Cluster(int nodes, int subnets, int seed)
    {
        var random = new Random(seed);
        const int zones = 3;
        var perZone = (subnets + zones - 1) / zones;
        var subnetList = Enumerable.Range(0, subnets).Select(i =>
        {
            var zone = i / perZone;
            // 100.64.0.0/10: four zone slots of /12, 32 subnet slots of /17 in each.
            var prefix = new Ipv4Cidr(new Ipv4(Ipv4.Parse("100.64.0.0").Value + (uint)(zone << 20) + (uint)((i % perZone) << 15)), 17);
            return new PlanSubnet(new SubnetId($"subnet-{i:00}"), prefix, $"rtb-zone-{zone}");
        }).ToList();
        var nextBlock = new int[subnets];
        var nodeList = new List<PlanNode>();
        var blocks = new List<PlanBlock>();
        for (var n = 0; n < nodes; n++)
        {
            var subnet = n % subnets;
            var node = new PlanNode(new NodeName($"node-{n:0000}"), subnetList[subnet].Id, new Ipv4(0x0A000000u + (uint)n), $"eni-{n:x5}",
                true);
            nodeList.Add(node);
            for (var b = random.Next(1, 4); b > 0; b--)
                blocks.Add(new PlanBlock(subnetList[subnet].PodPrefix.Slot((ulong)nextBlock[subnet]++, 26), node.Name,
                    random.Next(20, 111)));
        }
        return new RoutingInput([.. subnetList], [.. nodeList], [.. blocks],
            [.. Enumerable.Range(0, zones).Select(z => new PlanTable($"rtb-zone-{z}", 50))]);
    }

    private static double Median(int runs, Action action)
    {
        for (var i = 0; i < 3; i++) action(); // warm-up: JIT
        var times = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            var started = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[runs / 2];
    }

    private static string Machine() =>
        $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, " +
        $".NET {Environment.Version}";

    private sealed class Source(RoutingSnapshot snapshot) : IRoutingSource
    {
        public RoutingSnapshot Snapshot { get; set; } = snapshot;
        public Task<RoutingSnapshot> ReadAsync(CancellationToken cancellation = default) => Task.FromResult(Snapshot);
    }
}
