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
    TimeSpan HoldDown,
    TokenBucketSettings Ec2Rate,
    CallBudget Calls,
    TimeSpan ReplanDelay)
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
            ConfigValues.Duration(config, "romana.health.hold-down"),
            new TokenBucketSettings(ConfigValues.Int(config, $"{routes}.ec2.burst"),
                ConfigValues.Double(config, $"{routes}.ec2.per-second")),
            new CallBudget(ConfigValues.Int(config, $"{routes}.ec2.reserve-for-repairs"),
                ConfigValues.Int(config, $"{routes}.ec2.max-calls-in-flight")),
            ConfigValues.Duration(config, $"{routes}.replan-delay"));
        if (settings.RouteLimit < 1)
            throw ConfigValues.Error(config, $"{routes}.route-limit", $"{settings.RouteLimit} must be at least 1");
        if (settings.ReconcileInterval <= TimeSpan.Zero)
            throw ConfigValues.Error(config, $"{routes}.reconcile-interval", $"{settings.ReconcileInterval} must be positive");
        if (settings.Ec2Rate.Burst < 1)
            throw ConfigValues.Error(config, $"{routes}.ec2.burst", $"{settings.Ec2Rate.Burst} must be at least 1");
        if (settings.Ec2Rate.PerSecond <= 0)
            throw ConfigValues.Error(config, $"{routes}.ec2.per-second", $"{settings.Ec2Rate.PerSecond} must be positive");
        if (settings.Calls.ReserveForRepairs < 0 || settings.Calls.ReserveForRepairs >= settings.Ec2Rate.Burst)
            throw ConfigValues.Error(config, $"{routes}.ec2.reserve-for-repairs",
                $"{settings.Calls.ReserveForRepairs} must be at least 0 and less than the burst ({settings.Ec2Rate.Burst})");
        if (settings.Calls.MaxCallsInFlight < 1)
            throw ConfigValues.Error(config, $"{routes}.ec2.max-calls-in-flight", $"{settings.Calls.MaxCallsInFlight} must be at least 1");
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

/// <summary>A token bucket's size and refill rate (romana.routes.ec2: EC2's 50 and 5 per second by default).</summary>
public sealed record TokenBucketSettings(int Burst, double PerSecond);
