using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Romana.Cni.Plugin;

/// <summary>Builds ADD's result in the requested version's format, merged after a previous plugin's result when chained.</summary>
internal static class CniResult
{
    /// <summary>
    /// The result: prevResult's interfaces, ips, routes and dns kept, ours appended (our ips entry's interface index
    /// shifted past the earlier interfaces).
    /// </summary>
    public static JsonObject ForAdd(string version, JsonObject? prevResult, PodAttachment attachment, string netns, string podMac,
        IPAddress address)
    {
        var interfaces = CopyArray(prevResult, "interfaces");
        var ips = CopyArray(prevResult, "ips");
        var routes = CopyArray(prevResult, "routes");
        var podInterfaceIndex = interfaces.Count + 1;

        interfaces.Add((JsonNode)new JsonObject { ["name"] = attachment.HostVeth, ["mac"] = PodAttachment.HostMacText });
        interfaces.Add((JsonNode)new JsonObject { ["name"] = attachment.IfName, ["mac"] = podMac, ["sandbox"] = netns });
        var ip = new JsonObject();
        if (CniVersions.IpsCarryVersion(version)) ip["version"] = "4";
        ip["address"] = $"{address}/32";
        ip["gateway"] = PodAttachment.Gateway.ToString();
        ip["interface"] = podInterfaceIndex;
        ips.Add((JsonNode)ip);
        routes.Add((JsonNode)new JsonObject { ["dst"] = "0.0.0.0/0", ["gw"] = PodAttachment.Gateway.ToString() });

        return new JsonObject
        {
            ["cniVersion"] = version,
            ["interfaces"] = interfaces,
            ["ips"] = ips,
            ["routes"] = routes,
            ["dns"] = prevResult?["dns"] is JsonObject dns ? dns.DeepClone() : new JsonObject(),
        };
    }

    /// <summary>
    /// The address this plugin gave the attachment, found in a (possibly chained) prevResult: the ips entry pointing at
    /// the interface named CNI_IFNAME that follows our host veth in the interfaces list.
    /// </summary>
    public static IPAddress RomanaAddress(JsonObject prevResult, PodAttachment attachment)
    {
        var interfaces = prevResult["interfaces"] as JsonArray ?? [];
        var hostIndex = IndexOf(interfaces, attachment.HostVeth, 0);
        if (hostIndex < 0) throw Invalid($"prevResult.interfaces has no entry for the host veth {attachment.HostVeth}");
        var podIndex = IndexOf(interfaces, attachment.IfName, hostIndex + 1);
        if (podIndex < 0) throw Invalid($"prevResult.interfaces has no entry for {attachment.IfName} after {attachment.HostVeth}");
        foreach (var entry in prevResult["ips"] as JsonArray ?? [])
        {
            if (entry is not JsonObject ip || !IsNumber(ip["interface"], podIndex)) continue;
            var address = ip["address"] is JsonValue text && text.GetValueKind() == JsonValueKind.String ? text.GetValue<string>() : "";
            if (IPNetwork.TryParse(address, out var network) && network.BaseAddress.AddressFamily == AddressFamily.InterNetwork)
                return network.BaseAddress;
        }
        throw Invalid($"prevResult.ips has no IPv4 address for interface {podIndex} ({attachment.IfName})");
    }

    private static JsonArray CopyArray(JsonObject? result, string field) => result?[field] switch
    {
        null => [],
        JsonArray array => (JsonArray)array.DeepClone(),
        var other => throw Invalid($"prevResult.{field} must be an array, got {other.GetValueKind().ToString().ToLowerInvariant()}"),
    };

    private static int IndexOf(JsonArray interfaces, string name, int from)
    {
        for (var i = from; i < interfaces.Count; i++)
            if (interfaces[i] is JsonObject entry && entry["name"] is JsonValue value && value.GetValueKind() == JsonValueKind.String
                && value.GetValue<string>() == name)
                return i;
        return -1;
    }

    private static bool IsNumber(JsonNode? node, int expected) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue(out int number) && number == expected;

    private static CniException Invalid(string message) =>
        new(CniErrorCode.InvalidNetworkConfig, $"invalid network configuration: {message}");
}
