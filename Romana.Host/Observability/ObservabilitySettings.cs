using System.Net;
using Akka.Configuration;
using Romana.Actors.Configuration;

namespace Romana.Host.Observability;

/// <summary>romana.http: where the daemon serves /metrics, /healthz and /readyz (port 0: any free port, for tests).</summary>
public sealed record HttpSettings(IPAddress Host, int Port)
{
    public const string Section = "romana.http";

    public static HttpSettings From(Config config)
    {
        config = config.WithFallback(RomanaConfig.Reference);
        var text = ConfigValues.Text(config, $"{Section}.host");
        if (!IPAddress.TryParse(text, out var host))
            throw ConfigValues.Error(config, $"{Section}.host", $"\"{text}\" is not an IP address (0.0.0.0: every interface)");
        var port = ConfigValues.Int(config, $"{Section}.port");
        if (port is < 0 or > 65535) throw ConfigValues.Error(config, $"{Section}.port", $"{port} is not a TCP port (0 to 65535)");
        return new HttpSettings(host, port);
    }
}

public enum LogFormat { Text, Json }

/// <summary>romana.log: the format of the daemon's log lines, and whether each persisted event is a line of its own.</summary>
public sealed record LogSettings(LogFormat Format, bool Events)
{
    public const string Section = "romana.log";

    public static LogSettings From(Config config)
    {
        config = config.WithFallback(RomanaConfig.Reference);
        var format = ConfigValues.Text(config, $"{Section}.format") switch
        {
            "text" => LogFormat.Text,
            "json" => LogFormat.Json,
            var other => throw ConfigValues.Error(config, $"{Section}.format", $"\"{other}\" is neither text nor json"),
        };
        return new LogSettings(format, config.GetBoolean($"{Section}.events"));
    }

    /// <summary>The Akka settings of this format: the JSON logger in place of the default one, or nothing.</summary>
    public Config AkkaConfig() => Format == LogFormat.Json
        ? ConfigurationFactory.ParseString(
            $"akka.loggers = [\"{typeof(JsonLogger).FullName}, {typeof(JsonLogger).Assembly.GetName().Name}\"]")
        : Config.Empty;
}
