using Akka.Configuration;

namespace Romana.Actors.Configuration;

/// <summary>Tunables of forwarder health (romana.health).</summary>
public sealed record HealthSettings(
    TimeSpan ProbeInterval,
    int FailureThreshold,
    int RecoveryThreshold,
    TimeSpan ProbeTimeout,
    int ProbePort,
    TimeSpan HoldDown,
    TimeSpan StatusInterval)
{
    public static HealthSettings Default => From(RomanaConfig.Reference);

    public static HealthSettings From(Config config)
    {
        var health = config.GetConfig("romana.health");
        var settings = new HealthSettings(health.GetTimeSpan("probe-interval"), health.GetInt("failure-threshold"),
            health.GetInt("recovery-threshold"), health.GetTimeSpan("probe-timeout"), health.GetInt("probe-port"),
            health.GetTimeSpan("hold-down"), health.GetTimeSpan("status-interval"));
        if (settings.FailureThreshold < 1)
            throw new ConfigurationError($"romana.health.failure-threshold: {settings.FailureThreshold} must be at least 1");
        if (settings.RecoveryThreshold < 1)
            throw new ConfigurationError($"romana.health.recovery-threshold: {settings.RecoveryThreshold} must be at least 1");
        if (settings.ProbeInterval <= TimeSpan.Zero)
            throw new ConfigurationError($"romana.health.probe-interval: {settings.ProbeInterval} must be positive");
        return settings;
    }

    /// <summary>The longest a failure can go unnoticed: threshold probes, the first of which may be one interval away.</summary>
    public TimeSpan DetectionBound => ProbeInterval * FailureThreshold;
}
