using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Dataplane;
using Romana.Actors.Tests.Support;
using Romana.Contracts.Cni;
using Romana.Host.Dataplane;
using Romana.Host.Ec2;
using Romana.Host.Ipam;
using Romana.Host.Persistence;
using Xunit.Abstractions;
using static Romana.Actors.Ipam.IpamMessages;
using Config = Akka.Configuration.Config;

namespace Romana.Actors.Tests.Membership;

/// <summary>
/// `romana daemon`'s supervisor (<see cref="DaemonSupervisor"/>, what the command runs) in this process, on PostgreSQL:
/// a member that the cluster downs stops its daemon (the CNI socket closed while no daemon runs), waits its backoff, and
/// starts a new actor system on the same remoting port, which joins the cluster anew, never by itself while another
/// member is known; its node's addresses are the same, its host routes stay, nothing is held twice. A start that fails
/// after a down is tried again with a doubled wait, and a stop asked for during a wait ends the loop cleanly.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DaemonRejoinTests(PostgreSqlServer server, ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly TempFolder _folder = new();
    private readonly List<Member> _members = [];
    private FreshJournal? _journal;
    private Ec2QueryApiServer? _ec2;

    /// <summary>One daemon process as the test sees it: its supervisor running until <see cref="Stop"/> is cancelled.</summary>
    private sealed record Member(string Name, int Port, string Socket, InMemoryHostNetwork Network, DaemonSupervisor Supervisor,
        Lines Log, CancellationTokenSource Stop, Task Running)
    {
        public RomanaDaemon Daemon => Supervisor.Current ?? throw new InvalidOperationException($"{Name} runs no daemon now");
        public Address Address => new("akka.tcp", "romana", "127.0.0.1", Port);
    }

    /// <summary>What the supervisor writes to standard error, line by line.</summary>
    private sealed class Lines : TextWriter
    {
        private readonly ConcurrentQueue<string> _lines = new();
        public override Encoding Encoding => Encoding.UTF8;
        public IReadOnlyList<string> All => [.. _lines];
        public override void Write(char value) => throw new NotSupportedException("whole lines only");
        public override void WriteLine(string? value) => _lines.Enqueue(value ?? "");
        public override Task WriteLineAsync(string? value)
        {
            WriteLine(value);
            return Task.CompletedTask;
        }
        public override string ToString() => string.Join("\n", _lines);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var member in _members)
        {
            foreach (var line in member.Log.All) output.WriteLine($"{member.Name}: {line}");
            await member.Stop.CancelAsync();
            await member.Running.WaitAsync(TimeSpan.FromSeconds(60)).ContinueWith(_ => { });
        }
        if (_ec2 is not null) await _ec2.DisposeAsync();
        if (_journal is not null) await _journal.DisposeAsync();
        _folder.Dispose();
    }

    [SkippableFact]
    public async Task A_downed_daemon_rejoins_by_itself_with_its_addresses_and_routes_and_nothing_is_held_twice()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        var ports = new[] { ClusterMembershipTests.FreePort(), ClusterMembershipTests.FreePort(), ClusterMembershipTests.FreePort() };
        var seeds = new[] { ports[0], ports[1] };
        var (a, b, c) = (await StartAsync("a", ports[0], seeds, 1), await StartAsync("b", ports[1], seeds, 2),
            await StartAsync("c", ports[2], seeds, 3));
        var members = new[] { a, b, c };
        await AllUpAsync(members);

        // Pods on every node, through the CNI socket as the plugin asks.
        var held = new Dictionary<(string Node, string Key), string>();
        foreach (var member in members)
            for (var i = 0; i < 3; i++)
                held[(member.Name, $"{member.Name}-pod-{i}")] = await AddAsync(member, $"{member.Name}-pod-{i}");
        // b's host agent routes a's and c's blocks.
        var others = await EventuallyAsync(async () =>
        {
            var owners = await OwnersAsync(a);
            var wanted = owners.Where(o => o.Node != new NodeName("b")).Select(o => o.Block).ToList();
            return wanted.Count >= 2 && wanted.All(b.Network.Routes.ContainsKey) ? wanted : null;
        }, "b's host agent to route a's and c's blocks");
        var oldIncarnation = Cluster.Get(b.Daemon.System).SelfUniqueAddress;

        // Another member downs b: its actor system stops, the supervisor says so and stops the daemon.
        var clock = Stopwatch.StartNew();
        Cluster.Get(a.Daemon.System).Down(b.Address);
        var said = await EventuallyAsync(() => Task.FromResult(b.Log.All.FirstOrDefault(l => l.Contains("downed"))), "b's line");
        Assert.Equal($"romana: this member ({b.Address}) was downed by the cluster; the daemon stops (CNI socket closed, journal last) "
            + "and starts again in 3s, joining the cluster anew", said);
        // No daemon serves b's socket now: the plugin is told so, and its runtime tries again.
        var meanwhile = DaemonWire.Send(b.Socket, new DaemonRequest(DaemonProtocol.Check, "b-pod-0", "eth0"), TimeSpan.FromSeconds(5));
        Assert.Null(meanwhile.Reply);
        Assert.Equal(1, b.Supervisor.Starts); // still the first daemon's stop, not the next one's start

        // The next daemon: a new actor system on the same port joins, and the others see it up.
        var next = await EventuallyAsync(() => Task.FromResult(b.Supervisor.Current), "b's next daemon");
        Assert.Equal(2, b.Supervisor.Starts);
        var newIncarnation = Cluster.Get(next.System).SelfUniqueAddress;
        Assert.Equal(oldIncarnation.Address, newIncarnation.Address);
        Assert.NotEqual(oldIncarnation.Uid, newIncarnation.Uid);
        // It joins through the others, never by itself: its own address is not among its seed nodes.
        Assert.Equal([a.Address, c.Address], Cluster.Get(next.System).Settings.SeedNodes);
        await AllUpAsync(members);
        output.WriteLine($"b up again {clock.Elapsed.TotalSeconds:0.0} s after the down (backoff 3 s)");
        // The new actor system bound the port its predecessor had released: the first attempt started.
        Assert.DoesNotContain(b.Log.All, line => line.Contains("cannot start"));
        foreach (var member in new[] { a, c })
            Assert.Contains(Cluster.Get(member.Daemon.System).State.Members,
                m => m.UniqueAddress.Equals(newIncarnation) && m.Status == MemberStatus.Up);

        // b's pods keep their addresses: CHECK and a repeated ADD answer the same.
        foreach (var ((node, key), address) in held.Where(h => h.Key.Node == "b"))
        {
            var check = DaemonWire.Send(b.Socket, new DaemonRequest(DaemonProtocol.Check, key, "eth0"), TimeSpan.FromSeconds(10));
            Assert.True(check.Ok, $"CHECK {key} on {node}: {check}");
            Assert.Equal(address, check.Reply!.Address);
            Assert.Equal(address, await AddAsync(b, key));
        }
        // New pods everywhere, b included: no address is held twice, no block owned twice.
        foreach (var member in members)
            for (var i = 3; i < 6; i++)
                held[(member.Name, $"{member.Name}-pod-{i}")] = await AddAsync(member, $"{member.Name}-pod-{i}");
        Assert.Equal(held.Count, held.Values.Distinct().Count());
        var blocks = await OwnersAsync(a);
        Assert.Equal(blocks.Count, blocks.Select(o => o.Block).Distinct().Count());
        // The restart removed none of b's routes to the other nodes' blocks, which still belong to them.
        Assert.All(others, block => Assert.True(b.Network.Routes.ContainsKey(block), $"b lost its route to {block}"));
        Assert.All(b.Network.Applied, change => Assert.Empty(change.Remove));
    }

    [SkippableFact]
    public async Task A_start_that_fails_after_a_down_is_tried_again_later_and_a_stop_during_the_wait_ends_cleanly()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        var port = ClusterMembershipTests.FreePort();
        var alone = await StartAsync("a", port, [port], 1);
        await AllUpAsync([alone]);
        var first = alone.Daemon;

        // Downed (by itself here): while it waits, something else serves its CNI socket, so the next start fails.
        Cluster.Get(first.System).Down(alone.Address);
        await EventuallyAsync(() => Task.FromResult(alone.Log.All.FirstOrDefault(l => l.Contains("downed"))), "the down's line");
        Assert.False(File.Exists(alone.Socket), "the stopped daemon's socket is gone");
        var blocker = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream,
            System.Net.Sockets.ProtocolType.Unspecified);
        blocker.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(alone.Socket));
        blocker.Listen();
        var failed = await EventuallyAsync(() => Task.FromResult(alone.Log.All.FirstOrDefault(l => l.Contains("cannot start"))),
            "the failed start's line");
        Assert.Equal($"romana: starting again: cannot start: romana.cni.socket: another daemon is serving {alone.Socket}; "
            + "trying again in 6s", failed);
        Assert.Null(alone.Supervisor.Current);
        blocker.Dispose(); // its socket file stays behind, as a killed daemon's would: the next start replaces it

        // The next attempt starts a daemon: alone, it starts the cluster again (it knows no other member).
        var second = await EventuallyAsync(() => Task.FromResult(alone.Supervisor.Current), "the second daemon");
        Assert.Equal(2, alone.Supervisor.Starts);
        Assert.Equal([alone.Address], Cluster.Get(second.System).Settings.SeedNodes);
        await AllUpAsync([alone]);

        // Downed again: the wait is back to the first (the last start succeeded); a stop asked for during it ends the loop
        // at once, and starts nothing more.
        Cluster.Get(second.System).Down(alone.Address);
        await EventuallyAsync(() => Task.FromResult(alone.Log.All.Count(l => l.Contains("downed")) == 2 ? "" : null),
            "the second down's line");
        Assert.EndsWith("starts again in 3s, joining the cluster anew", alone.Log.All[^1]);
        var stopping = Stopwatch.StartNew();
        await alone.Stop.CancelAsync();
        await alone.Running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(2), $"the stop took {stopping.Elapsed}");
        await Task.Delay(TimeSpan.FromSeconds(4)); // past the wait: nothing starts
        Assert.Equal(2, alone.Supervisor.Starts);
        Assert.Null(alone.Supervisor.Current);
        Assert.False(File.Exists(alone.Socket));
        Assert.True(first.Terminated.IsCompleted && second.Terminated.IsCompleted);
    }

    [SkippableFact]
    public async Task The_first_start_failing_is_the_error_of_the_command_and_nothing_is_retried()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        var port = ClusterMembershipTests.FreePort();
        var config = await ConfigAsync("a", port, [port], 1);
        var socket = Path.Combine(_folder.Path, "a.sock");
        using var blocker = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix,
            System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        blocker.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
        blocker.Listen();
        var log = new Lines();
        var starts = 0;
        var refused = await Assert.ThrowsAsync<DaemonStartException>(() => DaemonSupervisor.StartAsync(config, c =>
        {
            starts++;
            return RomanaDaemon.StartAsync(c, hostNetwork: new InMemoryHostNetwork());
        }, log));
        Assert.Equal($"romana.cni.socket: another daemon is serving {socket}", refused.Message);
        Assert.Equal(1, starts);
        Assert.Empty(log.All);
    }

    // ---- the members -------------------------------------------------------------------------------------------------

    private async Task<Config> ConfigAsync(string name, int port, int[] seeds, int index)
    {
        _journal ??= await server.CreateJournalAsync();
        if (_ec2 is null)
        {
            var ec2 = new Ec2Lab();
            ec2.AddRouteTable("rtb-a", subnetIds: ["subnet-a"], tags: [new("romana.io/cluster", "lab")], vpcCidr: "10.0.0.0/16");
            _ec2 = Ec2QueryApiServer.Start(ec2);
            // The SDK's default credential chain: here, its environment variables.
            Environment.SetEnvironmentVariable("AWS_ACCESS_KEY_ID", "lab");
            Environment.SetEnvironmentVariable("AWS_SECRET_ACCESS_KEY", "lab");
        }
        var seedList = string.Join(", ", seeds.Select(p => $"\"akka.tcp://romana@127.0.0.1:{p}\""));
        // Node addresses on loopback: the health probes of the forwarder supervisors connect to them.
        return RomanaConfig.Load(_folder.Write($"{name}.conf", $$"""
            romana {
              topology {
                pod-cidr = "100.64.0.0/16", block-prefix-length = 26
                zones = [{ name = "z", subnets = [{ id = "subnet-a", route-table = "rtb-a" }] }]
              }
              node {
                name = "{{name}}", subnet = "subnet-a", ip = "127.0.0.{{10 + index}}", instance-id = "i-{{name}}", eni = "eni-{{name}}"
              }
              cluster {
                enabled = on, port = {{port}}, seed-nodes = [{{seedList}}]
                rejoin-backoff = 3s, rejoin-max-backoff = 6s
              }
              aws { region = "eu-west-1", endpoint = "{{_ec2.Url}}" }
              routes.tables { tag-key = "romana.io/cluster", tag-value = "lab" }
              health.probe-port = {{ClusterMembershipTests.FreePort()}}
              http.port = 0
              ipam.cluster.register-interval = 300ms
              persistence { journal = postgresql, postgresql.connection-string = "{{_journal.Settings.PostgreSqlConnectionString}}" }
              cni.socket = "{{_folder.Path}}/{{name}}.sock"
            }
            akka.loglevel = WARNING
            akka.cluster.pub-sub.gossip-interval = 200ms
            akka.actor.serialize-messages = on
            {{InProcessOnlySerializer.Hocon}}
            """));
    }

    /// <summary>A daemon as `romana daemon` runs it: under its supervisor, on a host network that outlives its restarts.</summary>
    private async Task<Member> StartAsync(string name, int port, int[] seeds, int index)
    {
        var config = await ConfigAsync(name, port, seeds, index);
        var network = new InMemoryHostNetwork();
        var log = new Lines();
        var supervisor = await DaemonSupervisor.StartAsync(config, c => RomanaDaemon.StartAsync(c, hostNetwork: network), log);
        var stop = new CancellationTokenSource();
        var member = new Member(name, port, Path.Combine(_folder.Path, $"{name}.sock"), network, supervisor, log, stop,
            supervisor.RunAsync(stop.Token));
        _members.Add(member);
        return member;
    }

    /// <summary>Every member's current daemon sees every member up.</summary>
    private static Task AllUpAsync(IReadOnlyList<Member> members) =>
        EventuallyAsync(() => Task.FromResult(members.All(m => m.Supervisor.Current is { } daemon
            && Cluster.Get(daemon.System).State.Members.Count(x => x.Status == MemberStatus.Up) == members.Count
            && Cluster.Get(daemon.System).SelfMember.Status == MemberStatus.Up) ? "" : null), "every member up");

    /// <summary>A CNI ADD through the member's socket, asked again while the cluster is not ready to grant a block.</summary>
    private static async Task<string> AddAsync(Member member, string key)
    {
        DaemonWire.Answer? last = null;
        return await EventuallyAsync(() =>
        {
            last = DaemonWire.Send(member.Socket, DaemonWire.Add(key), TimeSpan.FromSeconds(30));
            return Task.FromResult(last.Ok ? last.Reply!.Address : null);
        }, () => $"ADD {key} on {member.Name} (last: {last})");
    }

    private static async Task<IReadOnlyList<Romana.Actors.Ipam.BlockOwnerSnapshot>> OwnersAsync(Member member) =>
        await member.Daemon.Ipam.AskAsync(new GetSubnet(new SubnetId("subnet-a"))) is SubnetView view ? view.Subnet.Owners : [];

    private static Task<T> EventuallyAsync<T>(Func<Task<T?>> attempt, string what) where T : class =>
        EventuallyAsync(attempt, () => what);

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> attempt, Func<string> what) where T : class
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await attempt() is { } done) return done;
            if (clock.Elapsed > Patience) throw new TimeoutException($"waited {Patience.TotalSeconds:0} s for {what()}");
            await Task.Delay(50);
        }
    }
}

/// <summary>The rejoin settings: a value that cannot be used is one line naming the setting and the value.</summary>
public class RejoinSettingsTests
{
    [Fact]
    public void The_waits_are_read_and_doubled_up_to_the_max_and_a_wait_that_cannot_be_used_is_refused()
    {
        static RejoinSettings Read(string hocon) => RejoinSettings.From(Akka.Configuration.ConfigurationFactory.ParseString(hocon));

        var defaults = Read("");
        Assert.Equal((TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60)), (defaults.Backoff, defaults.MaxBackoff));
        Assert.Equal(TimeSpan.FromSeconds(40), defaults.After(TimeSpan.FromSeconds(20)));
        Assert.Equal(TimeSpan.FromSeconds(60), defaults.After(TimeSpan.FromSeconds(40)));
        Assert.Equal("romana.cluster.rejoin-backoff: 0s must be positive",
            Assert.Throws<ConfigurationError>(() => Read("romana.cluster.rejoin-backoff = 0s")).Message);
        Assert.Equal("romana.cluster.rejoin-backoff: 'soon' is not a duration such as 500ms, 30s or 2m",
            Assert.Throws<ConfigurationError>(() => Read("romana.cluster.rejoin-backoff = soon")).Message);
        Assert.Equal("romana.cluster.rejoin-max-backoff: 2s is shorter than romana.cluster.rejoin-backoff (5s)",
            Assert.Throws<ConfigurationError>(() => Read("romana.cluster.rejoin-max-backoff = 2s")).Message);
    }
}
