using System.Collections.Immutable;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Akka.Configuration;
using Akka.Configuration.Hocon;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;

namespace Romana.Host.Ec2;

/// <summary>A route table that the lab starts with (romana.ec2-lab.tables[i]).</summary>
public sealed record Ec2LabTableSettings(string Id, ImmutableArray<string> Subnets, ImmutableArray<KeyValuePair<string, string>> Tags,
    int RouteLimit, ImmutableArray<(string Destination, string Target)> Routes);

/// <summary>What <c>romana ec2 serve</c> serves (romana.ec2-lab): where, one VPC's route tables, and EC2's faults.</summary>
public sealed record Ec2LabSettings(IPEndPoint Listen, string VpcId, string VpcCidr, ImmutableArray<Ec2LabTableSettings> Tables,
    Ec2Throttle? Throttle, TimeSpan Latency, double ErrorRate, int ErrorSeed)
{
    private const string Root = "romana.ec2-lab";

    public static Ec2LabSettings Default => From(RomanaConfig.Reference);

    /// <summary>Reads romana.ec2-lab; a missing or malformed field is a <see cref="ConfigurationError"/> naming it and its value.</summary>
    public static Ec2LabSettings From(Config config) => ConfigValues.Reading(config, () => Read(config));

    private static Ec2LabSettings Read(Config config)
    {
        var lab = config.GetConfig(Root) ?? throw new ConfigurationError($"{Root}: missing");
        var vpcCidr = Cidr(Text(lab, "vpc.cidr", $"{Root}.vpc.cidr"), $"{Root}.vpc.cidr");
        var routeLimit = Int(lab, "route-limit", $"{Root}.route-limit", min: 0);
        var tables = new List<Ec2LabTableSettings>();
        var values = lab.HasPath("tables") ? lab.GetValue("tables") : null;
        if (values is not null && !values.IsArray())
            throw new ConfigurationError($"{Root}.tables: expected a list [ {{ id = ... }}, ... ]");
        var items = values?.GetArray() ?? [];
        for (var i = 0; i < items.Count; i++)
        {
            var path = $"{Root}.tables[{i}]";
            var table = Section(items[i], path);
            var id = Text(table, "id", $"{path}.id");
            if (tables.Any(t => t.Id == id)) throw new ConfigurationError($"{path}.id: {Quoting.Quote(id)} names a table twice");
            tables.Add(new Ec2LabTableSettings(id, Strings(table, "subnets", $"{path}.subnets"), Tags(table, path),
                table.HasPath("route-limit") ? Int(table, "route-limit", $"{path}.route-limit", min: 0) : routeLimit, Routes(table, path)));
        }
        var throttled = Boolean(lab, "throttle.enabled", $"{Root}.throttle.enabled");
        var throttle = new Ec2Throttle(Int(lab, "throttle.burst", $"{Root}.throttle.burst", min: 1),
            Number(lab, "throttle.refill-per-second", $"{Root}.throttle.refill-per-second", 0, double.MaxValue));
        return new Ec2LabSettings(ParseListen(Text(lab, "listen", $"{Root}.listen"), $"{Root}.listen"),
            Text(lab, "vpc.id", $"{Root}.vpc.id"), vpcCidr, [.. tables], throttled ? throttle : null,
            Duration(lab, "latency", $"{Root}.latency"), Number(lab, "error-rate", $"{Root}.error-rate", 0, 1),
            Int(lab, "error-seed", $"{Root}.error-seed", min: int.MinValue));
    }

    /// <summary>ADDR:PORT, IPv4 or bracketed IPv6 (port 0: any free port); <paramref name="field"/> names it in the error.</summary>
    public static IPEndPoint ParseListen(string text, string field)
    {
        var portAt = text.LastIndexOf(':');
        var address = portAt > 0 ? text[..portAt] : "";
        var bracketed = address.StartsWith('[') && address.EndsWith(']');
        if (portAt > 0 && (bracketed || !address.Contains(':'))
            && IPAddress.TryParse(bracketed ? address[1..^1] : address, out var ip)
            && (ip.AddressFamily == AddressFamily.InterNetwork || bracketed)
            && int.TryParse(text[(portAt + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            && port <= IPEndPoint.MaxPort)
            return new IPEndPoint(ip, port);
        throw new ConfigurationError($"{field}: {Quoting.Quote(text)} is not ADDR:PORT (for example 127.0.0.1:9607, or [::1]:9607)");
    }

    /// <summary>The lab these settings describe, its time from <paramref name="clock"/>.</summary>
    public Ec2Lab CreateLab(IClock clock, int callLogCapacity = int.MaxValue)
    {
        var lab = new Ec2Lab(clock, ErrorSeed, callLogCapacity) { Throttle = Throttle, Latency = Latency, ErrorRate = ErrorRate };
        foreach (var table in Tables)
        {
            lab.AddRouteTable(table.Id, VpcId, table.RouteLimit, table.Subnets, table.Tags, VpcCidr);
            foreach (var (destination, target) in table.Routes) lab.PutRoute(table.Id, destination, target);
        }
        return lab;
    }

    private static ImmutableArray<KeyValuePair<string, string>> Tags(Config table, string path)
    {
        var tags = Strings(table, "tags", $"{path}.tags");
        return [.. tags.Select((tag, t) => tag.IndexOf('=') is > 0 and var at
            ? KeyValuePair.Create(tag[..at], tag[(at + 1)..])
            : throw new ConfigurationError($"{path}.tags[{t}]: {Quoting.Quote(tag)} is not KEY=VALUE"))];
    }

    private static ImmutableArray<(string Destination, string Target)> Routes(Config table, string path)
    {
        if (!table.HasPath("routes")) return [];
        var value = table.GetValue("routes");
        if (!value.IsArray())
            throw new ConfigurationError($"{path}.routes: expected a list [ {{ destination = ..., target = ... }}, ... ]");
        var items = value.GetArray();
        var routes = new List<(string, string)>();
        for (var r = 0; r < items.Count; r++)
        {
            var route = Section(items[r], $"{path}.routes[{r}]");
            var destination = Cidr(Text(route, "destination", $"{path}.routes[{r}].destination"), $"{path}.routes[{r}].destination");
            routes.Add((destination, Text(route, "target", $"{path}.routes[{r}].target")));
        }
        return [.. routes];
    }

    private static Config Section(HoconValue value, string path) =>
        value.IsObject() ? new Config(new HoconRoot(value)) : throw new ConfigurationError($"{path}: expected an object {{ ... }}");

    private static string Text(Config config, string key, string path)
    {
        var value = config.HasPath(key) ? config.GetValue(key) : null;
        if (value is null || !value.IsString()) throw new ConfigurationError($"{path}: missing");
        return value.GetString() is { Length: > 0 } text ? text : throw new ConfigurationError($"{path}: must not be empty");
    }

    private static ImmutableArray<string> Strings(Config config, string key, string path)
    {
        if (!config.HasPath(key)) return [];
        var value = config.GetValue(key);
        if (!value.IsArray() || value.GetArray().Any(v => !v.IsString()))
            throw new ConfigurationError($"{path}: expected a list of strings");
        return [.. value.GetArray().Select(v => v.GetString())];
    }

    private static int Int(Config config, string key, string path, int min)
    {
        var text = Text(config, key, path);
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
            throw new ConfigurationError($"{path}: {Quoting.Quote(text)} is not a whole number");
        return number >= min ? number : throw new ConfigurationError($"{path}: {number} must be at least {min}");
    }

    private static double Number(Config config, string key, string path, double min, double max)
    {
        var text = Text(config, key, path);
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
            throw new ConfigurationError($"{path}: {Quoting.Quote(text)} is not a number");
        return number >= min && number <= max ? number : throw new ConfigurationError($"{path}: {text} must lie between {min} and {max}");
    }

    private static bool Boolean(Config config, string key, string path)
    {
        var text = Text(config, key, path);
        return text switch
        {
            "on" or "true" or "yes" => true,
            "off" or "false" or "no" => false,
            _ => throw new ConfigurationError($"{path}: {Quoting.Quote(text)} is neither on nor off"),
        };
    }

    private static TimeSpan Duration(Config config, string key, string path)
    {
        var text = Text(config, key, path);
        TimeSpan duration;
        try
        {
            duration = config.GetTimeSpan(key);
        }
        catch (Exception e) when (e is FormatException or OverflowException or ConfigurationException)
        {
            throw new ConfigurationError($"{path}: {Quoting.Quote(text)} is not a duration such as 20ms or 1s");
        }
        return duration >= TimeSpan.Zero ? duration : throw new ConfigurationError($"{path}: {text} must not be negative");
    }

    private static string Cidr(string text, string path) =>
        Ipv4Cidr.TryParse(text, out var cidr)
            ? cidr.ToString()
            : throw new ConfigurationError($"{path}: {Quoting.Quote(text)} is not an IPv4 CIDR such as 10.0.0.0/16");
}
