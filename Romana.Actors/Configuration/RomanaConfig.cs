using Akka.Configuration;
using Akka.Configuration.Hocon;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;

namespace Romana.Actors.Configuration;

/// <summary>Loads Romana's HOCON: a user file (hocon/romana.conf) over the embedded reference.conf defaults.</summary>
public static class RomanaConfig
{
    private static readonly Lazy<Config> ReferenceConfig = new(() =>
    {
        using var stream = typeof(RomanaConfig).Assembly.GetManifestResourceStream("Romana.reference.conf")
            ?? throw new InvalidOperationException("the embedded reference.conf is missing from Romana.Actors");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    });

    public static Config Reference => ReferenceConfig.Value;

    /// <summary>A configuration file is read whole; Romana's own is 3 KB.</summary>
    public const int LargestFileBytes = 16 * 1024 * 1024;

    /// <summary>
    /// Parses a HOCON file over the defaults, and records the file (<see cref="ConfigValues.FileSetting"/>) so that an
    /// error in any of its settings names it; a missing, oversized or malformed file is a <see cref="ConfigurationError"/>
    /// naming it.
    /// </summary>
    public static Config Load(string? path)
    {
        if (path is null) return Reference;
        if (!File.Exists(path)) throw new ConfigurationError($"{path}: no such configuration file");
        var text = WithEnvironment(ReadBounded(path), path, Environment.GetEnvironmentVariable);
        try
        {
            return ConfigurationFactory.ParseString(text)
                .WithFallback(ConfigurationFactory.ParseString($"{ConfigValues.FileSetting} = {Quote(path)}"))
                .WithFallback(Reference);
        }
        catch (Exception e) when (e is ConfigurationException or FormatException)
        {
            throw new ConfigurationError($"{path}: not valid HOCON: {Quoting.Bounded(e.Message)}");
        }
    }

    /// <summary>The text, refused past <see cref="LargestFileBytes"/> (a FIFO or a device included: reading stops there).</summary>
    private static string ReadBounded(string path)
    {
        var tooLarge = new ConfigurationError($"{path}: more than the {LargestFileBytes / (1024 * 1024)} MiB a configuration file may be");
        if (new FileInfo(path).Length > LargestFileBytes) throw tooLarge;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var text = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            if (text.Length + read > LargestFileBytes) throw tooLarge;
            text.Write(buffer, 0, read);
        }
        text.Position = 0;
        using var reader = new StreamReader(text, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    private static string Quote(string text) => "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>A field whose whole value is one substitution of an environment variable: <c>name = ${?ROMANA_NODE_NAME}</c>.</summary>
    private static readonly System.Text.RegularExpressions.Regex EnvironmentField = new(
        @"^(?<indent>[ \t]*)(?<key>[A-Za-z0-9_.\-""]+)[ \t]*[=:][ \t]*\$\{(?<optional>\?)?(?<name>[A-Z_][A-Z0-9_]*)\}[ \t]*$");

    private static readonly System.Text.RegularExpressions.Regex EnvironmentSubstitution =
        new(@"\$\{(?<optional>\?)?(?<name>[A-Z_][A-Z0-9_]*)\}");

    /// <summary>
    /// Puts environment variables in: <c>${NAME}</c> and <c>${?NAME}</c> whose NAME is in capitals, digits and underscores (no
    /// setting of Romana or Akka is named so), outside comments. Akka's HOCON parser does not read the environment, and an
    /// optional substitution it cannot resolve leaves the whole file unread. A variable that is set becomes its value as a
    /// quoted string; an unset <c>${?NAME}</c> that is a field's whole value drops the field (HOCON's meaning: the default
    /// stays); any other unset one is an error naming the variable.
    /// </summary>
    public static string WithEnvironment(string text, string file, Func<string, string?> environment)
    {
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var cut = CommentStart(lines[i]);
            var (code, comment) = (lines[i][..cut], lines[i][cut..]);
            var field = EnvironmentField.Match(code.TrimEnd('\r'));
            if (field.Success && field.Groups["optional"].Success && environment(field.Groups["name"].Value) is null)
            {
                lines[i] = $"{field.Groups["indent"].Value}# {field.Groups["key"].Value}: ${field.Groups["name"].Value} is not set";
                continue;
            }
            var line = code;
            lines[i] = EnvironmentSubstitution.Replace(code, m => InQuotes(line, m.Index) ? m.Value
                : environment(m.Groups["name"].Value) is { } value ? Quote(value)
                : throw new ConfigurationError(
                    $"{file}: ${{{(m.Groups["optional"].Success ? "?" : "")}{m.Groups["name"].Value}}}: environment variable not set"))
                + comment;
        }
        return string.Join('\n', lines);
    }

    /// <summary>Where a line's comment (# or //) starts outside a quoted string; the line's length when it has none.</summary>
    private static int CommentStart(string line)
    {
        for (var i = 0; i < line.Length; i++)
            if (!InQuotes(line, i) && (line[i] == '#' || (line[i] == '/' && i + 1 < line.Length && line[i + 1] == '/'))) return i;
        return line.Length;
    }

    /// <summary>Whether position <paramref name="at"/> of a line lies inside a quoted string (a HOCON string is one line).</summary>
    private static bool InQuotes(string line, int at)
    {
        var quoted = false;
        for (var i = 0; i < at; i++)
            if (line[i] == '"' && (i == 0 || line[i - 1] != '\\')) quoted = !quoted;
        return quoted;
    }

    /// <summary>
    /// Reads romana.topology; a missing or mistyped field is reported with its path, and the topology is then carved. Every
    /// refusal names the configuration file it came from.
    /// </summary>
    public static ClusterTopology ReadTopology(Config config)
    {
        try
        {
            return ReadTopologyOf(config);
        }
        catch (TopologyException e) when (ConfigValues.File(config) is { } file)
        {
            throw new TopologyException(e.Error with { Message = $"{file}: {e.Error.Message}" });
        }
    }

    private static ClusterTopology ReadTopologyOf(Config config)
    {
        var topology = config.GetConfig("romana.topology")
            ?? throw new TopologyException(IpamError.Invalid("romana.topology: missing"));
        var zones = new List<ZoneSpec>();
        var zoneValues = topology.HasPath("zones") ? topology.GetValue("zones").GetArray() : [];
        for (var z = 0; z < zoneValues.Count; z++)
        {
            var zone = Section(zoneValues[z], $"romana.topology.zones[{z}]");
            var subnets = new List<SubnetSpec>();
            var subnetValues = zone.HasPath("subnets") ? zone.GetValue("subnets").GetArray() : [];
            for (var s = 0; s < subnetValues.Count; s++)
            {
                var subnet = Section(subnetValues[s], $"romana.topology.zones[{z}].subnets[{s}]");
                subnets.Add(new SubnetSpec(Text(subnet, "id"), Optional(subnet, "pod-prefix"), Optional(subnet, "vpc-cidr"),
                    Optional(subnet, "route-table")));
            }
            zones.Add(new ZoneSpec(Text(zone, "name"), subnets, Optional(zone, "pod-prefix")));
        }
        var blockText = Text(topology, "block-prefix-length");
        if (!int.TryParse(blockText, out var block))
            throw new TopologyException(IpamError.Invalid($"topology block-prefix-length: {Quoting.Quote(blockText)} is not a number"));
        return TopologyCarver.Carve(new TopologySpec(Text(topology, "pod-cidr"), block, zones));
    }

    private static Config Section(HoconValue value, string path)
    {
        if (!value.IsObject()) throw new TopologyException(IpamError.Invalid($"{path}: expected an object {{ ... }}"));
        return new Config(new HoconRoot(value));
    }

    private static string Text(Config config, string key) => config.HasPath(key)
        ? config.GetString(key)
        : throw new TopologyException(IpamError.Invalid($"topology field '{key}' is missing"));

    private static string? Optional(Config config, string key) => config.HasPath(key) ? config.GetString(key) : null;
}

/// <summary>A configuration file that cannot be used; the message names the file and what is wrong.</summary>
public sealed class ConfigurationError(string message) : Exception(message);
