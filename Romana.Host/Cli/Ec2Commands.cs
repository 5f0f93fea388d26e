using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using Romana.Actors;
using Romana.Actors.Configuration;
using Romana.Host.Ec2;

namespace Romana.Host.Cli;

public static class Ec2Commands
{
    // Enough to look back at a lab's recent calls; a server that runs for days must not keep every call.
    private const int CallLogCapacity = 10_000;

    public static Command Create()
    {
        var ec2 = new Command("ec2", "A local EC2 for labs and tests: VPC route tables in memory behind the EC2 Query API.");
        ec2.Subcommands.Add(Serve());
        return ec2;
    }

    private static Command Serve()
    {
        var listen = new Option<string?>("--listen")
        {
            Description = "Where to listen (default romana.ec2-lab.listen: 127.0.0.1:9607; port 0: any free port)",
            HelpName = "ADDR:PORT",
        };
        var config = new Option<string?>("--config")
        {
            Description = "A HOCON file whose romana.ec2-lab section sets the tables and faults",
            HelpName = "FILE",
        };
        var router = new Option<bool>("--router")
        {
            Description = "As romana lab's router (run in its namespace): mirror the tables into kernel routing tables and enforce "
                + "the source/destination check, as romana.lab.router in --config says",
            Hidden = true,
        };
        var command = new Command("serve", """
            Serves EC2's VPC route tables from memory over the EC2 Query API (version 2016-11-15), until SIGTERM or Ctrl-C:
            DescribeRouteTables (by id, or filters such as tag:KEY, tag-key, association.subnet-id, vpc-id; MaxResults and
            NextToken), CreateRoute, ReplaceRoute, DeleteRoute and ModifyNetworkInterfaceAttribute (source/destination
            check), answered with EC2's error codes (RouteAlreadyExists, InvalidRoute.NotFound, RouteLimitExceeded,
            InvalidRouteTableID.NotFound, RequestLimitExceeded, ...). It prints the URL to give AWSSDK.EC2 as
            AmazonEC2Config.ServiceURL; it accepts any credentials and checks no signature, so it listens on loopback
            unless --listen says otherwise. The tables it starts with (one VPC; ids, subnets, tags, route limits, routes
            made by others), EC2's token bucket for mutating calls (on by default: a burst of 50, refilled 5 per second),
            latency and a rate of random 503s come from the romana.ec2-lab section of hocon/reference.conf, overridden by
            --config. Nothing is kept: every start begins from the configured tables.
            """) { listen, config, router };
        command.SetAction((parse, _) => CommandLineGuard.RunAsync(() =>
            ServeAsync(parse.GetValue(listen), parse.GetValue(config), parse.GetValue(router))));
        return command;
    }

    private static async Task<int> ServeAsync(string? listenText, string? configPath, bool asRouter)
    {
        var listen = listenText is null ? null : Ec2LabSettings.ParseListen(listenText, "--listen");
        var loaded = RomanaConfig.Load(configPath);
        var settings = Ec2LabSettings.From(loaded);
        var routerSettings = asRouter ? Romana.Host.Lab.LabRouterSettings.From(loaded) : null;
        var endPoint = listen ?? settings.Listen;
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        Ec2QueryApiServer server;
        var lab = settings.CreateLab(SystemClock.Instance, CallLogCapacity);
        await using var mirror = routerSettings is null ? null : Romana.Host.Lab.LabRouter.Start(routerSettings, lab);
        try
        {
            server = Ec2QueryApiServer.Start(lab, endPoint);
        }
        catch (HttpListenerException e)
        {
            Console.Error.WriteLine($"romana: cannot listen on {endPoint}: {e.Message}");
            return CommandLineGuard.Failed;
        }
        await using (server)
        {
            Describe(server, settings);
            await stopped.Task;
        }
        return CommandLineGuard.Ok;

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stopped.TrySetResult();
        }
    }

    private static void Describe(Ec2QueryApiServer server, Ec2LabSettings settings)
    {
        Console.WriteLine($"EC2 Query API on {server.EndPoint}");
        Console.WriteLine($"ServiceURL: {server.Url}");
        Console.WriteLine($"VPC {settings.VpcId} {settings.VpcCidr}; route tables:");
        foreach (var table in server.Lab.RouteTables)
        {
            var tags = table.Tags.Count == 0 ? "" : $", tags {string.Join(' ', table.Tags.Select(t => $"{t.Key}={t.Value}"))}";
            var subnets = table.Associations.IsEmpty ? "no subnets" : string.Join(' ', table.Associations.Select(a => a.SubnetId));
            Console.WriteLine($"  {table.Id}: {subnets}{tags}, {table.Routes.Length} routes, limit {table.RouteLimit}");
        }
        Console.WriteLine($"throttle: {settings.Throttle?.ToString() ?? "off"}; latency {settings.Latency.TotalMilliseconds:0} ms; "
            + $"error rate {settings.ErrorRate:0.###}");
        Console.WriteLine("Serving until SIGTERM or Ctrl-C.");
    }
}
