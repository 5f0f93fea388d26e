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
    TimeSpan StatusInterval,
    TimeSpan StandbyRepairAfter,
    TimeSpan StandbyRepairCheck)
{
    public static HealthSettings Default => From(RomanaConfig.Reference);

    public static HealthSettings From(Config config)
    {
        const string health = "romana.health";
        var settings = new HealthSettings(ConfigValues.Duration(config, $"{health}.probe-interval"),
            ConfigValues.Int(config, $"{health}.failure-threshold"), ConfigValues.Int(config, $"{health}.recovery-threshold"),
            ConfigValues.Duration(config, $"{health}.probe-timeout"), ConfigValues.Int(config, $"{health}.probe-port"),
            ConfigValues.Duration(config, $"{health}.hold-down"), ConfigValues.Duration(config, $"{health}.status-interval"),
            ConfigValues.Duration(config, $"{health}.standby-repair-after"),
            ConfigValues.Duration(config, $"{health}.standby-repair-check"));
        if (settings.FailureThreshold < 1)
            throw ConfigValues.Error(config, $"{health}.failure-threshold", $"{settings.FailureThreshold} must be at least 1");
        if (settings.RecoveryThreshold < 1)
            throw ConfigValues.Error(config, $"{health}.recovery-threshold", $"{settings.RecoveryThreshold} must be at least 1");
        if (settings.ProbeInterval <= TimeSpan.Zero)
            throw ConfigValues.Error(config, $"{health}.probe-interval", $"{settings.ProbeInterval} must be positive");
        static string Ms(TimeSpan t) => $"{t.TotalMilliseconds:0.###}ms";
        if (settings.StandbyRepairAfter <= TimeSpan.Zero)
            throw ConfigValues.Error(config, $"{health}.standby-repair-after", $"{Ms(settings.StandbyRepairAfter)} must be positive");
        // The check after an acknowledgement comes later than the wait for one, or a slow manager would never be waited for.
        if (settings.StandbyRepairCheck <= settings.StandbyRepairAfter)
            throw ConfigValues.Error(config, $"{health}.standby-repair-check",
                $"{Ms(settings.StandbyRepairCheck)} must be longer than standby-repair-after ({Ms(settings.StandbyRepairAfter)})");
        return settings;
    }

    /// <summary>The longest a failure can go unnoticed: threshold probes, the first of which may be one interval away.</summary>
    public TimeSpan DetectionBound => ProbeInterval * FailureThreshold;
}
