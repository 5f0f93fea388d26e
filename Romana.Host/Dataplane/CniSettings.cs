using Akka.Configuration;
using Romana.Actors.Configuration;
using Romana.Contracts.Cni;

namespace Romana.Host.Dataplane;

/// <summary>
/// The daemon's side of the CNI plugin's socket (romana.cni): where it is, how many connections it holds at once, how long
/// a request may take to arrive, how large it may be, and how long a stop waits for the requests in flight.
/// </summary>
/// <param name="SocketSetting">What named the socket path, for errors: romana.cni.socket, or --socket.</param>
/// <param name="ReservedDescriptors">Descriptors never spent on connections: the journal, the runtime, the host agent need them.</param>
public sealed record CniSettings(string Socket, string SocketSetting, int MaxConnections, int ReservedDescriptors,
    TimeSpan RequestTimeout, int MaxRequestBytes, TimeSpan StopTimeout)
{
    public const string Section = "romana.cni";

    public static CniSettings Default => From(RomanaConfig.Reference);

    /// <param name="socketOverride">--socket, which replaces romana.cni.socket.</param>
    public static CniSettings From(Config config, string? socketOverride = null)
    {
        // (Akka refuses a configuration as its own fallback: the reference is read as it is.)
        var full = ReferenceEquals(config, RomanaConfig.Reference) ? config : config.WithFallback(RomanaConfig.Reference);
        var cni = full.GetConfig(Section);
        var settings = new CniSettings(
            socketOverride ?? Read(cni, "socket", c => c.GetString("socket")),
            socketOverride is null ? $"{Section}.socket" : "--socket",
            Read(cni, "max-connections", c => c.GetInt("max-connections")),
            Read(cni, "reserved-descriptors", c => c.GetInt("reserved-descriptors")),
            Read(cni, "request-timeout", c => c.GetTimeSpan("request-timeout")),
            (int)Math.Min(int.MaxValue - 1, Read(cni, "max-request-size", c => c.GetByteSize("max-request-size") ?? -1)),
            Read(cni, "stop-timeout", c => c.GetTimeSpan("stop-timeout")));
        if (string.IsNullOrWhiteSpace(settings.Socket))
            throw new ConfigurationError($"{settings.SocketSetting}: empty; name a socket path");
        if (settings.MaxConnections < 1)
            throw new ConfigurationError($"{Section}.max-connections: {settings.MaxConnections} must be at least 1");
        if (settings.ReservedDescriptors < 0)
            throw new ConfigurationError($"{Section}.reserved-descriptors: {settings.ReservedDescriptors} must not be negative");
        if (settings.RequestTimeout <= TimeSpan.Zero)
            throw new ConfigurationError($"{Section}.request-timeout: {settings.RequestTimeout} must be positive");
        if (settings.MaxRequestBytes < 1024)
            throw new ConfigurationError($"{Section}.max-request-size: {settings.MaxRequestBytes} bytes is less than 1KiB");
        if (settings.StopTimeout < TimeSpan.Zero)
            throw new ConfigurationError($"{Section}.stop-timeout: {settings.StopTimeout} must not be negative");
        return settings;
    }

    private static T Read<T>(Config section, string key, Func<Config, T> read)
    {
        try
        {
            return read(section);
        }
        catch (Exception e) when (e is not ConfigurationError)
        {
            throw new ConfigurationError($"{Section}.{key}: {Printable.Quote(section.GetString(key))} is not a valid value ({e.Message})");
        }
    }
}
