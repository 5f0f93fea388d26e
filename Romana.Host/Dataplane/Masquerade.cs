using System.Collections.Immutable;
using System.Text;
using Akka.Configuration;
using Akka.Event;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Actors.Topology;
using Romana.Host.Lab;

namespace Romana.Host.Dataplane;

/// <summary>
/// romana.host-agent.masquerade: pod traffic to destinations outside the pod CIDR, the subnets' VPC CIDRs and
/// <paramref name="Exclude"/> leaves the node masqueraded to the node's address (DESIGN.md 2b: an internet or NAT gateway
/// translates only addresses the VPC assigned).
/// </summary>
public sealed record MasqueradeSettings(bool Enabled, ImmutableArray<Ipv4Cidr> Exclude)
{
    private const string Root = "romana.host-agent.masquerade";

    public static MasqueradeSettings From(Config config)
    {
        var enabled = config.HasPath($"{Root}.enabled") && config.GetValue($"{Root}.enabled") is { } value
            ? ConfigValues.Text(config, $"{Root}.enabled") switch
            {
                "on" or "true" or "yes" => true,
                "off" or "false" or "no" => false,
                var other => throw ConfigValues.Error(config, $"{Root}.enabled", $"{Quoting.Quote(other)} is neither on nor off"),
            }
            : true;
        var exclude = new List<Ipv4Cidr>();
        if (config.HasPath($"{Root}.exclude"))
        {
            // An empty list reads as no array in Akka's HOCON; a string or an object is the mistake to name.
            var list = config.GetValue($"{Root}.exclude");
            if (list.IsString() || list.IsObject())
                throw ConfigValues.Error(config, $"{Root}.exclude", "expected a list of CIDRs [\"203.0.113.0/24\", ...]");
            var items = config.GetStringList($"{Root}.exclude") ?? [];
            for (var i = 0; i < items.Count; i++)
            {
                var text = items[i];
                if (!Ipv4Cidr.TryParse(text, out var cidr))
                    throw ConfigValues.Error(config, $"{Root}.exclude[{i}]",
                        $"{Quoting.Quote(text)} is not an IPv4 CIDR such as 10.0.0.0/16");
                exclude.Add(cidr);
            }
        }
        return new MasqueradeSettings(enabled, [.. exclude]);
    }

    /// <summary>The rules for this topology, or null (masquerade off): what <see cref="IMasqueradeRules"/> puts in place.</summary>
    public MasqueradeRules? RulesFor(ClusterTopology topology) =>
        !Enabled ? null
        : new MasqueradeRules(topology.PodCidr,
            [topology.PodCidr, .. topology.Subnets.Select(s => s.VpcCidr).OfType<Ipv4Cidr>(), .. Exclude]);
}

/// <summary>Masquerade traffic from <paramref name="PodCidr"/> to anything but <paramref name="Kept"/>.</summary>
public sealed record MasqueradeRules(Ipv4Cidr PodCidr, ImmutableArray<Ipv4Cidr> Kept)
{
    /// <summary>Romana's nft table: the only one it writes or removes; tables of others are never touched.</summary>
    public const string Table = "romana_masquerade";

    /// <summary>
    /// One nft transaction that replaces Romana's table whole (declare, delete, declare again: the same on a first start,
    /// a restart with other settings, or a table edited by hand), or only removes it (<paramref name="rules"/> null).
    /// </summary>
    public static string Ruleset(MasqueradeRules? rules)
    {
        var text = new StringBuilder();
        text.AppendLine($"table ip {Table}");
        text.AppendLine($"delete table ip {Table}");
        if (rules is null) return text.ToString();
        text.AppendLine($"table ip {Table} {{");
        text.AppendLine("  set kept {");
        text.AppendLine("    type ipv4_addr; flags interval; auto-merge;");
        text.AppendLine($"    elements = {{ {string.Join(", ", rules.Kept.Select(c => c.ToString()).Distinct())} }}");
        text.AppendLine("  }");
        text.AppendLine("  chain postrouting {");
        text.AppendLine("    type nat hook postrouting priority srcnat; policy accept;");
        text.AppendLine($"    ip saddr {rules.PodCidr} ip daddr != @kept counter masquerade comment \"pods to outside the VPC\"");
        text.AppendLine("  }");
        text.AppendLine("}");
        return text.ToString();
    }
}

/// <summary>The port: puts Romana's masquerade rules in place (null: removes them).</summary>
public interface IMasqueradeRules
{
    void Apply(MasqueradeRules? rules);
}

/// <summary>The adapter: the <c>nft</c> binary, one atomic transaction on its standard input.</summary>
/// <param name="command">How to run nft (tests: ip netns exec NETNS nft); nft from the PATH unless given.</param>
public sealed class NftMasqueradeRules(IReadOnlyList<string>? command = null) : IMasqueradeRules
{
    private readonly IReadOnlyList<string> _command = command ?? ["nft"];

    /// <summary>
    /// The rules where the host port works: nft in the same namespace as a <see cref="LinuxHostNetwork"/> that names one (a
    /// daemon of a test inside the test process), in the process's own otherwise; none beside another port (an in-memory one).
    /// </summary>
    public static IMasqueradeRules BesideHostNetwork(IHostNetwork? hostNetwork) => hostNetwork switch
    {
        null or LinuxHostNetwork { Netns: null } => new NftMasqueradeRules(),
        LinuxHostNetwork { Netns: { } netns } =>
            new NftMasqueradeRules(["nsenter", $"--net={(netns.Contains('/') ? netns : $"/var/run/netns/{netns}")}", "nft"]),
        _ => new NoMasqueradeRules(),
    };

    public void Apply(MasqueradeRules? rules)
    {
        LabShell.Outcome outcome;
        try
        {
            outcome = LabShell.Run(_command[0], [.. _command.Skip(1), "-f", "-"], MasqueradeRules.Ruleset(rules));
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new DaemonStartException(
                $"romana.host-agent.masquerade: cannot run {_command[0]}: {e.Message} (apt-get install nftables)");
        }
        if (!outcome.Ok)
            throw new DaemonStartException($"romana.host-agent.masquerade: nft refused the rules: {outcome.Error.Trim()}");
    }
}

/// <summary>No rules anywhere: beside a host port that is not the kernel's.</summary>
public sealed class NoMasqueradeRules : IMasqueradeRules
{
    public void Apply(MasqueradeRules? rules)
    {
    }
}

/// <summary>Puts the node's masquerade in place as the daemon starts; the rules stay when it stops (pods keep their traffic).</summary>
public sealed class MasqueradeService(IServiceProvider services, MasqueradeRules? rules) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        services.GetRequiredService<IMasqueradeRules>().Apply(rules);
        services.DaemonLog().Info(rules is null
            ? "masquerade off: Romana's nft table removed"
            : $"masquerade: pods ({rules.PodCidr}) to anything but {string.Join(", ", rules.Kept)} leave as this node "
                + $"(nft table ip {MasqueradeRules.Table})");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
