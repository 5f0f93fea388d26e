using Akka.Configuration;

namespace Romana.Actors.Configuration;

/// <summary>Tunables of the host agent (romana.host-agent).</summary>
public sealed record HostAgentSettings(int RouteTable, int RulePriority, TimeSpan ResyncInterval)
{
    public static HostAgentSettings Default => From(RomanaConfig.Reference);

    public static HostAgentSettings From(Config config)
    {
        const string agent = "romana.host-agent";
        var settings = new HostAgentSettings(ConfigValues.Int(config, $"{agent}.route-table"),
            ConfigValues.Int(config, $"{agent}.rule-priority"), ConfigValues.Duration(config, $"{agent}.resync-interval"));
        // 0 is unspec; 253-255 are the kernel's default, main and local tables.
        if (settings.RouteTable is < 1 or > 252 and < 256)
            throw ConfigValues.Error(config, $"{agent}.route-table", $"{settings.RouteTable} is reserved; use 1-252 or above 255");
        if (settings.RulePriority is < 1 or >= 32766)
            throw ConfigValues.Error(config, $"{agent}.rule-priority",
                $"{settings.RulePriority} must lie between 1 and 32765 (before the main table's rule)");
        if (settings.ResyncInterval <= TimeSpan.Zero)
            throw ConfigValues.Error(config, $"{agent}.resync-interval", $"{settings.ResyncInterval} must be positive");
        return settings;
    }
}
