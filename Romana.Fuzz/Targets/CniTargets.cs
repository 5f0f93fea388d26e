using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Romana.Cni.Plugin;
using static Romana.Fuzz.FuzzFinding;

namespace Romana.Fuzz;

/// <summary>The CNI plugin's readers: the network configuration on stdin with ADD's result built on it, and CNI_IFNAME/CNI_ARGS.</summary>
public static class CniTargets
{
    private static readonly PodAttachment Attachment = PodAttachment.For("fuzz-container", "eth0");
    private static readonly IPAddress Address = IPAddress.Parse("100.64.0.7");
    private const string Netns = "/var/run/netns/fuzz";
    private const string PodMac = "0a:58:64:40:00:07";

    /// <summary>
    /// stdin → ParseObject (refusals: code 6) → From, for ADD and for STATUS (codes 1 and 7) → ADD's result over prevResult
    /// (code 7), which must be JSON that the plugin reads back, and in which CHECK finds the address ADD gave.
    /// </summary>
    public static FuzzTarget Config { get; } = new("cni-config",
        "the network configuration on stdin (NetworkConfig), ADD's result over its prevResult and CHECK's reading of it (CniResult)",
        RunConfig);

    /// <summary>The line before the first newline is CNI_IFNAME, the rest CNI_ARGS.</summary>
    public static FuzzTarget Environment { get; } = new("cni-env",
        "CNI_IFNAME (line 1) and CNI_ARGS (the rest) as the plugin checks them (CniEnvironment)", RunEnvironment);

    private static void RunConfig(byte[] input)
    {
        JsonObject json;
        try
        {
            json = NetworkConfig.ParseObject(input);
        }
        catch (CniException e)
        {
            Refusal(e, CniErrorCode.DecodingFailure);
            return;
        }
        _ = NetworkConfig.PeekVersion(json);
        try
        {
            _ = NetworkConfig.From(json, anyVersion: true);
        }
        catch (CniException e)
        {
            Refusal(e, CniErrorCode.InvalidNetworkConfig);
        }
        NetworkConfig config;
        try
        {
            config = NetworkConfig.From(json);
        }
        catch (CniException e)
        {
            Refusal(e, CniErrorCode.IncompatibleVersion, CniErrorCode.InvalidNetworkConfig);
            return;
        }

        JsonObject result;
        try
        {
            result = CniResult.ForAdd(config.CniVersion, config.PrevResult, Attachment, Netns, PodMac, Address);
        }
        catch (CniException e)
        {
            Refusal(e, CniErrorCode.InvalidNetworkConfig);
            return;
        }
        // The runtime hands ADD's result back as CHECK's prevResult: it must read as the same JSON and give our address.
        var printed = result.ToJsonString();
        var reread = NetworkConfig.ParseObject(Encoding.UTF8.GetBytes(printed));
        Require(reread.ToJsonString() == printed, "ADD's result does not read back as the same JSON");
        if (!PointsOnlyAtItsOwnInterfaces(config.PrevResult)) return;
        IPAddress found;
        try
        {
            found = CniResult.RomanaAddress(reread, Attachment);
        }
        catch (CniException e)
        {
            throw new FuzzFinding($"CHECK cannot find the address in ADD's own result: {e.Message}", e);
        }
        Require(found.Equals(Address), $"CHECK finds {found} in ADD's result, not the {Address} ADD gave");
    }

    /// <summary>
    /// A prevResult in which our host veth does not appear already and every ips entry points at one of its own interfaces (or
    /// at none): the results that CHECK must read back. An entry of a chained plugin that points past the interfaces of its
    /// own result points at ours once they are appended; such a prevResult is outside the spec, and what CHECK reads from it
    /// is not checked here.
    /// </summary>
    private static bool PointsOnlyAtItsOwnInterfaces(JsonObject? prevResult)
    {
        if (prevResult is null) return true;
        var interfaces = prevResult["interfaces"] as JsonArray ?? [];
        if (interfaces.Any(i => i is JsonObject o && o["name"] is JsonValue v && v.TryGetValue(out string? name)
                && name == Attachment.HostVeth))
            return false;
        return (prevResult["ips"] as JsonArray ?? []).All(ip => ip is not JsonObject o || o["interface"] is not JsonValue index
            || !index.TryGetValue(out int at) || at < interfaces.Count);
    }

    private static void RunEnvironment(byte[] input)
    {
        var text = Encoding.UTF8.GetString(input);
        var newline = text.IndexOf('\n', StringComparison.Ordinal);
        var ifName = AsEnvironmentVariable(newline < 0 ? text : text[..newline]);
        var args = newline < 0 ? null : AsEnvironmentVariable(text[(newline + 1)..]);
        var environment = new CniEnvironment("ADD", "fuzz-container", Netns, ifName, args, "/opt/cni/bin");
        try
        {
            var name = environment.RequireIfName();
            // Linux's dev_valid_name: 1 to 15 bytes, not "." or "..", no '/', ':' or isspace(); the plugin also wants ASCII.
            Require(name.Length is >= 1 and <= 15 && name is not ("." or "..")
                && name.All(c => c is not ('/' or ':' or ' ' or '\t' or '\n' or '\v' or '\f' or '\r') && c <= '~'),
                $"CNI_IFNAME {Show(name)} was accepted but is no Linux interface name");
            var veth = PodAttachment.For("fuzz-container", name).HostVeth;
            Require(PodAttachment.IsHostVethName(veth), $"the host veth for {Show(name)} is {veth}, not rmn and 11 hex digits");
        }
        catch (CniException e)
        {
            Refusal(e, CniErrorCode.InvalidEnvironment);
        }
        try
        {
            var pod = environment.PodName();
            Require(pod is null || pod.Contains('/', StringComparison.Ordinal),
                $"CNI_ARGS gave the pod name {Show(pod)}, not namespace/name");
        }
        catch (CniException e)
        {
            Refusal(e, CniErrorCode.InvalidEnvironment);
        }
    }

    /// <summary>What a process sees of a value: environment variables end at the first NUL.</summary>
    private static string AsEnvironmentVariable(string value) =>
        value.IndexOf('\0', StringComparison.Ordinal) is var nul and >= 0 ? value[..nul] : value;

    private static void Refusal(CniException e, params int[] codes) =>
        Require(codes.Contains(e.Code) && !string.IsNullOrWhiteSpace(e.Message),
            $"refused with code {e.Code} ({e.Message}), expected one of {string.Join(", ", codes)} with a message");

    private static string Show(string? text) => text is null ? "null" : JsonValue.Create(text).ToJsonString();
}
