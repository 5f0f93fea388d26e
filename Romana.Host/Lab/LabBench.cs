using System.Globalization;
using System.Text.Json;

using static Romana.Host.Benchmarks.BenchStatistics;

namespace Romana.Host.Lab;

/// <summary>
/// <c>romana lab bench</c> on a lab that is up: CNI ADD latency through the plugin as a runtime calls it, on the cluster's
/// PostgreSQL journal, and the outage of a forwarder failover in real packets, over several runs (each run kills a
/// forwarder's daemon and sets its link down, measures, and puts the node back before the next).
/// </summary>
public static class LabBench
{
    /// <param name="ManagerOutagesS">The outages of the failovers during which the route singleton's host was killed too.</param>
    public sealed record Figures(int Adds, double AddMedianMs, double AddP99Ms, IReadOnlyList<double> OutagesS,
        IReadOnlyList<double> ManagerOutagesS, IReadOnlyList<string> Failovers)
    {
        public double OutageMedianS => Median(OutagesS);
        public double ManagerOutageMedianS => Median(ManagerOutagesS);
    }

    public static async Task<int> RunAsync(string cniPlugin, int adds, int failovers, int managerFailovers, bool json,
        TextWriter output)
    {
        var state = LabState.Load();
        if (state is not { Phase: "up" })
        {
            Console.Error.WriteLine("romana lab bench: no lab is up (romana lab up)");
            return 1;
        }
        var layout = new LabLayout(state.Options);
        var view = LabView.Now();
        var node = layout.Nodes.First(n => n.Name != view.RouteManager);
        var latencies = MeasureAdds(cniPlugin, node, adds, output);
        var outages = new List<double>();
        var managerOutages = new List<double>();
        var described = new List<string>();
        for (var run = 1; run <= failovers + managerFailovers; run++)
        {
            var withManager = run > failovers;
            view = LabView.Now();
            // A different forwarder each run where the lab has several; never the singleton's host. With the singleton's host
            // killed too: a path through neither it nor its subnet, as LabFailureTests picks one.
            var singleton = view.RouteManager is { } host ? view.Node(host) : null;
            var paths = view.ForwardedPaths().Where(p => p.Forwarder != view.RouteManager && (!withManager || singleton is not null
                && view.Node(p.Forwarder).Subnet != singleton.Subnet && p.Source.Node != singleton.Name
                && p.Target.Node != singleton.Name)).ToList();
            if (paths.Count == 0)
            {
                Console.Error.WriteLine("romana lab bench: no pod is reached through a forwarder"
                    + (withManager ? " outside the route singleton's subnet" : "") + " (is --route-limit below the blocks?)");
                return 1;
            }
            var forwarders = paths.Select(p => p.Forwarder).Distinct().Order(StringComparer.Ordinal).ToList();
            var path = paths.First(p => p.Forwarder == forwarders[(run - 1) % forwarders.Count]);
            var train = PingTrain.Start(path.Source, path.Target.Ip, TimeSpan.FromSeconds(10));
            await Task.Delay(TimeSpan.FromSeconds(2));
            var killed = new List<LabView.LabNodeView> { view.Node(path.Forwarder) };
            LabFaults.Kill(killed[0]);
            if (withManager)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(300));
                killed.Add(singleton!);
                LabFaults.Kill(singleton!);
            }
            var result = await train.Result;
            (withManager ? managerOutages : outages).Add(result.Outage.TotalSeconds);
            var line = $"failover {run}: {path.Source.Name} -> {path.Target.Name} through {path.Forwarder}"
                + (withManager ? $", the singleton's host {singleton!.Name} killed 300 ms later" : "") + $": {result}";
            described.Add(line);
            output.WriteLine(line);
            if (await LabFaults.RestoreAsync(TimeSpan.FromSeconds(180), [.. killed]) is null)
            {
                Console.Error.WriteLine($"romana lab bench: {string.Join(" and ", killed.Select(k => k.Name))} did not come back "
                    + "within 180 s");
                return 1;
            }
        }
        var figures = new Figures(latencies.Count, Median(latencies), Percentile(latencies, 0.99), outages, managerOutages,
            described);
        if (json)
            output.WriteLine(JsonSerializer.Serialize(figures, CamelCase));
        else
            output.WriteLine($"CNI ADD on {node.Name} (PostgreSQL journal, through the plugin): median {figures.AddMedianMs:0.0} ms, "
                + $"p99 {figures.AddP99Ms:0.0} ms over {figures.Adds}"
                + Outages("failover outage", outages) + Outages("with the singleton's host killed too", managerOutages));
        return 0;
    }

    /// <summary>
    /// ADD of <paramref name="count"/> new pods on one node, one after another, then their DELs; the ADD times in ms. The
    /// loop runs in one shell inside the node's namespace, as scripts/bench-cni.sh measures the single node: each figure is
    /// one plugin process (fork, exec, config on stdin, result read), with no `ip netns exec` (about 4 ms) per call.
    /// </summary>
    private static List<double> MeasureAdds(string plugin, LabNode node, int count, TextWriter output)
    {
        var pods = Enumerable.Range(1, count).Select(i => $"{LabLayout.Prefix}-bench-{i}").ToList();
        var config = $$"""{"cniVersion":"1.0.0","name":"romana-lab","type":"romana","daemonSocket":"{{node.Socket}}"}""";
        string Loop(string command) => $$"""
            for i in $(seq {{count}}); do
              export CNI_COMMAND={{command}} CNI_CONTAINERID=labbench$i CNI_NETNS=/var/run/netns/{{LabLayout.Prefix}}-bench-$i
              export CNI_IFNAME=eth0 CNI_PATH={{Path.GetDirectoryName(Path.GetFullPath(plugin))}}
              start=$(date +%s%N)
              echo '{{config}}' | {{plugin}} > /dev/null || { echo "failed $i" >&2; exit 1; }
              end=$(date +%s%N)
              echo $(( (end - start) / 1000 ))
            done
            """;
        try
        {
            foreach (var pod in pods) LabShell.Must("ip", "netns", "add", pod);
            var run = LabShell.Run("ip", ["netns", "exec", node.Netns, "bash", "-c", Loop("ADD")], timeout: TimeSpan.FromMinutes(10));
            if (!run.Ok) throw new LabException($"bench ADD on {node.Name}: {run.Error.Trim()}");
            var times = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(us => double.Parse(us, CultureInfo.InvariantCulture) / 1000).ToList();
            output.WriteLine($"{count} ADDs on {node.Name}: median {Median(times):0.0} ms, p99 {Percentile(times, 0.99):0.0} ms");
            return times;
        }
        finally
        {
            LabShell.Run("ip", ["netns", "exec", node.Netns, "bash", "-c", Loop("DEL")], timeout: TimeSpan.FromMinutes(10));
            foreach (var pod in pods) LabShell.Run("ip", ["netns", "del", pod]);
        }
    }

    private static string Outages(string what, IReadOnlyList<double> outages) => outages.Count == 0 ? ""
        : $"; {what}: median {Median(outages):0.00} s over {outages.Count} runs "
            + $"({string.Join(", ", outages.Select(o => o.ToString("0.00", CultureInfo.InvariantCulture)))} s)";

    private static readonly JsonSerializerOptions CamelCase = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
}
