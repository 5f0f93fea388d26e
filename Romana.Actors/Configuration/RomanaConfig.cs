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
        var text = ReadBounded(path);
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
