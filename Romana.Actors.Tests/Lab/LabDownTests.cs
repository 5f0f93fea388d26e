using System.Diagnostics;
using System.Text.Json.Nodes;
using Romana.Host.Lab;
using Xunit.Abstractions;

namespace Romana.Actors.Tests.Lab;

/// <summary>`romana lab down` after a lab that came up, and after `romana lab up` was killed half way (a small lab each).</summary>
[Collection(LabCollection.Name)]
public sealed class LabDownTests(ITestOutputHelper output)
{
    private static readonly string[] Small =
        ["--zones", "1", "--subnets-per-zone", "2", "--nodes-per-subnet", "1", "--pods-per-node", "1"];

    [SkippableFact]
    public void Lab_down_leaves_no_namespace_process_folder_or_server_and_the_host_as_it_was()
    {
        Skip.If(LabCli.WhyNot is not null, LabCli.WhyNot);
        LabCli.Romana("lab", "down");
        var before = LabCli.HostNetwork();
        try
        {
            var up = LabCli.Romana(["lab", "up", "--cni-plugin", LabCli.PluginPath, .. Small]);
            output.WriteLine(up.Output + up.Error);
            Assert.True(up.Ok, up.Output + up.Error);
            var status = JsonNode.Parse(LabCli.Romana("lab", "status", "--json").Output)!;
            var pids = status["nodes"]!.AsArray().Select(n => n!["pid"]!.GetValue<int>()).ToList();
            var namespaces = LabCli.LabNamespaces();
            pids.AddRange(LabCli.ProcessesIn(namespaces));
            Assert.Equal(2 + 2 + 2 + 2, namespaces.Count); // router, outside, 2 bastions, 2 nodes, 2 pods
            Assert.Equal(2, namespaces.Count(n => n.StartsWith("rlab-bastion-", StringComparison.Ordinal)));

            var down = LabCli.Romana("lab", "down");
            output.WriteLine(down.Output + down.Error);
            Assert.True(down.Ok);
            AssertNothingLeft(pids, before);
        }
        finally
        {
            LabCli.Romana("lab", "down");
        }
    }

    [SkippableFact]
    public void Lab_down_after_lab_up_was_killed_half_way_removes_everything()
    {
        Skip.If(LabCli.WhyNot is not null, LabCli.WhyNot);
        LabCli.Romana("lab", "down");
        var before = LabCli.HostNetwork();
        var pids = new List<int>();
        try
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            string[] arguments = [Support.DaemonProcess.RomanaDll, "lab", "up", "--cni-plugin", LabCli.PluginPath, .. Small];
            foreach (var argument in arguments)
                start.ArgumentList.Add(argument);
            using var up = Process.Start(start)!;
            up.BeginOutputReadLine();
            up.BeginErrorReadLine();
            // Killed once the daemons run: PostgreSQL, EC2 and daemons are up, pods not yet wired.
            var waited = Stopwatch.StartNew();
            while (LabState.Load() is not { DaemonPids.Count: > 0 } && waited.Elapsed < TimeSpan.FromMinutes(3) && !up.HasExited)
                Thread.Sleep(100);
            Assert.False(up.HasExited, "romana lab up ended before it could be killed");
            up.Kill();
            up.WaitForExit();
            pids.AddRange(LabCli.ProcessesIn(LabCli.LabNamespaces()));
            Assert.NotEmpty(pids);
            output.WriteLine(
                $"killed romana lab up after {waited.Elapsed.TotalSeconds:0.0} s; {pids.Count} processes in the lab's namespaces");

            var down = LabCli.Romana("lab", "down");
            output.WriteLine(down.Output + down.Error);
            Assert.True(down.Ok);
            AssertNothingLeft(pids, before);
        }
        finally
        {
            LabCli.Romana("lab", "down");
        }
    }

    private static void AssertNothingLeft(IEnumerable<int> pids, string hostBefore)
    {
        Assert.Empty(LabCli.LabNamespaces());
        Assert.False(Directory.Exists(LabLayout.RunFolder));
        var waited = Stopwatch.StartNew();
        while (pids.Any(LabCli.Alive) && waited.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(100);
        Assert.DoesNotContain(pids, LabCli.Alive);
        Assert.DoesNotContain("romana-lab", Support.Processes.Run("ps", ["-eo", "args"]).Output);
        Assert.Equal(hostBefore, LabCli.HostNetwork());
    }
}
