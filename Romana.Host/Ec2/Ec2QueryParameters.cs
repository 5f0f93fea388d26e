namespace Romana.Host.Ec2;

/// <summary>Reads EC2 Query parameters: flat names, lists as Name.N, filters as Filter.N.Name / Filter.N.Value.M.</summary>
internal sealed class Ec2QueryParameters(IReadOnlyDictionary<string, string> values)
{
    public string? Get(string name) => values.TryGetValue(name, out var value) ? value : null;

    public string Require(string name) =>
        Get(name) is { Length: > 0 } value
            ? value
            : throw Ec2Lab.Fault("MissingParameter", $"The request must contain the parameter {name}");

    public int? Int(string name)
    {
        var raw = Get(name);
        if (raw is null) return null;
        return int.TryParse(raw, out var value) ? value : throw Ec2Lab.InvalidValue(raw, name);
    }

    public List<string> List(string prefix) => [.. Indexed(prefix).Select(key => values[key])];

    public List<(string Name, List<string> Values)> Filters() =>
        [.. Indexed("Filter", ".Name").Select(key => (values[key], List(key[..^".Name".Length] + ".Value")))];

    // The names "{prefix}.N{suffix}" present, in numeric order of N. The names themselves are kept, not rebuilt from N:
    // "RouteTableId.02" is member 2, and a rebuilt "RouteTableId.2" is not there (a fuzz finding).
    private IEnumerable<string> Indexed(string prefix, string suffix = "") =>
        values.Keys
            .Where(k => k.Length > prefix.Length + 1 + suffix.Length
                && k.StartsWith(prefix + ".", StringComparison.Ordinal)
                && k.EndsWith(suffix, StringComparison.Ordinal))
            .Select(k => (Key: k, Number: int.TryParse(k[(prefix.Length + 1)..(k.Length - suffix.Length)], out var i) ? i : -1))
            .Where(m => m.Number >= 0)
            .OrderBy(m => m.Number)
            .ThenBy(m => m.Key, StringComparer.Ordinal)
            .Select(m => m.Key);
}

/// <summary>What a route points at, told by the target id's prefix, and the Query parameter that names it.</summary>
public static class Ec2Targets
{
    /// <summary>The CreateRoute/ReplaceRoute parameters that name a target; exactly one is given.</summary>
    public static readonly IReadOnlyList<string> Parameters =
        ["NetworkInterfaceId", "InstanceId", "VpcPeeringConnectionId", "NatGatewayId", "TransitGatewayId", "GatewayId"];

    /// <summary>
    /// eni- a network interface, i- an instance, pcx- a peering, nat- a NAT gateway, tgw- a transit gateway; else a gateway.
    /// </summary>
    public static string ParameterOf(string target) => target switch
    {
        _ when target.StartsWith("eni-", StringComparison.Ordinal) => "NetworkInterfaceId",
        _ when target.StartsWith("i-", StringComparison.Ordinal) => "InstanceId",
        _ when target.StartsWith("pcx-", StringComparison.Ordinal) => "VpcPeeringConnectionId",
        _ when target.StartsWith("nat-", StringComparison.Ordinal) => "NatGatewayId",
        _ when target.StartsWith("tgw-", StringComparison.Ordinal) => "TransitGatewayId",
        _ => "GatewayId",
    };

    /// <summary>
    /// The one target given. EC2's ids are letters, digits and dashes (eni-0a1b2c3d); the lab takes any printable ASCII
    /// without spaces, up to 255 characters, and refuses the rest as EC2 refuses a malformed id.
    /// </summary>
    internal static string Require(Ec2QueryParameters parameters)
    {
        var given = Parameters.Select(name => (Name: name, Value: parameters.Get(name))).Where(p => p.Value is not null).ToList();
        return given.Count switch
        {
            1 when given[0].Value is { Length: > 0 and <= 255 } id && id.All(c => c is > ' ' and <= '~') => given[0].Value!,
            1 => throw Ec2Lab.InvalidValue(given[0].Value!, given[0].Name),
            0 => throw Ec2Lab.Fault("MissingParameter", "The request must contain one route target (gatewayId, networkInterfaceId, ...)"),
            _ => throw Ec2Lab.Fault("InvalidParameterCombination", "The request must contain exactly one route target, not several"),
        };
    }
}

