using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Romana.Actors.Tests.Support;
using Romana.Contracts.Cni;
using Romana.Host.Lab;
using Xunit.Abstractions;

namespace Romana.Actors.Tests.Lab;

/// <summary>
/// The cluster under failures, in real packets and processes: the route singleton's host killed during another failover,
/// PostgreSQL restarted during a burst of ADDs, a node's remoting cut for 30 s. One lab with the defaults for the class;
/// each test puts back what it broke (link up, daemon started again) and waits until the cluster has converged and
/// settled before it ends, so the next finds a whole lab.
/// </summary>
[Collection(LabCollection.Name)]
public sealed partial class LabFailureTests(LabFixture lab, ITestOutputHelper output) : IClassFixture<LabFixture>
{
    /// <summary>The issue's bound on a failover's outage, in lost pings 50 ms apart.</summary>
    internal static readonly TimeSpan OutageBound = TimeSpan.FromSeconds(2.5);

    private void RequireLab()
    {
        Skip.If(lab.WhyNot is not null, lab.WhyNot);
        Assert.True(lab.Up.Ok, $"romana lab up failed: {lab.Up.Output}{lab.Up.Error}");
    }

    [SkippableFact]
    public async Task Killing_the_route_singletons_host_during_another_failover_moves_the_singleton_and_touches_no_foreign_route()
    {
        RequireLab();
        var view = LabView.Now();
        var singletonHost = view.Node(view.RouteManager);
        var path = view.ForwardedPaths().First(p => p.Forwarder != singletonHost.Name
            && view.Node(p.Forwarder).Subnet != singletonHost.Subnet && p.Source.Node != singletonHost.Name
            && p.Target.Node != singletonHost.Name);
        // Pods on other nodes, on a path through neither the forwarder nor the singleton's host: they lose nothing.
        var bystander = view.DirectPaths(exceptNodes: [path.Forwarder, singletonHost.Name]).First();
        output.WriteLine($"singleton on {singletonHost.Name}; failover of {path.Forwarder} "
            + $"({path.Source.Name} -> {path.Target.Name}); bystanders {bystander.Source.Name} -> {bystander.Target.Name}");
        var foreignBefore = view.ForeignRoutes();

        var behind = PingTrain.Start(path.Source, path.Target.Ip, TimeSpan.FromSeconds(40));
        var aside = PingTrain.Start(bystander.Source, bystander.Target.Ip, TimeSpan.FromSeconds(40));
        await Task.Delay(TimeSpan.FromSeconds(2));
        Kill(view.Node(path.Forwarder));
        await using var restoring = Restoring(view.Node(path.Forwarder), singletonHost);
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        Kill(singletonHost);
        var (behindResult, asideResult) = (await behind.Result, await aside.Result);
        output.WriteLine($"behind the forwarder: {behindResult}; bystanders: {asideResult}");

        // The singleton moves to a live member, and EC2 converges on routes to live nodes only.
        var moved = await LabFaults.UntilAsync(TimeSpan.FromSeconds(60), () =>
        {
            var now = LabView.Now();
            return now.RouteManager is { } host && host != singletonHost.Name && now.Converged(dead: [path.Forwarder, singletonHost.Name])
                ? now : null;
        });
        Assert.True(moved is not null, "the route singleton did not move, or EC2 did not converge, within 60 s");
        output.WriteLine($"singleton now on {moved.RouteManager}");
        Assert.Equal(foreignBefore, moved.ForeignRoutes());
        Assert.Empty(LogLines("RouteAlreadyExists"));
        Assert.True(asideResult.Lost == 0, $"bystanders lost packets: {asideResult}");
        // The route manager died with its host before it could move the forwarder's routes: the forwarder's subnet's
        // supervisor, which got no acknowledgement within romana.health.standby-repair-after, moved them itself, so the
        // outage is that of any failover, not the cluster's downing and hand-over (about 20 s before the standby repair).
        Assert.True(behindResult.Outage <= OutageBound,
            $"outage behind the forwarder {behindResult.Outage.TotalSeconds:0.00} s > {OutageBound.TotalSeconds} s: {behindResult}");
    }

    [SkippableFact]
    public async Task PostgreSQL_restarted_during_a_burst_of_adds_on_several_nodes_loses_no_acknowledged_address()
    {
        RequireLab();
        var view = LabView.Now();
        var nodes = view.Nodes.GroupBy(n => n.Subnet).Select(g => g.First()).ToList();
        var pids = nodes.ToDictionary(n => n.Name, n => n.Pid);
        var acknowledged = new ConcurrentDictionary<string, (string Node, string Address)>();
        var refused = new ConcurrentBag<string>();
        var stop = Stopwatch.StartNew();
        var restarted = false;
        var bursts = nodes.Select(node => Task.Run(() =>
        {
            for (var i = 0; stop.Elapsed < TimeSpan.FromSeconds(90) && (i < 40 || !restarted); i++)
            {
                var key = $"burst-{node.Name}-{i}";
                // A runtime retries an ADD that failed, for as long as the pod waits.
                while (stop.Elapsed < TimeSpan.FromSeconds(90))
                {
                    var answer = DaemonWire.Send(node.Socket, DaemonProcessAdd(key), TimeSpan.FromSeconds(30));
                    if (answer.Ok)
                    {
                        acknowledged[key] = (node.Name, Bare(answer.Reply!.Address!));
                        break;
                    }
                    refused.Add($"{key}: {answer}");
                    Thread.Sleep(200);
                }
            }
        })).ToList();
        await Task.Delay(TimeSpan.FromSeconds(1));
        var restart = LabRunner.RestartPostgres();
        restarted = true;
        output.WriteLine($"PostgreSQL restarted ({restart.Exit}): {restart.Output.Trim()} {restart.Error.Trim()}");
        Assert.True(restart.Ok, restart.Error);
        await Task.WhenAll(bursts);
        output.WriteLine($"{acknowledged.Count} ADDs acknowledged, {refused.Count} refused and retried; first refusals: "
            + string.Join(" | ", refused.Take(3)));
        Assert.True(refused.Count > 0, "no ADD met the restart: the test proved nothing");

        // Every acknowledged address is still the key's (a repeated ADD answers it again), and no two keys share one.
        foreach (var (key, (node, address)) in acknowledged)
        {
            var again = DaemonWire.Send(view.Node(node).Socket, DaemonProcessAdd(key), TimeSpan.FromSeconds(10));
            Assert.True(again.Ok && Bare(again.Reply!.Address!) == address, $"{key} on {node}: acknowledged {address}, now {again}");
        }
        var all = acknowledged.Values.Select(v => v.Address).Concat(view.Pods.Select(p => p.Ip)).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
        // The daemons recovered without a restart.
        Assert.All(nodes, n => Assert.Equal(pids[n.Name], LabView.Now().Node(n.Name).Pid));

        foreach (var (key, (node, _)) in acknowledged)
            Assert.True(DaemonWire.Send(view.Node(node).Socket, new DaemonRequest(DaemonProtocol.Del, key, "eth0"),
                TimeSpan.FromSeconds(10)).Ok, $"DEL {key}");
    }

    [SkippableFact]
    public async Task A_node_cut_off_from_the_cluster_for_30_s_hands_out_no_ungranted_block_and_rejoins_by_itself()
    {
        RequireLab();
        var view = LabView.Now();
        // A node that is neither the singleton's host nor a seed (the first node of each zone), and a peer of its subnet that
        // competes with it for the subnet's blocks meanwhile.
        var seeds = view.Nodes.GroupBy(n => n.Zone).Select(z => z.First().Name).ToHashSet();
        var cut = view.Nodes.First(n => n.Name != view.RouteManager && !seeds.Contains(n.Name));
        var peer = view.Nodes.First(n => n.Subnet == cut.Subnet && n.Name != cut.Name);
        output.WriteLine($"cutting {cut.Name}'s remoting (port 4053) for 30 s; {peer.Name} takes addresses meanwhile");
        LabShell.Nft(cut.Netns, """
            table inet rlab_partition {
              chain input { type filter hook input priority 0; tcp dport 4053 drop; tcp sport 4053 drop; }
              chain output { type filter hook output priority 0; tcp dport 4053 drop; tcp sport 4053 drop; }
            }
            """);
        var acknowledged = new ConcurrentDictionary<string, (string Node, string Address)>();
        var refusals = new ConcurrentDictionary<string, int>();
        var partition = Stopwatch.StartNew();
        try
        {
            // Each side asks for more addresses than a block holds, so both need a new block while they are apart.
            var takers = new[] { cut, peer }.Select(node => Task.Run(() =>
            {
                for (var i = 0; i < 80 && partition.Elapsed < TimeSpan.FromSeconds(30); i++)
                {
                    var key = $"split-{node.Name}-{i}";
                    var answer = DaemonWire.Send(node.Socket, DaemonProcessAdd(key), TimeSpan.FromSeconds(12));
                    if (answer.Ok) acknowledged[key] = (node.Name, Bare(answer.Reply!.Address!));
                    else refusals.AddOrUpdate(node.Name, 1, (_, n) => n + 1);
                }
            })).ToList();
            await Task.WhenAll(takers);
            await Task.Delay(TimeSpan.FromSeconds(30) - partition.Elapsed is { Ticks: > 0 } rest ? rest : TimeSpan.Zero);
        }
        finally
        {
            LabShell.Run("ip", ["netns", "exec", cut.Netns, "nft", "delete", "table", "inet", "rlab_partition"]);
        }
        output.WriteLine($"healed after {partition.Elapsed.TotalSeconds:0.0} s; acknowledged "
            + $"{acknowledged.Count(a => a.Value.Node == cut.Name)}"
            + $" on {cut.Name}, {acknowledged.Count(a => a.Value.Node == peer.Name)} on {peer.Name}; refused "
            + string.Join(", ", refusals.Select(r => $"{r.Value} on {r.Key}")));

        // The cut node's daemon rejoins by itself (the same process), and the cluster converges with every node alive.
        var whole = await LabFaults.UntilAsync(TimeSpan.FromSeconds(120), () =>
        {
            var now = LabView.Now();
            var answer = DaemonWire.Send(cut.Socket, DaemonProcessAdd($"split-{cut.Name}-after"), TimeSpan.FromSeconds(5));
            return answer.Ok && now.Nodes.All(n => LabShell.IsAlive(n.Pid)) && now.RouteManager is not null
                && now.Converged(dead: []) ? now : null;
        });
        Assert.True(whole is not null, $"{cut.Name} did not rejoin, or the cluster did not converge, within 120 s");
        Assert.Equal(cut.Pid, whole.Node(cut.Name).Pid);

        // Nothing is held twice, and every acknowledged address is still its key's.
        var all = acknowledged.Values.Select(v => v.Address).Concat(view.Pods.Select(p => p.Ip)).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
        foreach (var (key, (node, address)) in acknowledged)
        {
            var again = DaemonWire.Send(view.Node(node).Socket, DaemonProcessAdd(key), TimeSpan.FromSeconds(10));
            Assert.True(again.Ok && Bare(again.Reply!.Address!) == address, $"{key} on {node}: acknowledged {address}, now {again}");
            Assert.True(DaemonWire.Send(view.Node(node).Socket, new DaemonRequest(DaemonProtocol.Del, key, "eth0"),
                TimeSpan.FromSeconds(10)).Ok, $"DEL {key}");
        }
        DaemonWire.Send(cut.Socket, new DaemonRequest(DaemonProtocol.Del, $"split-{cut.Name}-after", "eth0"), TimeSpan.FromSeconds(10));
    }

    // ---- failures and repairs --------------------------------------------------------------------------------------

    private static string Bare(string address) => address.Split('/')[0];

    private static DaemonRequest DaemonProcessAdd(string key) => new(DaemonProtocol.Add, key, "eth0", Pod: $"lab/{key}");

    private void Kill(LabView.LabNodeView node)
    {
        LabFaults.Kill(node);
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} killed {node.Name} (pid {node.Pid}) and set its link down");
    }

    /// <summary>Puts the nodes back when disposed, whatever the test found, so the next test finds a whole lab.</summary>
    internal static AsyncDisposable Restoring(params LabView.LabNodeView[] nodes) => new(async () =>
    {
        if (await LabFaults.RestoreAsync(TimeSpan.FromSeconds(120), nodes) is null)
            throw new InvalidOperationException("the lab did not come back whole within 120 s");
    });

    internal sealed class AsyncDisposable(Func<Task> dispose) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await dispose();
    }

    /// <summary>Which node hosts each subnet's forwarder supervisor now, from the daemons' logs (the latest line per subnet).</summary>
    internal static Dictionary<string, string> SupervisorHosts(LabView view)
    {
        var latest = new Dictionary<string, (string At, string Node)>();
        foreach (var node in view.Nodes.Where(n => LabCli.Alive(n.Pid)))
            foreach (Match match in SupervisorLine().Matches(File.ReadAllText(Path.Combine(node.Folder, "daemon.log"))))
            {
                var (at, subnet) = (match.Groups["at"].Value, match.Groups["subnet"].Value);
                if (!latest.TryGetValue(subnet, out var known) || string.CompareOrdinal(at, known.At) > 0) latest[subnet] = (at, node.Name);
            }
        return latest.ToDictionary(l => l.Key, l => l.Value.Node);
    }

    [GeneratedRegex(@"\]\[(?<at>\d\d/\d\d/\d{4} [\d:.]+)Z\].*Subnet (?<subnet>\S+): forwarder supervisor running here")]
    private static partial Regex SupervisorLine();

    private static List<string> LogLines(string containing) =>
        [.. Directory.GetFiles(Path.Combine(LabLayout.RunFolder, "nodes"), "daemon.log", SearchOption.AllDirectories)
            .SelectMany(File.ReadLines).Where(l => l.Contains(containing, StringComparison.Ordinal))];
}

/// <summary>
/// A forwarder killed and cut off, on a lab of its own that no other failure has touched. After the failures of
/// <see cref="LabFailureTests"/> in one lab, a forwarder failover in that same lab was seen not repaired within the ping
/// train (8.2 s, twice; not yet explained, see the README), while five failovers in a row on a lab that settled between
/// them stayed within 1.8 s (`romana lab bench`).
/// </summary>
[Collection(LabCollection.Name)]
public sealed class LabFailoverTests(LabFixture lab, ITestOutputHelper output) : IClassFixture<LabFixture>
{
    [SkippableFact]
    public async Task A_forwarder_killed_and_cut_off_costs_the_pods_behind_it_at_most_2_5_s()
    {
        Skip.If(lab.WhyNot is not null, lab.WhyNot);
        Assert.True(lab.Up.Ok, $"romana lab up failed: {lab.Up.Output}{lab.Up.Error}");
        var view = LabView.Now();
        var supervisors = LabFailureTests.SupervisorHosts(view);
        output.WriteLine($"route singleton on {view.RouteManager}; supervisors: "
            + string.Join(", ", supervisors.Select(s => $"{s.Key} on {s.Value}")));
        // A forwarder that also hosts another subnet's supervisor where there is one (the harder case: the judge of that
        // other subnet dies too), never the singleton's host.
        var path = view.ForwardedPaths().Where(p => p.Forwarder != view.RouteManager)
            .OrderByDescending(p => supervisors.ContainsValue(p.Forwarder)).First();
        var hostsSupervisorOf = supervisors.Where(s => s.Value == path.Forwarder).Select(s => s.Key).ToList();
        output.WriteLine($"ping {path.Source.Name} -> {path.Target.Name} ({path.Target.Ip}) through {path.Forwarder}, "
            + $"which hosts the supervisor of {(hostsSupervisorOf.Count == 0 ? "no subnet" : string.Join(", ", hostsSupervisorOf))}");
        // A subnet's judge never runs on a node of that subnet: the forwarder's own failure is judged elsewhere.
        Assert.NotEqual(path.Forwarder, supervisors.GetValueOrDefault(view.Node(path.Forwarder).Subnet));

        var train = PingTrain.Start(path.Source, path.Target.Ip, TimeSpan.FromSeconds(10));
        await Task.Delay(TimeSpan.FromSeconds(2));
        LabFaults.Kill(view.Node(path.Forwarder));
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} killed {path.Forwarder} and set its link down");
        await using (LabFailureTests.Restoring(view.Node(path.Forwarder)))
        {
            var result = await train.Result;
            output.WriteLine($"{result}");
            Assert.True(result.Received > 0, $"no ping answered at all: {result}");
            Assert.True(result.Outage <= LabFailureTests.OutageBound,
                $"outage {result.Outage.TotalSeconds:0.00} s > {LabFailureTests.OutageBound.TotalSeconds} s: {result}");
        }
    }

}
