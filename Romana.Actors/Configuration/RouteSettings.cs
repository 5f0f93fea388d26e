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
        var routes = config.GetConfig("romana.routes");
        var tagKey = routes.GetString("tables.tag-key", "");
        var settings = new RouteSettings(
            new RouteTableSelector([.. routes.GetStringList("tables.ids") ?? []], tagKey.Length == 0 ? null : tagKey,
                routes.GetString("tables.tag-value", "") is { Length: > 0 } value ? value : null),
            routes.GetInt("route-limit"),
            routes.GetTimeSpan("reconcile-interval"),
            routes.GetTimeSpan("retry.min-backoff"),
            routes.GetTimeSpan("retry.max-backoff"),
            routes.GetInt("retry.max-attempts"),
            routes.GetInt("snapshot-every"),
            config.GetTimeSpan("romana.health.hold-down"));
        if (settings.RouteLimit < 1) throw new ConfigurationError($"romana.routes.route-limit: {settings.RouteLimit} must be at least 1");
        if (settings.ReconcileInterval <= TimeSpan.Zero)
            throw new ConfigurationError($"romana.routes.reconcile-interval: {settings.ReconcileInterval} must be positive");
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
