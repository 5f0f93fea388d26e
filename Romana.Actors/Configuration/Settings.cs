using Akka.Configuration;

namespace Romana.Actors.Configuration;

/// <summary>Tunables of the IPAM actors (romana.ipam).</summary>
public sealed record IpamSettings(int SnapshotEvery, TimeSpan AskTimeout, TimeSpan StartupTimeout, TimeSpan RestartMinBackoff,
    TimeSpan RestartMaxBackoff)
{
    /// <summary>Cluster placement: how often a daemon announces its node to its subnet (romana.ipam.cluster.register-interval).</summary>
    public TimeSpan RegisterInterval { get; init; } = TimeSpan.FromSeconds(1);

    public static IpamSettings Default => From(RomanaConfig.Reference);

    public static IpamSettings From(Config config)
    {
        const string ipam = "romana.ipam";
        var settings = new IpamSettings(ConfigValues.Int(config, $"{ipam}.snapshot-every"),
            ConfigValues.Duration(config, $"{ipam}.ask-timeout"), ConfigValues.Duration(config, $"{ipam}.startup-timeout"),
            ConfigValues.Duration(config, $"{ipam}.node-restart.min-backoff"),
            ConfigValues.Duration(config, $"{ipam}.node-restart.max-backoff"));
        settings = settings with { RegisterInterval = ConfigValues.Duration(config, $"{ipam}.cluster.register-interval") };
        if (settings.RegisterInterval <= TimeSpan.Zero)
            throw ConfigValues.Error(config, $"{ipam}.cluster.register-interval", $"{settings.RegisterInterval} must be positive");
        if (settings.SnapshotEvery < 1)
            throw ConfigValues.Error(config, $"{ipam}.snapshot-every", $"{settings.SnapshotEvery} must be at least 1");
        return settings;
    }
}
