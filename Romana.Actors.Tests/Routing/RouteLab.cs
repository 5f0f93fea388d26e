using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Amazon.EC2;
using Amazon.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Persistence;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Support;
using Romana.Host.Aws;
using Romana.Host.Composition;
using Romana.Host.Ec2;
using Romana.Host.Persistence;

namespace Romana.Actors.Tests.Routing;

/// <summary>A cluster view that tests change at will.</summary>
public sealed class StaticRoutingSource(RoutingSnapshot snapshot) : IRoutingSource
{
    private volatile RoutingSnapshot _snapshot = snapshot;

    public RoutingSnapshot Snapshot
    {
        get => _snapshot;
        set => _snapshot = value;
    }

    /// <summary>Reads so far.</summary>
    public int Reads => _reads;
    private int _reads;

    public Task<RoutingSnapshot> ReadAsync(CancellationToken cancellation = default)
    {
        Interlocked.Increment(ref _reads);
        return Task.FromResult(_snapshot);
    }

    /// <summary>Ownership changes come on the actor system's event stream, as in a single process.</summary>
    public void Subscribe(IActorContext context) =>
        context.System.EventStream.Subscribe(context.Self, typeof(Romana.Actors.Ipam.OwnershipFeed.OwnershipChanged));

    public void SetHealth(string node, bool healthy) =>
        Snapshot = Snapshot with { Nodes = [.. Snapshot.Nodes.Select(n => n.Name.Value == node ? n with { Healthy = healthy } : n)] };
}

/// <summary>
/// The route manager against the EC2 model's Query API server through AWSSDK.EC2, on a SQLite journal: two subnets with their
/// own route tables (rtb-a for s1, rtb-b for s2), a shared one (rtb-c for s3 and s4), and a few nodes with pods.
/// </summary>
public sealed class RouteLab : IAsyncDisposable
{
    public static readonly RoutingSnapshot Cluster = new(
        [
            new PlanSubnet(new("s1"), Ipv4Cidr.Parse("100.64.0.0/24"), "rtb-a"),
            new PlanSubnet(new("s2"), Ipv4Cidr.Parse("100.64.1.0/24"), "rtb-b"),
            new PlanSubnet(new("s3"), Ipv4Cidr.Parse("100.64.2.0/24"), "rtb-c"),
            new PlanSubnet(new("s4"), Ipv4Cidr.Parse("100.64.3.0/24"), "rtb-c"),
        ],
        [
            Node("a1", "s1", 1), Node("a2", "s1", 2), Node("b1", "s2", 3), Node("b2", "s2", 4), Node("c1", "s3", 5), Node("d1", "s4", 6),
        ],
        [
            Block("100.64.0.0/26", "a1", 30), Block("100.64.0.64/26", "a2", 20), Block("100.64.0.128/26", "a1", 5),
            Block("100.64.1.0/26", "b1", 12), Block("100.64.1.64/26", "b2", 40),
            Block("100.64.2.0/26", "c1", 7), Block("100.64.3.0/26", "d1", 9),
        ]);

    private static PlanNode Node(string name, string subnet, int i) =>
        new(new(name), new(subnet), new Ipv4(0x0A000000u + (uint)i), $"eni-{name}", true);
    private static PlanBlock Block(string cidr, string owner, int pods) => new(Ipv4Cidr.Parse(cidr), new(owner), pods);

    /// <summary>EC2 itself: arrange its tables and faults, read its routes and calls.</summary>
    public Ec2Lab Ec2 { get; } = new();
    public Ec2QueryApiServer Endpoint { get; }
    public TempJournal Journal { get; } = new();
    /// <summary>The journal the route manager writes: <see cref="Journal"/>, unless the lab was given another.</summary>
    private readonly JournalSettings _journal;
    public StaticRoutingSource Source { get; } = new(Cluster);
    public AmazonEC2Client Client { get; }
    private RomanaHost? _host;
    public IActorRef? Manager { get; private set; }
    /// <summary>The actor system the route manager runs in, for stand-ins that talk to it.</summary>
    public ActorSystem? System => _host?.System;

    public RouteLab(JournalSettings? journal = null)
    {
        _journal = journal ?? Journal.Settings;
        Endpoint = Ec2QueryApiServer.Start(Ec2);
        Client = AwsEc2RouteTables.CreateClient("us-east-1", Endpoint.Url, TimeSpan.FromSeconds(10),
            new BasicAWSCredentials("test", "test"));
        foreach (var (table, subnets) in new[] { ("rtb-a", new[] { "subnet-s1" }), ("rtb-b", ["subnet-s2"]),
            ("rtb-c", ["subnet-s3", "subnet-s4"]) })
        {
            Ec2.AddRouteTable(table, "vpc-1", subnetIds: subnets, tags: [new("romana.io/cluster", "lab")], vpcCidr: "10.0.0.0/16");
            Ec2.PutRoute(table, "0.0.0.0/0", "igw-1"); // foreign: must survive
        }
    }

    public static RouteSettings Settings => RouteSettings.Default with
    {
        Tables = new RouteTableSelector([], "romana.io/cluster", "lab"),
        ReconcileInterval = TimeSpan.FromMinutes(10),
        RetryMinBackoff = TimeSpan.FromMilliseconds(50),
        RetryMaxBackoff = TimeSpan.FromMilliseconds(500),
        RetryMaxAttempts = 20,
    };

    /// <summary>
    /// The route manager composed as production composes it, on this lab's journal, with AWSSDK.EC2 against the lab's
    /// endpoint and the lab's cluster view; <paramref name="extra"/> is more HOCON (a cluster member's, say).
    /// </summary>
    public Task<RomanaHost> ComposeAsync(RouteSettings? settings = null, Config? extra = null,
        RouteManagerPlacement placement = RouteManagerPlacement.Local, NodeName? host = null) =>
        RomanaHost.StartAsync((extra ?? Config.Empty).WithFallback(TempJournal.Quiet),
            akka => akka.AddRomanaPersistence(_journal).AddRomanaRoutes(null, placement, host), services => services
                .AddSingleton<IEc2RouteTables>(new AwsEc2RouteTables(Client))
                .AddSingleton<IRoutingSource>(Source)
                .AddSingleton(settings ?? Settings));

    /// <summary>Starts (or restarts, on the same journal) the route manager in a host of its own.</summary>
    public async Task StartAsync(RouteSettings? settings = null, NodeName? host = null)
    {
        if (_host is not null) await _host.DisposeAsync();
        _host = await ComposeAsync(settings, host: host);
        Manager = _host.Registry.Get<VpcRouteActor>();
    }

    /// <summary>
    /// Stops the route manager (its host), as a member that dies takes it away; <see cref="StartAsync"/> starts it again.
    /// </summary>
    public async Task StopAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        _host = null;
        Manager = null;
    }

    public void Reconcile(string reason = "test") => Manager!.Tell(new RouteManagerMessages.Reconcile(reason));

    /// <summary>The routes EC2 holds now, read as a plan: ENIs mapped back to nodes; foreign routes left out.</summary>
    public RoutePlan PlanInEc2() => new([.. new[] { "rtb-a", "rtb-b", "rtb-c" }.Select(table => new TablePlan(table, 50,
        [.. Ec2.RoutesOf(table).Where(r => r.Target.StartsWith("eni-", StringComparison.Ordinal))
            .Select(r => new PlannedRoute(Ipv4Cidr.Parse(r.Destination), new NodeName(r.Target["eni-".Length..]), r.Target))]))], 0, []);

    /// <summary>
    /// Waits until EC2 carries a plan that reaches every block of the current cluster view, and the manager has finished
    /// a pass since <paramref name="afterPasses"/> and is not in one (or, with <paramref name="anyManager"/>, EC2 just stays quiet).
    /// </summary>
    public async Task<RoutePlan> ConvergedAsync(TimeSpan? within = null, long afterPasses = 0, bool anyManager = false)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(20));
        var input = new RoutingInput(Source.Snapshot.Subnets, Source.Snapshot.Nodes, Source.Snapshot.Blocks, []);
        while (true)
        {
            var calls = Ec2.Calls.Count;
            var plan = PlanInEc2();
            var violation = ReachabilityChecker.FirstViolation(input, plan);
            var settled = anyManager || await SettledAsync(afterPasses);
            await Task.Delay(150);
            if (violation is null && settled && Ec2.Calls.Count == calls) return plan;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"EC2 did not converge: {violation?.ToString() ?? "the manager is still busy"}");
        }
    }

    private async Task<bool> SettledAsync(long afterPasses)
    {
        var view = await ViewAsync();
        return !view.Busy && view.Passes > afterPasses;
    }

    /// <summary>
    /// The manager's view. It answers at once unless a journal write is under way (commands wait for it); on a loaded machine
    /// a SQLite write can take seconds, so the ask allows far more than that: convergence has its own deadline.
    /// </summary>
    public async Task<RouteManagerMessages.RouteManagerView> ViewAsync() =>
        await Manager!.Ask<RouteManagerMessages.RouteManagerView>(new RouteManagerMessages.GetRouteState(), TimeSpan.FromSeconds(30));

    public async ValueTask DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        Client.Dispose();
        await Endpoint.DisposeAsync();
        Journal.Dispose();
    }
}
