using System.Net;
using Akka.Actor;
using Akka.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Dataplane;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;
using Romana.Host.Observability;
using Xunit.Abstractions;

namespace Romana.Actors.Tests.Observability;

/// <summary>/metrics, /healthz and /readyz over HTTP: a daemon in this process, and the endpoint around a real CNI socket.</summary>
public class HttpEndpointTests(ITestOutputHelper output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private static async Task<(HttpStatusCode Status, string Body)> GetAsync(int port, string path)
    {
        using var response = await Http.GetAsync($"http://127.0.0.1:{port}{path}");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_daemon_serves_its_metrics_and_is_ready_until_its_cni_socket_is_gone()
    {
        using var folder = new TempFolder();
        var socket = Path.Combine(folder.Path, "cni.sock");
        var config = RomanaConfig.Load(folder.Write("romana.conf", $$"""
            romana {
              topology {
                pod-cidr = "100.64.0.0/24", block-prefix-length = 28
                zones = [{ name = "z", subnets = [{ id = "s1" }] }]
              }
              node { name = "n1", ip = "10.99.0.11" }
              health.probe-port = 0
              http { host = "127.0.0.1", port = 0 }
              persistence { journal = sqlite, sqlite.path = "{{folder.Path}}/romana.db" }
              cni.socket = "{{socket}}"
            }
            akka.loglevel = WARNING
            """));
        await using var daemon = await RomanaDaemon.StartAsync(config, hostNetwork: new InMemoryHostNetwork());
        Assert.NotEqual(0, daemon.HttpPort);

        Assert.Equal((HttpStatusCode.OK, "ok\n"), await GetAsync(daemon.HttpPort, "/healthz"));
        Assert.Equal((HttpStatusCode.OK, "ready\n"), await GetAsync(daemon.HttpPort, "/readyz"));

        foreach (var key in new[] { "c1", "c2", "c3" })
            Assert.True(DaemonWire.Send(socket, DaemonWire.Add(key), TimeSpan.FromSeconds(30)).Ok, key);
        // The feed hears of a write after the write's reply is sent: the figures follow within moments.
        var (status, body) = await GetAsync(daemon.HttpPort, "/metrics");
        for (var deadline = DateTime.UtcNow.AddSeconds(10); !body.Contains("romana_ipam_node_addresses_held{subnet=\"s1\",node=\"n1\"} 3")
             && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(50);
            (status, body) = await GetAsync(daemon.HttpPort, "/metrics");
        }
        Assert.Equal(HttpStatusCode.OK, status);
        output.WriteLine(body);
        var text = new Exposition(body);
        Assert.Equal(3, text.Single("romana_ipam_allocations_total", "node=n1"));
        Assert.Equal(3, text.Single("romana_ipam_node_addresses_held", "subnet=s1", "node=n1"));
        Assert.Equal(16 - 3, text.Single("romana_ipam_node_addresses_free", "subnet=s1", "node=n1"));
        Assert.True(text.Single("romana_journal_write_seconds_count", "writer=node") >= 1);
        var promtool = Exposition.Promtool(body);
        Assert.True(promtool is { ExitCode: 0 }, $"promtool check metrics: {promtool}");

        // The plugins cannot reach the daemon once its socket file is gone: not ready, and it says why.
        File.Delete(socket);
        var unready = await GetAsync(daemon.HttpPort, "/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, unready.Status);
        Assert.Equal($"cni: socket file {socket} is gone\n", unready.Body);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(daemon.HttpPort, "/healthz")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(daemon.HttpPort, "/other")).Status);
    }

    [Fact]
    public async Task Readyz_names_each_failing_check_before_the_socket_is_served_and_after_a_failed_journal_write()
    {
        using var folder = new TempFolder();
        var socket = Path.Combine(folder.Path, "cni.sock");
        var config = ConfigurationFactory.ParseString($"romana.cni.socket = \"{socket}\"").WithFallback(RomanaConfig.Reference);
        var cni = CniServer.Bind(CniSettings.From(config));
        await using var _ = cni;
        var services = new ServiceCollection().AddRomanaMetrics();
        services.AddSingleton<IReadinessCheck>(sp => new JournalReadiness(sp.GetRequiredService<RomanaMetrics>()));
        services.AddSingleton<IReadinessCheck>(new CniSocketReadiness(cni));
        await using var provider = services.BuildServiceProvider();
        var server = new RomanaHttpServer(new HttpSettings(IPAddress.Loopback, 0), provider);
        await server.StartingAsync(default);
        await server.StartAsync(default);
        try
        {
            Assert.Equal((HttpStatusCode.ServiceUnavailable, $"cni: socket {socket} not served yet (the daemon is starting)\n"),
                await GetAsync(server.Port, "/readyz"));
            Assert.Equal(HttpStatusCode.OK, (await GetAsync(server.Port, "/healthz")).Status);

            cni.Serve(new NoRequests(), Akka.Event.NoLogger.Instance);
            Assert.Equal((HttpStatusCode.OK, "ready\n"), await GetAsync(server.Port, "/readyz"));

            var metrics = provider.GetRequiredService<RomanaMetrics>();
            var at = DateTimeOffset.Parse("2026-11-30T20:00:00Z");
            metrics.JournalWriteFailed("node", "database is locked", at);
            File.Delete(socket);
            Assert.Equal((HttpStatusCode.ServiceUnavailable,
                    $"journal: the last write (node, at {at:O}) failed: database is locked\ncni: socket file {socket} is gone\n"),
                await GetAsync(server.Port, "/readyz"));
            metrics.JournalWritten("node", at.AddSeconds(1));
            Assert.Equal((HttpStatusCode.ServiceUnavailable, $"cni: socket file {socket} is gone\n"),
                await GetAsync(server.Port, "/readyz"));
        }
        finally
        {
            await server.StoppedAsync(default);
        }
    }

    [Fact]
    public async Task A_cluster_member_is_ready_once_it_is_up()
    {
        var port = Membership.ClusterMembershipTests.FreePort();
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{port}} }
            akka.loglevel = WARNING
            """);
        using var system = ActorSystem.Create("readiness", config);
        var services = new ServiceCollection().AddSingleton(system).BuildServiceProvider();
        var check = new ClusterMemberReadiness(services);
        var before = check.Failing();
        Assert.NotNull(before);
        Assert.StartsWith($"cluster: this member (akka.tcp://readiness@127.0.0.1:{port}) is ", before);
        Assert.EndsWith(", not Up", before);

        var cluster = Akka.Cluster.Cluster.Get(system);
        var up = new TaskCompletionSource();
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        cluster.Join(cluster.SelfAddress);
        await up.Task.WaitAsync(TimeSpan.FromSeconds(30));
        // The check reads Cluster.State, which the cluster's read view updates a moment after the member-up callbacks run.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (check.Failing() is not null && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Null(check.Failing());
        await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
    }

    private sealed class NoRequests : ICniRequests
    {
        public Task<Romana.Contracts.Cni.DaemonReply> HandleAsync(Romana.Contracts.Cni.DaemonRequest request) =>
            throw new InvalidOperationException("no request is sent in this test");

        public Task UndeliveredAsync(Romana.Contracts.Cni.DaemonRequest request, Romana.Contracts.Cni.DaemonReply reply, string why) =>
            Task.CompletedTask;
    }
}
