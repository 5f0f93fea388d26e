using System.Text.Json;
using System.Text.Json.Serialization;

namespace Romana.Contracts.Cni;

/// <summary>
/// What the CNI plugin and the Romana daemon say over the daemon's Unix socket: one request per connection, one JSON
/// object on one line each way. The allocation key is the container id and the interface name (the CNI spec's
/// identity of an attachment), so a repeated ADD gets the same address and a DEL finds it.
/// </summary>
public static class DaemonProtocol
{
    public const string Add = "ADD";
    public const string Del = "DEL";
    public const string Check = "CHECK";
    public const string Status = "STATUS";
    public const string Gc = "GC";

    public static string KeyOf(string containerId, string ifName) => $"{containerId}/{ifName}";

    public static byte[] Encode(DaemonRequest request) =>
        Line(JsonSerializer.SerializeToUtf8Bytes(request, DaemonJson.Default.DaemonRequest));

    public static byte[] Encode(DaemonReply reply) => Line(JsonSerializer.SerializeToUtf8Bytes(reply, DaemonJson.Default.DaemonReply));

    /// <summary>Null when the line is not a request with a command (the daemon answers that with an error naming the fields).</summary>
    public static DaemonRequest? DecodeRequest(ReadOnlySpan<byte> line)
    {
        try { return JsonSerializer.Deserialize(line, DaemonJson.Default.DaemonRequest) is { Command: not null } request ? request : null; }
        catch (JsonException) { return null; }
    }

    public static DaemonReply? DecodeReply(ReadOnlySpan<byte> line)
    {
        try { return JsonSerializer.Deserialize(line, DaemonJson.Default.DaemonReply); }
        catch (JsonException) { return null; }
    }

    private static byte[] Line(byte[] json) => [.. json, (byte)'\n'];
}

/// <param name="Command">ADD, DEL, CHECK, STATUS or GC.</param>
/// <param name="ContainerId">
/// ADD, DEL, CHECK: CNI_CONTAINERID, as the spec defines it (<see cref="CniIdentifiers.ContainerIdProblem"/>); the daemon
/// refuses anything else.
/// </param>
/// <param name="IfName">ADD, DEL, CHECK: CNI_IFNAME (<see cref="CniIdentifiers.InterfaceNameProblem"/>).</param>
/// <param name="Netns">CNI_NETNS, for the daemon's log.</param>
/// <param name="Pod">
/// "namespace/name" from CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME) when the runtime gives them: it goes into the journal.
/// </param>
/// <param name="Valid">
/// GC, required: the keys (see <see cref="DaemonProtocol.KeyOf"/>) of the attachments the runtime still has; every other
/// address of this node whose veth and host route are gone is released. An empty list is a node without pods.
/// </param>
/// <param name="NetnsId">
/// The identity of CNI_NETNS: "MAJOR:MINOR:INODE", the device and inode of the namespace file, which stay the same
/// whatever path names the namespace. ADD records it with the address; a later ADD or CHECK of the key from another
/// namespace is a conflict and changes nothing, and a DEL from another namespace releases nothing.
/// </param>
public sealed record DaemonRequest(
    string Command, string ContainerId, string IfName, string? Netns = null, string? Pod = null, string[]? Valid = null,
    string? NetnsId = null);

/// <param name="Address">ADD and CHECK: the pod's IPv4 address (a /32).</param>
/// <param name="Released">GC: how many addresses were released.</param>
/// <param name="Kept">GC: how many addresses the runtime no longer lists were kept, since their veth or host route is still there.</param>
/// <param name="Code">When not ok: invalid, not-found, conflict, exhausted or unavailable (the IPAM's error codes).</param>
/// <param name="Error">When not ok: a sentence naming the field and the value.</param>
public sealed record DaemonReply(bool Ok, string? Address = null, string? Code = null, string? Error = null, int? Released = null,
    int? Kept = null)
{
    public static DaemonReply Failure(string code, string error) => new(false, Code: code, Error: error);
}

/// <summary>A property given twice makes the line malformed: a reader taking the first and one taking the last would disagree.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowDuplicateProperties = false)]
[JsonSerializable(typeof(DaemonRequest))]
[JsonSerializable(typeof(DaemonReply))]
internal sealed partial class DaemonJson : JsonSerializerContext;
