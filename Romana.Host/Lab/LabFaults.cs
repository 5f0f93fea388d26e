using System.Diagnostics;
using System.Globalization;

namespace Romana.Host.Lab;

/// <summary>What a failure test or benchmark does to a node of the lab, and how it puts the node back.</summary>
public static class LabFaults
{
    /// <summary>kill -9 of the node's daemon, and its link down: the node is gone as a machine would be.</summary>
    public static void Kill(LabView.LabNodeView node)
    {
        LabShell.Run("kill", ["-9", node.Pid.ToString(CultureInfo.InvariantCulture)]);
        LabShell.Ip(node.Netns, "link", "set", "eth0", "down");
    }

    /// <summary>
    /// Link up, default route back, daemon started again; returns the lab once every daemon runs, a route manager is known
    /// and EC2 routes every pod through a live node of its subnet, or null after <paramref name="within"/>.
    /// </summary>
    public static async Task<LabView?> RestoreAsync(TimeSpan within, params LabView.LabNodeView[] nodes)
    {
        foreach (var node in nodes)
        {
            LabShell.Ip(node.Netns, "link", "set", "eth0", "up");
            LabShell.Ip(node.Netns, "route", "replace", "default", "via", node.Gateway);
            LabRunner.RestartDaemon(node.Name);
        }
        var whole = await UntilAsync(within, () =>
        {
            var now = LabView.Now();
            return now.Nodes.All(n => LabShell.IsAlive(n.Pid)) && now.RouteManager is not null && now.Converged(dead: [])
                && EveryNodeUp(now) ? now : null;
        });
        // Found in the lab: a node killed within seconds of another's rejoin made the split-brain resolver see several
        // changes in one stable-after window and down the rejoined members too (DownIndirectlyConnected), and the sharding
        // coordinators stalled while they came back. A restored lab is given the resolver's window and more to settle.
        if (whole is not null) await Task.Delay(Settle);
        return whole;
    }

    /// <summary>What a restored lab waits after it is whole, before the next failure: twice the resolver's stable-after.</summary>
    public static readonly TimeSpan Settle = TimeSpan.FromSeconds(15);

    /// <summary>Whether a live daemon sees every node of the lab as an Up and reachable member.</summary>
    private static bool EveryNodeUp(LabView view) =>
        LabRunner.ClusterViewAsync(view.Nodes.Where(n => LabShell.IsAlive(n.Pid)).Select(n => n.Socket)).GetAwaiter().GetResult()
            is { } cluster && view.Nodes.All(n => cluster.Members.Any(m => m.Node == n.Name && m.Status == "Up" && m.Reachable));

    /// <summary>Asks every 500 ms until the answer is not null; a lab that did not answer this time is asked again.</summary>
    public static async Task<T?> UntilAsync<T>(TimeSpan within, Func<T?> check) where T : class
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < within)
        {
            try
            {
                if (check() is { } value) return value;
            }
            catch (Exception e) when (e is LabException or InvalidOperationException or IOException)
            {
                // EC2 or a daemon did not answer this time.
            }
            await Task.Delay(500);
        }
        return null;
    }
}
