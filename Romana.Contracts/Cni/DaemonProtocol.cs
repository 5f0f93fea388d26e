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

    /// <summary>The daemon's admin API (the socket is root's only): this member's view of the cluster.</summary>
    public const string Cluster = "CLUSTER";

    /// <summary>The daemon's admin API: a node whose daemon is gone leaves Romana (`romana node remove`).</summary>
    public const string NodeRemove = "NODE-REMOVE";

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

/// <param name="Command">ADD, DEL, CHECK, STATUS or GC (the CNI plugin's); CLUSTER or NODE-REMOVE (the admin commands').</param>
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
/// <param name="Node">NODE-REMOVE, required: the name of the node to remove.</param>
/// <param name="PodUid">ADD: K8S_POD_UID from CNI_ARGS when the runtime gives it; it goes into the journal with the address.</param>
public sealed record DaemonRequest(
    string Command, string ContainerId, string IfName, string? Netns = null, string? Pod = null, string[]? Valid = null,
    string? NetnsId = null, string? Node = null, string? PodUid = null);

/// <param name="Address">ADD and CHECK: the pod's IPv4 address (a /32).</param>
/// <param name="Released">GC, NODE-REMOVE: how many addresses were released.</param>
/// <param name="Kept">GC: how many addresses the runtime no longer lists were kept, since their veth or host route is still there.</param>
/// <param name="Code">When not ok: invalid, not-found, conflict, exhausted or unavailable (the IPAM's error codes).</param>
/// <param name="Error">When not ok: a sentence naming the field and the value.</param>
/// <param name="Node">NODE-REMOVE: the node removed.</param>
/// <param name="Subnet">NODE-REMOVE: the subnet the node left.</param>
/// <param name="Cluster">CLUSTER: the answering daemon's view of the cluster.</param>
public sealed record DaemonReply(bool Ok, string? Address = null, string? Code = null, string? Error = null, int? Released = null,
    int? Kept = null, string? Node = null, string? Subnet = null, ClusterView? Cluster = null)
{
    public static DaemonReply Failure(string code, string error) => new(false, Code: code, Error: error);
}

/// <summary>A daemon's view of the cluster it is a member of (CLUSTER).</summary>
/// <param name="Self">The answering daemon's node.</param>
/// <param name="Enabled">False when the daemon runs alone (romana.cluster.enabled = off): then no members and no route manager.</param>
/// <param name="SelfAddress">The answering member's cluster address; null outside a cluster.</param>
/// <param name="Members">Every member this one knows of, the answering one included, oldest first.</param>
/// <param name="RouteManager">
/// The node whose daemon hosts the route manager singleton: the oldest Up member with the role node, as Akka's
/// ClusterSingletonManager picks it. Null outside a cluster, or when no member qualifies.
/// </param>
public sealed record ClusterView(string Self, bool Enabled, string? SelfAddress, ClusterMember[] Members, string? RouteManager);

/// <param name="Node">The Romana node, from the member's name role; null for a member without one.</param>
/// <param name="Subnet">The node's subnet, from the member's subnet role; null for a member without one.</param>
/// <param name="Address">The member's cluster address (akka.tcp://romana@host:port).</param>
/// <param name="Status">Akka's member status: Joining, WeaklyUp, Up, Leaving, Exiting, Down, Removed (and the shutdown ones).</param>
/// <param name="Reachable">False while the answering member's failure detector finds it unreachable.</param>
public sealed record ClusterMember(string? Node, string? Subnet, string Address, string Status, bool Reachable);

/// <summary>A property given twice makes the line malformed: a reader taking the first and one taking the last would disagree.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowDuplicateProperties = false)]
[JsonSerializable(typeof(DaemonRequest))]
[JsonSerializable(typeof(DaemonReply))]
internal sealed partial class DaemonJson : JsonSerializerContext;
