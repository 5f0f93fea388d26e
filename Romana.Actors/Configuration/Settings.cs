using Akka.Configuration;

namespace Romana.Actors.Configuration;

/// <summary>Tunables of the IPAM actors (romana.ipam).</summary>
public sealed record IpamSettings(int SnapshotEvery, TimeSpan AskTimeout, TimeSpan StartupTimeout, TimeSpan RestartMinBackoff,
    TimeSpan RestartMaxBackoff)
{
    public static IpamSettings Default => From(RomanaConfig.Reference);

    public static IpamSettings From(Config config)
    {
        var ipam = config.GetConfig("romana.ipam");
        var settings = new IpamSettings(ipam.GetInt("snapshot-every"), ipam.GetTimeSpan("ask-timeout"), ipam.GetTimeSpan("startup-timeout"),
            ipam.GetTimeSpan("node-restart.min-backoff"), ipam.GetTimeSpan("node-restart.max-backoff"));
        if (settings.SnapshotEvery < 1)
            throw new ConfigurationError($"romana.ipam.snapshot-every: {settings.SnapshotEvery} must be at least 1");
        return settings;
    }
}
