using Akka.Configuration;
using Romana.Actors.Configuration;

namespace Romana.Host.Audit;

/// <summary>romana.audit: how late an event may reach the journal, the projections' runner, and the checkpoints.</summary>
public sealed record AuditSettings(TimeSpan LateWrites, ProjectionSettings Projections, CheckpointSettings Checkpoints)
{
    public static AuditSettings From(Config config)
    {
        // Settings a caller gave alone (a test's, a simulation's), whole or in part, fall back to the reference; loaded ones
        // have it already.
        if (!config.HasPath("romana.audit.projections.yield-to-writes.max-behind-events"))
            config = config.WithFallback(RomanaConfig.Reference);
        var everyEvents = ConfigValues.Int(config, "romana.audit.checkpoints.every-events");
        if (everyEvents < 1)
            throw ConfigValues.Error(config, "romana.audit.checkpoints.every-events", $"{everyEvents} is not a positive number of events");
        var batch = ConfigValues.Int(config, "romana.audit.projections.batch-events");
        if (batch < 1)
            throw ConfigValues.Error(config, "romana.audit.projections.batch-events", $"{batch} is not a positive number of events");
        var minBackoff = ConfigValues.Duration(config, "romana.audit.projections.min-backoff");
        var maxBackoff = ConfigValues.Duration(config, "romana.audit.projections.max-backoff");
        if (maxBackoff < minBackoff)
            throw ConfigValues.Error(config, "romana.audit.projections.max-backoff", $"{maxBackoff} is less than min-backoff {minBackoff}");
        const string yieldPath = "romana.audit.projections.yield-to-writes";
        var maxBehind = ConfigValues.Int(config, $"{yieldPath}.max-behind-events");
        if (maxBehind < 0) throw ConfigValues.Error(config, $"{yieldPath}.max-behind-events", $"{maxBehind} is negative");
        var busyRate = ConfigValues.Int(config, $"{yieldPath}.busy-events-per-second");
        if (busyRate < 1)
            throw ConfigValues.Error(config, $"{yieldPath}.busy-events-per-second", $"{busyRate} is not a positive number of events");
        var check = ConfigValues.Duration(config, $"{yieldPath}.check-interval");
        if (check <= TimeSpan.Zero) throw ConfigValues.Error(config, $"{yieldPath}.check-interval", $"{check} is not a positive duration");
        return new AuditSettings(ConfigValues.Duration(config, "romana.audit.late-writes"),
            new ProjectionSettings(config.GetBoolean("romana.audit.projections.enabled"), batch,
                ConfigValues.Duration(config, "romana.audit.projections.batch-time"), minBackoff, maxBackoff)
            {
                Yield = new YieldSettings(maxBehind, busyRate, check),
            },
            new CheckpointSettings(everyEvents, ConfigValues.Duration(config, "romana.audit.checkpoints.every")));
    }
}

/// <param name="Enabled">Whether daemons and simulations run the projections at all (romana.audit.projections.enabled).</param>
/// <param name="BatchEvents">A batch is this many events, or what arrived within <paramref name="BatchTime"/>.</param>
public sealed record ProjectionSettings(bool Enabled, int BatchEvents, TimeSpan BatchTime, TimeSpan MinBackoff, TimeSpan MaxBackoff)
{
    /// <summary>How the runner gives way to bursts of writes (romana.audit.projections.yield-to-writes); off unless set.</summary>
    public YieldSettings Yield { get; init; } = YieldSettings.Off;
}

/// <param name="EveryEvents">A checkpoint after this many events applied since the last one.</param>
/// <param name="Every">A checkpoint when this much time passed since the last one and some event is not in one yet.</param>
public sealed record CheckpointSettings(int EveryEvents, TimeSpan Every);
