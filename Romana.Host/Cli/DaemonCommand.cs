using System.CommandLine;
using System.Runtime.InteropServices;
using Romana.Actors.Configuration;
using Romana.Host.Dataplane;

namespace Romana.Host.Cli;

public static class DaemonCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config")
        {
            Description = "The HOCON file: topology, this node (romana.node), journal, CNI socket, host agent " +
                "(hocon/single-node.conf runs one machine with no cloud)",
            Required = true
        };
        var socket = new Option<string?>("--socket")
        {
            Description = "Serve the CNI plugin on this Unix socket instead of romana.cni.socket"
        };
        var command = new Command("daemon", """
            Runs Romana on this host until SIGTERM or Ctrl-C: the IPAM on its journal with this host as a node
            (romana.node), the Unix socket where the CNI plugin asks for pod addresses (owner root, mode 0600; the
            plugin's daemonSocket), the host agent that routes to the other nodes' blocks of this subnet (table
            romana.host-agent.route-table, with an ip rule for the pod CIDR; ip_forward on, rp_filter loose), and the
            TCP port that forwarder health probes connect to. Needs root (routes, sysctls, /run/romana). In a cluster
            (romana.cluster.enabled), a member that the cluster downs stops its daemon and starts a new one, which
            joins the cluster anew (after romana.cluster.rejoin-backoff).
            """) { config, socket };
        command.SetAction((parse, _) => CommandLineGuard.RunAsync(() => RunAsync(parse.GetValue(config)!, parse.GetValue(socket))));
        return command;
    }

    private static async Task<int> RunAsync(string configPath, string? socket)
    {
        using var stop = new CancellationTokenSource();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        // The first start's failure is one line and exit 1, as before. After it, a daemon whose actor system stops on its own
        // (the cluster downed this member) is started again in this process, and joins the cluster anew.
        var supervisor = await DaemonSupervisor.StartAsync(RomanaConfig.Load(configPath),
            config => RomanaDaemon.StartAsync(config, socket), Console.Error);
        await supervisor.RunAsync(stop.Token);
        return CommandLineGuard.Ok;

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
    }
}
