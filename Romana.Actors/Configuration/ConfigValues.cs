using System.Globalization;
using Akka.Configuration;

namespace Romana.Actors.Configuration;

/// <summary>
/// Settings read from a configuration by their full path, so that a value that cannot be used is one line naming the
/// file it came from (when it came from one: <see cref="RomanaConfig.Load"/> records it), the setting and the value:
/// <c>hocon/romana.conf: romana.ipam.snapshot-every: 'lots' is not a whole number</c>.
/// </summary>
public static class ConfigValues
{
    /// <summary>Where <see cref="RomanaConfig.Load"/> records the file a configuration was read from.</summary>
    public const string FileSetting = "romana.configuration-file";

    /// <summary>The file the configuration was read from, or null for one built in code.</summary>
    public static string? File(Config config) =>
        config.HasPath(FileSetting) && config.GetString(FileSetting) is { Length: > 0 } file ? file : null;

    /// <summary>The refusal of a setting, naming the file when there is one.</summary>
    public static ConfigurationError Error(Config config, string setting, string problem) =>
        new(InFile(config, $"{setting}: {problem}"));

    /// <summary>A message about the configuration, prefixed with its file when there is one.</summary>
    public static string InFile(Config config, string message) => File(config) is { } file ? $"{file}: {message}" : message;

    public static string Text(Config config, string setting) => config.GetString(setting) ?? "";

    public static int Int(Config config, string setting)
    {
        var text = Text(config, setting);
        return int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number)
            ? number
            : throw Error(config, setting, $"{Quoting.Quote(text)} is not a whole number");
    }

    public static double Double(Config config, string setting)
    {
        var text = Text(config, setting);
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number)
            ? number
            : throw Error(config, setting, $"{Quoting.Quote(text)} is not a number");
    }

    public static TimeSpan Duration(Config config, string setting)
    {
        try
        {
            return config.GetTimeSpan(setting);
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException or ConfigurationException)
        {
            throw Error(config, setting, $"{Quoting.Quote(Text(config, setting))} is not a duration such as 500ms, 30s or 2m");
        }
    }

    /// <summary>
    /// Runs a reader of some settings; a <see cref="ConfigurationError"/> it throws without naming the file gets the file
    /// (for readers that hold only a section of the configuration).
    /// </summary>
    public static T Reading<T>(Config config, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (ConfigurationError e) when (File(config) is { } file && !e.Message.StartsWith($"{file}: ", StringComparison.Ordinal))
        {
            throw new ConfigurationError($"{file}: {e.Message}");
        }
    }
}
