using Akka.Configuration;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>The node's masquerade (romana.host-agent.masquerade): its settings, its rules, and nft in a network namespace.</summary>
public sealed class MasqueradeTests
{
    private static Config Config(string settings) =>
        ConfigurationFactory.ParseString(settings).WithFallback(ConfigurationFactory.ParseString("""
            romana.topology {
              pod-cidr = "100.64.0.0/16"
              block-prefix-length = 26
              zones = [{ name = "z", subnets = [{ id = "s1", vpc-cidr = "10.0.1.0/24" }, { id = "s2", vpc-cidr = "10.0.2.0/24" }] }]
            }
            """)).WithFallback(RomanaConfig.Reference);

    [Fact]
    public void Pod_traffic_is_masqueraded_except_to_the_pod_cidr_the_subnets_vpc_cidrs_and_the_excluded()
    {
        var config = Config("romana.host-agent.masquerade.exclude = [\"203.0.113.0/24\"]");
        var rules = MasqueradeSettings.From(config).RulesFor(RomanaConfig.ReadTopology(config))!;
        Assert.Equal("100.64.0.0/16", rules.PodCidr.ToString());
        Assert.Equal(["100.64.0.0/16", "10.0.1.0/24", "10.0.2.0/24", "203.0.113.0/24"], rules.Kept.Select(c => c.ToString()));
        var ruleset = MasqueradeRules.Ruleset(rules);
        Assert.StartsWith("table ip romana_masquerade\ndelete table ip romana_masquerade\n", ruleset);
        Assert.Contains("ip saddr 100.64.0.0/16 ip daddr != @kept counter masquerade", ruleset);

        var off = Config("romana.host-agent.masquerade.enabled = off");
        Assert.Null(MasqueradeSettings.From(off).RulesFor(RomanaConfig.ReadTopology(off)));
        Assert.Equal("table ip romana_masquerade\ndelete table ip romana_masquerade\n", MasqueradeRules.Ruleset(null));
    }

    [Theory]
    [InlineData("romana.host-agent.masquerade.exclude = [\"10.0.0.0/33\"]",
        "romana.host-agent.masquerade.exclude[0]: '10.0.0.0/33' is not an IPv4 CIDR such as 10.0.0.0/16")]
    [InlineData("romana.host-agent.masquerade.enabled = maybe", "romana.host-agent.masquerade.enabled: 'maybe' is neither on nor off")]
    [InlineData("romana.host-agent.masquerade.exclude = \"10.0.0.0/8\"",
        "romana.host-agent.masquerade.exclude: expected a list of CIDRs [\"203.0.113.0/24\", ...]")]
    public void A_bad_setting_is_one_line_naming_it_and_its_value(string setting, string message)
    {
        var error = Assert.Throws<ConfigurationError>(() => MasqueradeSettings.From(Config(setting)));
        Assert.Equal(message, error.Message);
    }

    [SkippableFact]
    public void Nft_replaces_Romanas_table_whole_removes_it_when_off_and_never_touches_another_table()
    {
        Skip.If(NetnsLab.WhyNot is not null, NetnsLab.WhyNot);
        Skip.If(!File.Exists("/usr/sbin/nft"), "no nft (.ci/run installs nftables)");
        using var lab = new NetnsLab();
        var node = lab.AddNamespace("node");
        NetnsLab.Exec(node, "nft", ["add", "table", "ip", "someone_else"]);
        NetnsLab.Exec(node, "nft", ["add", "chain", "ip", "someone_else", "post", "{ type nat hook postrouting priority srcnat; }"]);
        var nft = new NftMasqueradeRules(["ip", "netns", "exec", node, "nft"]);
        string Ruleset() => NetnsLab.Exec(node, "nft", ["list", "ruleset"]).Output;

        var config = Config("");
        var rules = MasqueradeSettings.From(config).RulesFor(RomanaConfig.ReadTopology(config))!;
        nft.Apply(rules);
        Assert.Contains("table ip romana_masquerade", Ruleset());
        // A restart with other settings, or a rule added by hand: the table is replaced whole, never doubled.
        NetnsLab.Exec(node, "nft", ["add", "rule", "ip", "romana_masquerade", "postrouting", "ip", "saddr", "1.2.3.4", "accept"]);
        nft.Apply(rules with { Kept = [.. rules.Kept, Romana.Actors.Addressing.Ipv4Cidr.Parse("203.0.113.0/24")] });
        var replaced = Ruleset();
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(replaced, "table ip romana_masquerade"));
        Assert.DoesNotContain("1.2.3.4", replaced);
        Assert.Contains("203.0.113.0/24", replaced);
        Assert.Contains("table ip someone_else", replaced);

        nft.Apply(null);
        Assert.DoesNotContain("romana_masquerade", Ruleset());
        Assert.Contains("table ip someone_else", Ruleset());
        nft.Apply(null); // nothing to remove: no error
    }
}
