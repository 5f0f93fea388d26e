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
        return new MasqueradeSettings(enabled, Cidrs(config, $"{Root}.exclude"));
    }

    /// <summary>A list of CIDRs at <paramref name="setting"/> (none when absent); a bad one is named with its index.</summary>
    internal static ImmutableArray<Ipv4Cidr> Cidrs(Config config, string setting)
    {
        if (!config.HasPath(setting)) return [];
        // An empty list reads as no array in Akka's HOCON; a string or an object is the mistake to name.
        var list = config.GetValue(setting);
        if (list.IsString() || list.IsObject())
            throw ConfigValues.Error(config, setting, "expected a list of CIDRs [\"203.0.113.0/24\", ...]");
        var items = config.GetStringList(setting) ?? [];
        var cidrs = new List<Ipv4Cidr>();
        for (var i = 0; i < items.Count; i++)
        {
            var text = items[i];
            if (!Ipv4Cidr.TryParse(text, out var cidr))
                throw ConfigValues.Error(config, $"{setting}[{i}]", $"{Quoting.Quote(text)} is not an IPv4 CIDR such as 10.0.0.0/16");
            cidrs.Add(cidr);
        }
        return [.. cidrs];
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

/// <summary>
/// romana.host-agent.imds-allow: pods may not reach the instance metadata service, which would hand them the node's IAM
/// role (the rights to change the VPC's route tables), except pods whose address lies in one of <paramref name="Allow"/>.
/// </summary>
public sealed record ImdsSettings(ImmutableArray<Ipv4Cidr> Allow)
{
    public const string Setting = "romana.host-agent.imds-allow";

    public static ImdsSettings From(Config config) => new(MasqueradeSettings.Cidrs(config, Setting));

    public ImdsBlockRules RulesFor(ClusterTopology topology) => new(topology.PodCidr, Allow);
}

/// <summary>
/// Traffic from <paramref name="PodCidr"/> to the instance metadata service (169.254.169.254) is refused, forwarded (on EC2
/// the service is off the node) or delivered to this host alike, unless its source lies in <paramref name="Allowed"/>. The
/// node's own traffic (the daemon's IMDSv2 calls among it) does not come from the pod CIDR and is never touched.
/// </summary>
public sealed record ImdsBlockRules(Ipv4Cidr PodCidr, ImmutableArray<Ipv4Cidr> Allowed)
{
    /// <summary>Romana's second nft table, replaced whole at every start, like <see cref="MasqueradeRules.Table"/>.</summary>
    public const string Table = "romana_imds";

    public const string Address = "169.254.169.254";

    /// <summary>One nft transaction that replaces the table whole: declare, delete, declare again with its rules.</summary>
    public static string Ruleset(ImdsBlockRules rules)
    {
        var text = new StringBuilder();
        text.AppendLine($"table ip {Table}");
        text.AppendLine($"delete table ip {Table}");
        text.AppendLine($"table ip {Table} {{");
        var allowed = rules.Allowed.Select(c => c.ToString()).Distinct().ToList();
        if (allowed.Count > 0)
        {
            text.AppendLine("  set allowed {");
            text.AppendLine("    type ipv4_addr; flags interval; auto-merge;");
            text.AppendLine($"    elements = {{ {string.Join(", ", allowed)} }}");
            text.AppendLine("  }");
        }
        foreach (var hook in new[] { "forward", "input" })
        {
            var match = $"ip saddr {rules.PodCidr} ip daddr {Address}";
            text.AppendLine($"  chain {hook} {{");
            text.AppendLine($"    type filter hook {hook} priority filter - 10; policy accept;");
            if (allowed.Count > 0) text.AppendLine($"    {match} ip saddr @allowed accept");
            // A reset, not silence: a pod's SDK learns at once that no credentials are here, instead of timing out.
            text.AppendLine($"    {match} meta l4proto tcp counter reject with tcp reset comment \"pods to the metadata service\"");
            text.AppendLine($"    {match} counter drop");
            text.AppendLine("  }");
        }
        text.AppendLine("}");
        return text.ToString();
    }
}

/// <summary>The port: puts Romana's nft tables in place: the masquerade (null: removes it), and the metadata-service block.</summary>
public interface IMasqueradeRules
{
    void Apply(MasqueradeRules? rules);

    void ApplyImdsBlock(ImdsBlockRules rules);
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

    public void Apply(MasqueradeRules? rules) => Run("romana.host-agent.masquerade", MasqueradeRules.Ruleset(rules));

    public void ApplyImdsBlock(ImdsBlockRules rules) => Run(ImdsSettings.Setting, ImdsBlockRules.Ruleset(rules));

    private void Run(string setting, string ruleset)
    {
        LabShell.Outcome outcome;
        try
        {
            outcome = LabShell.Run(_command[0], [.. _command.Skip(1), "-f", "-"], ruleset);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new DaemonStartException($"{setting}: cannot run {_command[0]}: {e.Message} (apt-get install nftables)");
        }
        if (!outcome.Ok)
            throw new DaemonStartException($"{setting}: nft refused the rules: {outcome.Error.Trim()}");
    }
}

/// <summary>No rules anywhere: beside a host port that is not the kernel's.</summary>
public sealed class NoMasqueradeRules : IMasqueradeRules
{
    public void Apply(MasqueradeRules? rules)
    {
    }

    public void ApplyImdsBlock(ImdsBlockRules rules)
    {
    }
}

/// <summary>
/// Puts the node's masquerade and metadata-service block in place as the daemon starts; the rules stay when it stops (pods
/// keep their traffic, and stay away from the metadata service).
/// </summary>
public sealed class MasqueradeService(IServiceProvider services, MasqueradeRules? rules, ImdsBlockRules imds) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var nft = services.GetRequiredService<IMasqueradeRules>();
        nft.Apply(rules);
        nft.ApplyImdsBlock(imds);
        var log = services.DaemonLog();
        log.Info(rules is null
            ? "masquerade off: Romana's nft table removed"
            : $"masquerade: pods ({rules.PodCidr}) to anything but {string.Join(", ", rules.Kept)} leave as this node "
                + $"(nft table ip {MasqueradeRules.Table})");
        log.Info($"metadata service: pods ({imds.PodCidr}) may not reach {ImdsBlockRules.Address}"
            + (imds.Allowed.IsEmpty ? "" : $" except from {string.Join(", ", imds.Allowed)}")
            + $" (nft table ip {ImdsBlockRules.Table})");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
