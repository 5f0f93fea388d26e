using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Romana.Actors;
using Romana.Actors.Configuration;
using Romana.Host.Persistence;

namespace Romana.Host.Composition;

/// <summary>The split-brain resolver's strategies that Romana offers (akka.cluster.split-brain-resolver.active-strategy).</summary>
public enum SplitBrainStrategy { KeepMajority, KeepOldest, StaticQuorum, DownAll }

/// <summary>TLS for remoting (Akka's dot-netty enable-ssl): one certificate file with its private key, shared by every member.</summary>
public sealed record ClusterTlsSettings(bool Enabled, string CertificatePath, string CertificatePassword)
{
    public static readonly ClusterTlsSettings Off = new(false, "", "");
}

/// <summary>
/// How `romana daemon` joins an Akka.Cluster (romana.cluster): where other members reach it, how it finds them (seed nodes,
/// or cluster bootstrap through Kubernetes), how a partition is resolved, and whether remoting speaks TLS. The actor system
/// is always named <see cref="SystemName"/>.
/// </summary>
public sealed record ClusterSettings(bool Enabled, string Hostname, int Port, ImmutableArray<string> SeedNodes,
    SplitBrainStrategy Strategy, TimeSpan StableAfter, int QuorumSize, ClusterTlsSettings Tls)
{
    /// <summary>How the daemon finds the other members: the seed nodes, or Kubernetes (<see cref="Bootstrap"/>).</summary>
    public ClusterDiscovery Discovery { get; init; } = ClusterDiscovery.SeedNodes;

    /// <summary>Cluster bootstrap through Kubernetes, used when <see cref="Discovery"/> is Kubernetes.</summary>
    public KubernetesBootstrapSettings Bootstrap { get; init; } = KubernetesBootstrapSettings.From(RomanaConfig.Reference, check: false);

    public const string Section = "romana.cluster";
    public const string SystemName = "romana";

    public static ClusterSettings Default => From(RomanaConfig.Reference);

    public static ClusterSettings From(Config config)
    {
        if (!ReferenceEquals(config, RomanaConfig.Reference)) config = config.WithFallback(RomanaConfig.Reference);
        var enabled = Bool(config, $"{Section}.enabled");
        var hostname = ConfigValues.Text(config, $"{Section}.hostname");
        var port = ConfigValues.Int(config, $"{Section}.port");
        if (port is < 0 or > 65535)
            throw ConfigValues.Error(config, $"{Section}.port", $"{port} is not a TCP port (0 to 65535; 0: any free port)");
        if (enabled && string.IsNullOrWhiteSpace(hostname))
            throw ConfigValues.Error(config, $"{Section}.hostname", "empty; name the address other members reach this one at");
        var seeds = SeedNodesOf(config);
        var sbr = $"{Section}.split-brain-resolver";
        var strategyText = ConfigValues.Text(config, $"{sbr}.active-strategy");
        var strategy = strategyText switch
        {
            "keep-majority" => SplitBrainStrategy.KeepMajority,
            "keep-oldest" => SplitBrainStrategy.KeepOldest,
            "static-quorum" => SplitBrainStrategy.StaticQuorum,
            "down-all" => SplitBrainStrategy.DownAll,
            _ => throw ConfigValues.Error(config, $"{sbr}.active-strategy",
                $"{Quoting.Quote(strategyText)} is not one of keep-majority, keep-oldest, static-quorum, down-all"),
        };
        var stableAfter = ConfigValues.Duration(config, $"{sbr}.stable-after");
        if (stableAfter <= TimeSpan.Zero)
            throw ConfigValues.Error(config, $"{sbr}.stable-after", $"{ConfigValues.Text(config, $"{sbr}.stable-after")} must be positive");
        var quorum = ConfigValues.Int(config, $"{sbr}.static-quorum.quorum-size");
        if (strategy == SplitBrainStrategy.StaticQuorum && quorum < 1)
            throw ConfigValues.Error(config, $"{sbr}.static-quorum.quorum-size", $"{quorum} must be at least 1 with static-quorum");
        var tls = new ClusterTlsSettings(Bool(config, $"{Section}.tls.enabled"),
            ConfigValues.Text(config, $"{Section}.tls.certificate-path"),
            ConfigValues.Text(config, $"{Section}.tls.certificate-password"));
        if (tls.Enabled && string.IsNullOrWhiteSpace(tls.CertificatePath))
            throw ConfigValues.Error(config, $"{Section}.tls.certificate-path", "empty while tls.enabled = on; name a PKCS#12 (.pfx) file");
        if (enabled && tls.Enabled && !File.Exists(tls.CertificatePath))
            throw ConfigValues.Error(config, $"{Section}.tls.certificate-path", $"{Quoting.Quote(tls.CertificatePath)}: no such file");
        var discoveryText = ConfigValues.Text(config, $"{Section}.discovery");
        var discovery = discoveryText switch
        {
            "seed-nodes" => ClusterDiscovery.SeedNodes,
            "kubernetes" => ClusterDiscovery.Kubernetes,
            _ => throw ConfigValues.Error(config, $"{Section}.discovery",
                $"{Quoting.Quote(discoveryText)} is neither seed-nodes nor kubernetes"),
        };
        var bootstrap = KubernetesBootstrapSettings.From(config, check: enabled && discovery == ClusterDiscovery.Kubernetes);
        return new ClusterSettings(enabled, hostname, port, seeds, strategy, stableAfter, quorum, tls)
        {
            Discovery = discovery,
            Bootstrap = bootstrap,
        };
    }

    /// <summary>
    /// A cluster shares one journal, so it runs on PostgreSQL: SQLite serves one machine, and two daemons writing their
    /// own files would hand out the same addresses.
    /// </summary>
    public void RequireSharedJournal(Config config, JournalSettings journal)
    {
        if (Enabled && journal.Journal == JournalKind.Sqlite)
            throw ConfigValues.Error(config, "romana.persistence.journal",
                "sqlite with romana.cluster.enabled = on; a cluster shares one PostgreSQL journal (set journal = postgresql)");
    }

    private static ImmutableArray<string> SeedNodesOf(Config config)
    {
        var setting = $"{Section}.seed-nodes";
        IList<string> list;
        try
        {
            list = config.GetStringList(setting) ?? [];
        }
        catch (Exception e) when (e is not ConfigurationError)
        {
            throw ConfigValues.Error(config, setting, $"{Quoting.Quote(ConfigValues.Text(config, setting))} is not a list of addresses");
        }
        foreach (var seed in list)
        {
            if (!ActorPath.TryParseAddress(seed, out var address) || address.Host is null || address.Port is null
                || address.Protocol is not ("akka.tcp" or "akka.ssl.tcp"))
                throw ConfigValues.Error(config, setting,
                    $"{Quoting.Quote(seed)} is not an address such as akka.tcp://romana@10.0.1.11:4053");
            if (address.System != SystemName)
                throw ConfigValues.Error(config, setting,
                    $"{Quoting.Quote(seed)} names the actor system '{address.System}'; Romana's is always '{SystemName}'");
        }
        return [.. list];
    }

    private static bool Bool(Config config, string setting) => ConfigValues.Text(config, setting).ToLowerInvariant() switch
    {
        "on" or "true" or "yes" => true,
        "off" or "false" or "no" => false,
        var other => throw ConfigValues.Error(config, setting, $"{Quoting.Quote(other)} is neither on nor off"),
    };
}
