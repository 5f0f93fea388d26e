using Akka.Configuration;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;
using Romana.Host.Cli;
using Romana.Host.Ec2;
using Romana.Host.Persistence;

namespace Romana.Actors.Tests.Topology;

/// <summary>A configuration file that cannot be used is refused with one line naming the file, the setting and the value.</summary>
public class ConfigurationFileTests
{
    private static (string File, Exception Error) Refused(string hocon, Func<Config, object> read)
    {
        using var folder = new TempFolder();
        var file = folder.Write("romana.conf", hocon);
        return (file, Assert.ThrowsAny<Exception>(() => read(RomanaConfig.Load(file))));
    }

    public static TheoryData<string, string> Settings => new()
    {
        { "romana.ipam.snapshot-every = 0", "romana.ipam.snapshot-every: 0 must be at least 1" },
        { "romana.ipam.snapshot-every = lots", "romana.ipam.snapshot-every: 'lots' is not a whole number" },
        { "romana.ipam.snapshot-every = 99999999999", "romana.ipam.snapshot-every: '99999999999' is not a whole number" },
        { "romana.ipam.ask-timeout = soon", "romana.ipam.ask-timeout: 'soon' is not a duration such as 500ms, 30s or 2m" },
        { "romana.routes.route-limit = 0", "romana.routes.route-limit: 0 must be at least 1" },
        { "romana.health.probe-interval = often", "romana.health.probe-interval: 'often' is not a duration such as 500ms, 30s or 2m" },
        { "romana.health.failure-threshold = 0", "romana.health.failure-threshold: 0 must be at least 1" },
        { "romana.health.standby-repair-after = 0s", "romana.health.standby-repair-after: 0ms must be positive" },
        { "romana.health.standby-repair-check = 200ms",
            "romana.health.standby-repair-check: 200ms must be longer than standby-repair-after (300ms)" },
        { "romana.host-agent.route-table = 254", "romana.host-agent.route-table: 254 is reserved; use 1-252 or above 255" },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void A_bad_setting_names_the_file_and_the_setting(string hocon, string expected)
    {
        var (file, error) = Refused(hocon, config => (
            IpamSettings.From(config), RouteSettings.From(config), HealthSettings.From(config), HostAgentSettings.From(config)));
        Assert.IsType<ConfigurationError>(error);
        Assert.Equal($"{file}: {expected}", error.Message);
    }

    /// <summary>The file the DaemonSet's ConfigMap holds (deploy/romana.conf) reads its node's name and addresses so.</summary>
    private const string FromEnvironment = """
        romana {
          node {
            name = ${?ROMANA_NODE_NAME}
            ip = ${?ROMANA_HOST_IP}
          }
          cluster {
            hostname = ${?ROMANA_POD_IP}
            port = 4053
          }
          persistence.postgresql.connection-string = ${ROMANA_DB}
          ipam.snapshot-every = 77 # ${NOT_READ_IN_A_COMMENT}
          node.subnet = ${romana.ipam.snapshot-every}
          audit.late-writes = "2m" // "${NOT_READ_EITHER}"
          host-agent.masquerade.exclude = ["${NOT_IN_QUOTES}"]
        }
        """;

    private static Config WithEnvironment(Dictionary<string, string> environment) =>
        ConfigurationFactory.ParseString(RomanaConfig.WithEnvironment(FromEnvironment, "romana.conf", environment.GetValueOrDefault))
            .WithFallback(RomanaConfig.Reference);

    [Fact]
    public void Environment_variables_are_put_in_as_strings_and_an_unset_optional_one_leaves_the_default()
    {
        var set = WithEnvironment(new()
        {
            ["ROMANA_NODE_NAME"] = "ip-10-0-1-7.ec2.internal", ["ROMANA_HOST_IP"] = "10.0.1.7", ["ROMANA_POD_IP"] = "10.0.1.7",
            ["ROMANA_DB"] = "Host=db;Password=a\\b\"c;Database=romana",
        });
        Assert.Equal(("ip-10-0-1-7.ec2.internal", "10.0.1.7", "10.0.1.7"),
            (set.GetString("romana.node.name"), set.GetString("romana.node.ip"), set.GetString("romana.cluster.hostname")));
        Assert.Equal("Host=db;Password=a\\b\"c;Database=romana", set.GetString("romana.persistence.postgresql.connection-string"));
        // A substitution of a setting (lower case, dotted) is still Akka's.
        Assert.Equal("77", set.GetString("romana.node.subnet"));
        Assert.Equal(77, set.GetInt("romana.ipam.snapshot-every"));
        // Comments and quoted strings are left alone, as HOCON substitutes in neither.
        Assert.Equal(["${NOT_IN_QUOTES}"], set.GetStringList("romana.host-agent.masquerade.exclude"));

        var unset = WithEnvironment(new() { ["ROMANA_DB"] = "Host=db" });
        Assert.Equal(("", "", "127.0.0.1"),
            (unset.GetString("romana.node.name"), unset.GetString("romana.node.ip"), unset.GetString("romana.cluster.hostname")));
        Assert.Equal(77, unset.GetInt("romana.ipam.snapshot-every"));
    }

    [Fact]
    public void An_unset_environment_variable_that_must_be_set_names_the_file_and_the_variable()
    {
        using var folder = new TempFolder();
        var file = folder.Write("romana.conf", "romana.persistence.postgresql.connection-string = ${ROMANA_UNSET_IN_TESTS_1}\n");
        Assert.Equal($"{file}: ${{ROMANA_UNSET_IN_TESTS_1}}: environment variable not set",
            Assert.Throws<ConfigurationError>(() => RomanaConfig.Load(file)).Message);
        var inside = folder.Write("other.conf", "romana.cluster.seed-nodes = [${?ROMANA_UNSET_IN_TESTS_2}]\n");
        Assert.Equal($"{inside}: ${{?ROMANA_UNSET_IN_TESTS_2}}: environment variable not set",
            Assert.Throws<ConfigurationError>(() => RomanaConfig.Load(inside)).Message);
    }

    [Fact]
    public void A_bad_journal_kind_names_the_file_and_the_setting()
    {
        var (file, error) = Refused("romana.persistence.journal = mysql", config => JournalSettings.From(config));
        Assert.Equal($"{file}: romana.persistence.journal: 'mysql' is neither sqlite nor postgresql", error.Message);
    }

    [Fact]
    public void A_topology_that_cannot_be_carved_names_the_file()
    {
        var (file, error) = Refused("""
            romana.topology { pod-cidr = "0.0.0.0/0", block-prefix-length = 26, zones = [ { name = z, subnets = [ { id = s } ] } ] }
            """, config => RomanaConfig.ReadTopology(config));
        Assert.IsType<TopologyException>(error);
        Assert.StartsWith($"{file}: topology pod-cidr: 0.0.0.0/0 is the default route", error.Message);
    }

    [Fact]
    public void A_bad_lab_setting_names_the_file()
    {
        var (file, error) = Refused("romana.ec2-lab.route-limit = many", config => Ec2LabSettings.From(config));
        Assert.Equal($"{file}: romana.ec2-lab.route-limit: 'many' is not a whole number", error.Message);
    }

    [Fact]
    public void A_long_value_is_quoted_shortened()
    {
        var (file, error) = Refused($"romana.persistence.journal = \"{new string('x', 3000)}\"", config => JournalSettings.From(config));
        Assert.Equal($"{file}: romana.persistence.journal: '{new string('x', 100)}… (3,000 characters)' is neither sqlite nor postgresql",
            error.Message);
    }

    [Fact]
    public void Settings_built_in_code_name_no_file()
    {
        var error = Assert.Throws<ConfigurationError>(() =>
            IpamSettings.From(ConfigurationFactory.ParseString("romana.ipam.snapshot-every = 0").WithFallback(RomanaConfig.Reference)));
        Assert.Equal("romana.ipam.snapshot-every: 0 must be at least 1", error.Message);
    }

    [Fact]
    public async Task A_daemon_whose_configuration_has_a_bad_setting_exits_2_naming_the_file_and_the_setting()
    {
        using var folder = new TempFolder();
        var config = folder.Write("romana.conf", File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "hocon", "single-node.conf"))
            .Replace("/var/lib/romana/romana.db", Path.Combine(folder.Path, "romana.db"))
            .Replace("/run/romana/cni.sock", Path.Combine(folder.Path, "cni.sock")) + "\nromana.ipam.snapshot-every = lots\n");
        var (exit, _, error) = await Processes.RunAsync("dotnet",
            [Path.Combine(AppContext.BaseDirectory, "romana.dll"), "daemon", "--config", config], Paths.RepositoryRoot);
        Assert.Equal(2, exit);
        Assert.Equal($"romana: {config}: romana.ipam.snapshot-every: 'lots' is not a whole number", error.Trim());
        Assert.False(File.Exists(Path.Combine(folder.Path, "romana.db")));
    }

    [Theory]
    [InlineData("-99999999999999999999d")]
    [InlineData("-99999999999999999999999999999999999999s")]
    public void An_audit_time_too_far_back_is_refused_naming_the_option(string text)
    {
        var error = Assert.Throws<ConfigurationError>(() => AuditCommands.Time(text, "--until"));
        Assert.StartsWith($"--until: '{text}' is ", error.Message);
    }

    [Fact]
    public void A_long_audit_time_is_quoted_shortened()
    {
        var error = Assert.Throws<ConfigurationError>(() => AuditCommands.Time(new string('y', 1000), "--until"));
        Assert.Equal($"--until: '{new string('y', 100)}… (1,000 characters)' is neither an ISO 8601 time nor a relative one such as -5m",
            error.Message);
    }
}
