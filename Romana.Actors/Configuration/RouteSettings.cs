using System.Collections.Immutable;
using Akka.Configuration;
using Romana.Actors.Routing;

namespace Romana.Actors.Configuration;

/// <summary>Tunables of the VPC route manager (romana.routes).</summary>
public sealed record RouteSettings(
    RouteTableSelector Tables,
    int RouteLimit,
    TimeSpan ReconcileInterval,
    TimeSpan RetryMinBackoff,
    TimeSpan RetryMaxBackoff,
    int RetryMaxAttempts,
    int SnapshotEvery,
    TimeSpan HoldDown)
{
    public static RouteSettings Default => From(RomanaConfig.Reference);

    public static RouteSettings From(Config config)
    {
        const string routes = "romana.routes";
        var section = config.GetConfig(routes);
        var tagKey = section.GetString("tables.tag-key", "");
        var settings = new RouteSettings(
            new RouteTableSelector([.. section.GetStringList("tables.ids") ?? []], tagKey.Length == 0 ? null : tagKey,
                section.GetString("tables.tag-value", "") is { Length: > 0 } value ? value : null),
            ConfigValues.Int(config, $"{routes}.route-limit"),
            ConfigValues.Duration(config, $"{routes}.reconcile-interval"),
            ConfigValues.Duration(config, $"{routes}.retry.min-backoff"),
            ConfigValues.Duration(config, $"{routes}.retry.max-backoff"),
            ConfigValues.Int(config, $"{routes}.retry.max-attempts"),
            ConfigValues.Int(config, $"{routes}.snapshot-every"),
            ConfigValues.Duration(config, "romana.health.hold-down"));
        if (settings.RouteLimit < 1)
            throw ConfigValues.Error(config, $"{routes}.route-limit", $"{settings.RouteLimit} must be at least 1");
        if (settings.ReconcileInterval <= TimeSpan.Zero)
            throw ConfigValues.Error(config, $"{routes}.reconcile-interval", $"{settings.ReconcileInterval} must be positive");
        return settings;
    }

    /// <summary>Exponential backoff with jitter (±50 %), capped: attempt 1 waits about the minimum.</summary>
    public TimeSpan Backoff(int attempt, Random random)
    {
        var exponential = RetryMinBackoff.TotalMilliseconds * Math.Pow(2, Math.Max(0, attempt - 1));
        var capped = Math.Min(RetryMaxBackoff.TotalMilliseconds, exponential);
        return TimeSpan.FromMilliseconds(capped * (0.5 + random.NextDouble()));
    }
}
