using System.Diagnostics;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Dataplane;
using Romana.Actors.Tests.Membership;
using Romana.Host.Dataplane;
using Romana.Host.Ec2;
using Romana.Host.Ipam;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// `romana daemon`s in this test process, members of one cluster on a PostgreSQL journal of their own (every message
/// checked by the serializer), with an EC2 Query API server whose route table rtb-a carries the tag romana.io/cluster =
/// <paramref name="tag"/>. The n-th daemon started is node 127.0.0.(10 + n) of subnet-a (loopback: the forwarder probes
/// reach it); the first listens on the seed port. <paramref name="vpcCidr"/>: subnet-a's VPC CIDR, if the test needs one.
/// </summary>
public sealed class InProcessDaemonCluster(PostgreSqlServer server, string tag, string? vpcCidr = null) : IAsyncDisposable
{
    private readonly TempFolder _folder = new();
    private readonly int _seedPort = ClusterMembershipTests.FreePort();
    private FreshJournal? _journal;
    private Ec2QueryApiServer? _ec2;

    public Dictionary<string, RomanaDaemon> Daemons { get; } = [];

    public FreshJournal Journal => _journal ?? throw new InvalidOperationException("no daemon has started");

    public string SocketOf(string node) => Path.Combine(_folder.Path, $"{node}.sock");

    /// <param name="node">The node's name.</param>
    /// <param name="romana">More settings, inside <c>romana { }</c>.</param>
    public async Task StartAsync(string node, string romana = "")
    {
        _journal ??= await server.CreateJournalAsync();
        if (_ec2 is null)
        {
            var ec2 = new Ec2Lab();
            ec2.AddRouteTable("rtb-a", subnetIds: ["subnet-a"], tags: [new("romana.io/cluster", tag)], vpcCidr: vpcCidr ?? "10.0.0.0/16");
            _ec2 = Ec2QueryApiServer.Start(ec2);
            // The route manager's SDK client takes its credentials from the default chain: here, its environment variables.
            Environment.SetEnvironmentVariable("AWS_ACCESS_KEY_ID", "lab");
            Environment.SetEnvironmentVariable("AWS_SECRET_ACCESS_KEY", "lab");
        }
        var index = Daemons.Count + 1;
        var subnetVpc = vpcCidr is null ? "" : $", vpc-cidr = \"{vpcCidr}\"";
        var config = RomanaConfig.Load(_folder.Write($"{node}.conf", $$"""
            romana {
              topology {
                pod-cidr = "100.64.0.0/26", block-prefix-length = 28
                zones = [{ name = "z", subnets = [{ id = "subnet-a", route-table = "rtb-a"{{subnetVpc}} }] }]
              }
              node {
                name = "{{node}}", subnet = "subnet-a", ip = "127.0.0.{{10 + index}}", instance-id = "i-{{node}}", eni = "eni-{{node}}"
              }
              cluster {
                enabled = on, port = {{(index == 1 ? _seedPort : 0)}}, seed-nodes = ["akka.tcp://romana@127.0.0.1:{{_seedPort}}"]
              }
              aws { region = "eu-west-1", endpoint = "{{_ec2.Url}}" }
              routes.tables { tag-key = "romana.io/cluster", tag-value = "{{tag}}" }
              health.probe-port = {{ClusterMembershipTests.FreePort()}}
              http.port = 0
              ipam.cluster.register-interval = 300ms
              persistence { journal = postgresql, postgresql.connection-string = "{{_journal.Settings.PostgreSqlConnectionString}}" }
              cni.socket = "{{SocketOf(node)}}"
              {{romana}}
            }
            akka.loglevel = WARNING
            akka.actor.serialize-messages = on
            {{InProcessOnlySerializer.Hocon}}
            """));
        Daemons[node] = await RomanaDaemon.StartAsync(config, hostNetwork: new InMemoryHostNetwork());
    }

    /// <summary>Stops a node's daemon, as its host going away would.</summary>
    public async Task StopAsync(string node)
    {
        await Daemons[node].DisposeAsync();
        Daemons.Remove(node);
    }

    /// <summary>Asks until <paramref name="attempt"/> gives a value; 60 s at most.</summary>
    public static async Task<T> EventuallyAsync<T>(string what, Func<Task<T?>> attempt) where T : class
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await attempt() is { } done) return done;
            if (clock.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"not within 60 s: {what}");
            await Task.Delay(200);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var daemon in Daemons.Values) await daemon.DisposeAsync();
        if (_ec2 is not null) await _ec2.DisposeAsync();
        if (_journal is not null) await _journal.DisposeAsync();
        _folder.Dispose();
    }
}
