using System.Text.Json.Nodes;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Dataplane;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Cli;

/// <summary>
/// `romana node remove` and `romana cluster status` as a user runs them (the romana executable), against a daemon that runs
/// alone in this process on a SQLite journal: the --json shapes, the one-line errors and the exit codes.
/// </summary>
public sealed class AdminCommandTests : IAsyncLifetime
{
    private readonly TempFolder _folder = new();
    private RomanaDaemon? _daemon;

    private string Socket => Path.Combine(_folder.Path, "cni.sock");

    private static Task<(int Exit, string Output, string Error)> RomanaAsync(params string[] arguments) =>
        Processes.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "romana.dll"), .. arguments], Paths.RepositoryRoot);

    public async Task InitializeAsync()
    {
        var config = _folder.Write("romana.conf", $$"""
            romana {
              topology {
                pod-cidr = "100.64.0.0/24", block-prefix-length = 28
                zones = [{ name = "z", subnets = [{ id = "s1" }] }]
              }
              node { name = "n1", ip = "10.99.0.11" }
              health.probe-port = 0
              http.port = 0
              persistence { journal = sqlite, sqlite.path = "{{_folder.Path}}/romana.db" }
              cni.socket = "{{Socket}}"
            }
            akka.loglevel = WARNING
            """);
        _daemon = await RomanaDaemon.StartAsync(RomanaConfig.Load(config), hostNetwork: new InMemoryHostNetwork());
        // Another node in the daemon's journal, as a node of a single machine's tests: two pods on it.
        Assert.IsType<Succeeded>(await _daemon.Ipam.AskAsync(new AddNode(new NodeName("n2"), new SubnetId("s1"), "10.99.0.12")));
        foreach (var key in new[] { "c1/eth0", "c2/eth0" })
            Assert.IsType<AddressAssigned>(await _daemon.Ipam.AskAsync(new Allocate(new NodeName("n2"), new AllocationKey(key))));
    }

    public async Task DisposeAsync()
    {
        if (_daemon is not null) await _daemon.DisposeAsync();
        _folder.Dispose();
    }

    private async Task<int> HeldOnN2Async() =>
        Assert.IsType<AllocationsOf>(await _daemon!.Ipam.AskAsync(new GetAllocations(new NodeName("n2")))).Allocations.Length;

    [Fact]
    public async Task Cluster_status_of_a_daemon_alone_prints_its_node_and_no_members()
    {
        var (exit, output, error) = await RomanaAsync("cluster", "status", "--socket", Socket, "--json");
        Assert.Equal((0, ""), (exit, error));
        Assert.Equal("""{"ok":true,"self":"n1","enabled":false,"selfAddress":null,"members":[],"routeManager":null}""",
            JsonNode.Parse(output)!.ToJsonString());

        // The socket from --config, as the daemon reads it; and the words for a person.
        (exit, output, error) = await RomanaAsync("cluster", "status", "--config", Path.Combine(_folder.Path, "romana.conf"));
        Assert.Equal((0, ""), (exit, error));
        Assert.Equal("node n1: its daemon runs alone (romana.cluster.enabled = off); no cluster", output.Trim());
    }

    [Fact]
    public async Task Node_remove_prints_what_was_released_and_exits_0_then_1_once_the_node_is_gone()
    {
        var (exit, output, error) = await RomanaAsync("node", "remove", "n2", "--socket", Socket, "--json");
        Assert.Equal((0, ""), (exit, error));
        Assert.Equal("""{"ok":true,"node":"n2","subnet":"s1","released":2}""", JsonNode.Parse(output)!.ToJsonString());
        Assert.IsType<Failed>(await _daemon!.Ipam.AskAsync(new GetAllocations(new NodeName("n2"))));

        (exit, output, error) = await RomanaAsync("node", "remove", "n2", "--socket", Socket, "--json");
        Assert.Equal(1, exit);
        var refused = JsonNode.Parse(output)!;
        Assert.Equal((false, "not-found"), (refused["ok"]!.GetValue<bool>(), refused["code"]!.GetValue<string>()));
        Assert.Equal("romana: node remove n2: refused (not-found): node: 'n2' is not a member of any subnet", error.Trim());
    }

    [Fact]
    public async Task Node_remove_of_the_daemons_own_node_is_refused_with_the_daemons_sentence_and_changes_nothing()
    {
        var (exit, output, error) = await RomanaAsync("node", "remove", "n1", "--socket", Socket);
        Assert.Equal((1, ""), (exit, output));
        Assert.Equal("romana: node remove n1: refused (invalid): node n1 is this daemon's own node; stop this daemon and remove "
            + "the node from another node's daemon", error.Trim());
        Assert.Equal(2, await HeldOnN2Async());
    }

    [Fact]
    public async Task No_daemon_at_the_socket_exits_1_and_bad_usage_exits_2_each_with_one_line()
    {
        var missing = Path.Combine(_folder.Path, "none.sock");
        var (exit, output, error) = await RomanaAsync("node", "remove", "n2", "--socket", missing);
        Assert.Equal((1, ""), (exit, output));
        Assert.Equal($"romana: no romana daemon at {missing}: no such socket (is romana daemon running? --socket or --config names "
            + "another path)", error.Trim());
        (exit, _, error) = await RomanaAsync("cluster", "status", "--socket", _folder.Path);
        Assert.Equal(1, exit);
        Assert.Equal($"romana: no romana daemon at {_folder.Path}: the path is a directory, not a Unix socket", error.Trim());

        (exit, _, error) = await RomanaAsync("node", "remove", "n 2", "--socket", Socket);
        Assert.Equal((2, "romana: NAME 'n 2' holds a space or a control character"), (exit, error.Trim()));
        (exit, _, error) = await RomanaAsync("node", "remove", "--socket", Socket);
        Assert.Equal(2, exit);
        Assert.EndsWith("romana: see 'romana node remove --help'", error.Trim());
        (exit, _, error) = await RomanaAsync("cluster", "status", "--config", Path.Combine(_folder.Path, "nope.conf"));
        Assert.Equal((2, $"romana: {_folder.Path}/nope.conf: no such configuration file"), (exit, error.Trim()));
        Assert.Equal(2, await HeldOnN2Async());
    }

    [Fact]
    public async Task Help_says_what_each_command_does_and_when_it_is_refused()
    {
        var (exit, output, _) = await RomanaAsync("node", "remove", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("Refused while the node is an Up and", output);
        Assert.Contains("--socket", output);
        (exit, output, _) = await RomanaAsync("cluster", "status", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("route manager", output);
    }
}
