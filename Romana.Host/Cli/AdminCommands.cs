using System.CommandLine;
using System.Text.Json.Nodes;
using Romana.Actors.Configuration;
using Romana.Contracts.Cni;
using Romana.Host.Dataplane;
using Spectre.Console;

namespace Romana.Host.Cli;

/// <summary>
/// `romana node remove` and `romana cluster status`: requests to the local daemon's admin API, on the same root-only Unix
/// socket as the CNI plugin's (<see cref="DaemonAdminRequests"/>). Exit 0 done, 1 refused or no daemon, 2 bad usage.
/// </summary>
public static class AdminCommands
{
    private static readonly TimeSpan StatusTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The daemon answers once the IPAM has (within 2 x romana.ipam.ask-timeout); this leaves it ample room.</summary>
    private static readonly TimeSpan RemoveTimeout = TimeSpan.FromSeconds(60);

    private static Option<string?> SocketOption() => new("--socket")
    {
        Description = "The daemon's Unix socket (default: romana.cni.socket from --config, as the daemon reads it; "
            + "/run/romana/cni.sock without --config)",
        HelpName = "PATH",
    };

    private static Option<string?> ConfigOption() => new("--config")
    {
        Description = "The daemon's HOCON file, for romana.cni.socket",
        HelpName = "FILE",
    };

    public static Command Node()
    {
        var name = new Argument<string>("NAME") { Description = "The node to remove (its romana.node.name)" };
        var (socket, config) = (SocketOption(), ConfigOption());
        var json = new Option<bool>("--json")
        {
            Description = """One JSON object: {"ok": true, "node", "subnet", "released"}, or {"ok": false, "code", "error"}""",
        };
        var remove = new Command("remove", """
            Removes a node from Romana, through the daemon on this machine: the node's pod addresses are released and its
            blocks returned to its subnet, each an event in the journal with the reason "removed by romana node remove",
            and its subnet forgets it. For a node whose daemon is gone for good (the instance was terminated); a node that
            only stops keeps its addresses, and its pods theirs, until this command. Refused while the node is an Up and
            reachable member of the cluster (stop its daemon first, and wait until it has left or been downed), for this
            daemon's own node, and for a node Romana does not know. Prints how many addresses were released. Exit 0 when
            removed, 1 when refused or no daemon answers, 2 on bad usage.
            """) { name, socket, config, json };
        remove.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            var target = parse.GetValue(name)!;
            if (DaemonAdminRequests.NodeNameProblem(target) is { } problem)
            {
                await Console.Error.WriteLineAsync($"romana: NAME {Printable.Quote(target)} {problem}");
                return CommandLineGuard.BadInput;
            }
            return await RemoveAsync(target, SocketPath(parse.GetValue(socket), parse.GetValue(config)), parse.GetValue(json), Console.Out,
                cancel);
        }));
        var node = new Command("node", "Romana's nodes, through the daemon on this machine.");
        node.Subcommands.Add(remove);
        return node;
    }

    public static Command Cluster()
    {
        var (socket, config) = (SocketOption(), ConfigOption());
        var json = new Option<bool>("--json")
        {
            Description = "One JSON object: {\"ok\": true, \"self\", \"enabled\", \"selfAddress\", \"members\": [{\"node\", "
                + "\"subnet\", \"address\", \"status\", \"reachable\"}], \"routeManager\"}",
        };
        var status = new Command("status", """
            The cluster as the daemon on this machine sees it: every member (its node, subnet, cluster address, Akka member
            status, and whether this member reaches it), oldest first, and the node whose daemon hosts the route manager
            singleton (the oldest Up member with the role node). A daemon with romana.cluster.enabled = off answers with
            its node only. Exit 0 when the daemon answered, 1 when none did, 2 on bad usage.
            """) { socket, config, json };
        status.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(cancel =>
            StatusAsync(SocketPath(parse.GetValue(socket), parse.GetValue(config)), parse.GetValue(json), Console.Out, cancel)));
        var cluster = new Command("cluster", "The Akka.Cluster of the daemons, through the daemon on this machine.");
        cluster.Subcommands.Add(status);
        return cluster;
    }

    /// <summary>--socket, or romana.cni.socket from --config as the daemon reads it (a bad file is exit 2, naming it).</summary>
    private static string SocketPath(string? socket, string? config) =>
        socket ?? CniSettings.From(RomanaConfig.Load(config)).Socket;

    public static async Task<int> RemoveAsync(string node, string socket, bool json, TextWriter output, CancellationToken cancel)
    {
        var reply = await SendAsync(socket, new DaemonRequest(DaemonProtocol.NodeRemove, "", "", Node: node), RemoveTimeout, cancel);
        if (reply is null) return CommandLineGuard.Failed;
        if (!reply.Ok) return await RefusedAsync($"node remove {node}", reply, json, output);
        if (json)
            await output.WriteLineAsync(new JsonObject
            {
                ["ok"] = true, ["node"] = reply.Node, ["subnet"] = reply.Subnet, ["released"] = reply.Released,
            }.ToJsonString(JsonOptions.Indented));
        else
            await output.WriteLineAsync($"node {reply.Node} removed from subnet {reply.Subnet}: {reply.Released} " +
                $"address{(reply.Released == 1 ? "" : "es")} released, its blocks returned to the subnet");
        return CommandLineGuard.Ok;
    }

    public static async Task<int> StatusAsync(string socket, bool json, TextWriter output, CancellationToken cancel)
    {
        var reply = await SendAsync(socket, new DaemonRequest(DaemonProtocol.Cluster, "", ""), StatusTimeout, cancel);
        if (reply is null) return CommandLineGuard.Failed;
        if (!reply.Ok) return await RefusedAsync("cluster status", reply, json, output);
        if (reply.Cluster is not { } view)
        {
            await Console.Error.WriteLineAsync($"romana: the daemon at {socket} answered CLUSTER without a view (an older daemon?)");
            return CommandLineGuard.Failed;
        }
        if (json) await output.WriteLineAsync(Json(view).ToJsonString(JsonOptions.Indented));
        else if (!view.Enabled)
            await output.WriteLineAsync($"node {view.Self}: its daemon runs alone (romana.cluster.enabled = off); no cluster");
        else
        {
            var table = new Table()
                .Title(Markup.Escape($"the cluster as node {view.Self}'s daemon sees it ({view.SelfAddress})"))
                .AddColumns("node", "subnet", "address", "status", "reachable", "note");
            table.Columns[2].NoWrap();
            foreach (var member in view.Members)
                table.AddRow(Markup.Escape(member.Node ?? "-"), Markup.Escape(member.Subnet ?? "-"), Markup.Escape(member.Address),
                    Markup.Escape(member.Status), member.Reachable ? "yes" : "[red]no[/]",
                    Markup.Escape(string.Join(", ", Notes(view, member))));
            // Into a file or a pipe, the table keeps its rows whole (Spectre would wrap them at 80 columns).
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
            if (Console.IsOutputRedirected) console.Profile.Width = 240;
            console.Write(table);
            console.WriteLine($"route manager: {(view.RouteManager is { } host ? $"node {host}" : "no member hosts it now")}");
        }
        return CommandLineGuard.Ok;
    }

    private static IEnumerable<string> Notes(ClusterView view, ClusterMember member)
    {
        if (member.Address == view.SelfAddress) yield return "this daemon";
        if (member.Node is not null && member.Node == view.RouteManager && member.Status == "Up") yield return "route manager";
    }

    /// <summary>Every field written, nulls too: a script reads the same shape whatever the cluster's state.</summary>
    public static JsonObject Json(ClusterView view) => new()
    {
        ["ok"] = true,
        ["self"] = view.Self,
        ["enabled"] = view.Enabled,
        ["selfAddress"] = view.SelfAddress,
        ["members"] = new JsonArray([.. view.Members.Select(m => (JsonNode)new JsonObject
        {
            ["node"] = m.Node, ["subnet"] = m.Subnet, ["address"] = m.Address, ["status"] = m.Status, ["reachable"] = m.Reachable,
        })]),
        ["routeManager"] = view.RouteManager,
    };

    private static async Task<DaemonReply?> SendAsync(string socket, DaemonRequest request, TimeSpan timeout, CancellationToken cancel)
    {
        try
        {
            return await DaemonSocketClient.SendAsync(socket, request, timeout, cancel);
        }
        catch (DaemonUnreachableException e)
        {
            await Console.Error.WriteLineAsync($"romana: {e.Message}");
            return null;
        }
    }

    private static async Task<int> RefusedAsync(string what, DaemonReply reply, bool json, TextWriter output)
    {
        var (code, error) = (reply.Code ?? "unknown", Printable.Text(reply.Error ?? "no reason given"));
        await Console.Error.WriteLineAsync($"romana: {what}: refused ({Printable.Text(code, 40)}): {error}");
        if (json)
            await output.WriteLineAsync(new JsonObject { ["ok"] = false, ["code"] = code, ["error"] = reply.Error }
                .ToJsonString(JsonOptions.Indented));
        return CommandLineGuard.Failed;
    }
}
