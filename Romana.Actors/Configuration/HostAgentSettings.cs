using Akka.Configuration;

namespace Romana.Actors.Configuration;

/// <summary>Tunables of the host agent (romana.host-agent).</summary>
public sealed record HostAgentSettings(int RouteTable, int RulePriority, TimeSpan ResyncInterval, TimeSpan RefreshInterval)
{
    public static HostAgentSettings Default => From(RomanaConfig.Reference);

    public static HostAgentSettings From(Config config)
    {
        var agent = config.GetConfig("romana.host-agent");
        var settings = new HostAgentSettings(agent.GetInt("route-table"), agent.GetInt("rule-priority"),
            agent.GetTimeSpan("resync-interval"), agent.GetTimeSpan("refresh-interval"));
        // 0 is unspec; 253-255 are the kernel's default, main and local tables.
        if (settings.RouteTable is < 1 or > 252 and < 256)
            throw new ConfigurationError($"romana.host-agent.route-table: {settings.RouteTable} is reserved; use 1-252 or above 255");
        if (settings.RulePriority is < 1 or >= 32766)
            throw new ConfigurationError(
                $"romana.host-agent.rule-priority: {settings.RulePriority} must lie between 1 and 32765 (before the main table's rule)");
        if (settings.ResyncInterval <= TimeSpan.Zero)
            throw new ConfigurationError($"romana.host-agent.resync-interval: {settings.ResyncInterval} must be positive");
        if (settings.RefreshInterval <= TimeSpan.Zero)
            throw new ConfigurationError($"romana.host-agent.refresh-interval: {settings.RefreshInterval} must be positive");
        return settings;
    }
}
