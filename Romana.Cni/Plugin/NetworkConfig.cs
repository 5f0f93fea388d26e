using System.Text.Json;
using System.Text.Json.Nodes;
using Romana.Contracts.Cni;

namespace Romana.Cni.Plugin;

/// <summary>
/// The plugin's entry of the network configuration list, as it arrives on stdin. Unknown fields (runtimeConfig,
/// capabilities, args) are ignored; known ones of the wrong type are refused with the field and the value.
/// </summary>
internal sealed record NetworkConfig(string CniVersion, string Name, string DaemonSocket, int? Mtu, JsonObject? PrevResult,
    IReadOnlyList<(string ContainerId, string IfName)>? ValidAttachments = null)
{
    /// <summary>
    /// GC's list of attachments the runtime still has (spec 1.1);
    /// libcni also sets the draft's name, "cni.dev/gc-attachments".
    /// </summary>
    private static readonly string[] ValidAttachmentsFields = ["cni.dev/valid-attachments", "cni.dev/gc-attachments"];

    public const string DefaultDaemonSocket = "/run/romana/cni.sock";

    /// <summary>sockaddr_un.sun_path holds 108 bytes including the terminating NUL.</summary>
    private const int MaxSocketPathBytes = 107;

    /// <summary>A key given twice is a decoding failure: one reader would take the first, another the last.</summary>
    private static readonly JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false };

    /// <summary>Parses stdin as a JSON object; a decoding failure (a key given twice included) is code 6.</summary>
    public static JsonObject ParseObject(byte[] stdin)
    {
        // The parser checks the bytes of a string only when the string is read: invalid UTF-8 would fail later, as a bug.
        if (!System.Text.Unicode.Utf8.IsValid(stdin))
            throw new CniException(CniErrorCode.DecodingFailure, "failed to decode the network configuration on stdin: not UTF-8");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(stdin, documentOptions: Strict);
        }
        catch (JsonException e)
        {
            var where = $"at line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}";
            throw new CniException(CniErrorCode.DecodingFailure,
                $"failed to decode the network configuration on stdin: " +
                (IsDuplicateKey(e) ? $"a key is given twice in one object {where}" : $"invalid JSON {where}"));
        }
        return node as JsonObject
            ?? throw new CniException(CniErrorCode.DecodingFailure,
                $"failed to decode the network configuration on stdin: " +
                $"expected a JSON object, got {(node is null ? "null" : node.GetValueKind().ToString().ToLowerInvariant())}");
    }

    /// <summary>
    /// System.Text.Json reports a duplicate property with a message of its own and no error code; "duplicate" is in it in
    /// every release that has the option.
    /// </summary>
    private static bool IsDuplicateKey(JsonException e) => e.Message.Contains("uplicate", StringComparison.Ordinal);

    /// <summary>"cniVersion" when it is a string, for replies sent before (or despite) full validation.</summary>
    public static string? PeekVersion(JsonObject config) =>
        config["cniVersion"] is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    /// <param name="anyVersion">
    /// STATUS only: it comes from spec 1.1 runtimes with a 1.1.0 configuration,
    /// and its answer has no format to get wrong.
    /// </param>
    public static NetworkConfig From(JsonObject config, bool anyVersion = false)
    {
        var version = RequiredString(config, "cniVersion");
        if (!anyVersion) CniVersions.RequireSupported(version);
        var name = RequiredString(config, "name");
        var socket = OptionalString(config, "daemonSocket") ?? DefaultDaemonSocket;
        if (socket.Length == 0 || socket[0] != '/')
            throw Invalid($"daemonSocket must be an absolute path, got {ShowString(socket)}");
        // The kernel reads sun_path up to the first NUL: the rest would be silently dropped and another socket asked.
        if (socket.Contains('\0'))
            throw Invalid($"daemonSocket {ShowString(socket)} contains a NUL character, which no path can hold");
        if (System.Text.Encoding.UTF8.GetByteCount(socket) > MaxSocketPathBytes)
            throw Invalid($"daemonSocket {ShowString(socket)} is longer than a Unix socket path may be ({MaxSocketPathBytes} bytes)");
        return new NetworkConfig(version, name, socket, OptionalMtu(config), OptionalObject(config, "prevResult"),
            OptionalAttachments(config));
    }

    private static List<(string ContainerId, string IfName)>? OptionalAttachments(JsonObject config)
    {
        if (ValidAttachmentsFields.Select(field => (field, node: config[field]))
            .FirstOrDefault(f => f.node is not null) is not ({ } field, { } node))
            return null;
        if (node is not JsonArray list) throw Invalid($"{field} must be an array, got {Shorten(node.ToJsonString())}");
        return [.. list.Select((item, i) => item is JsonObject attachment
            && OptionalString(attachment, "containerID") is { Length: > 0 } containerId
            && OptionalString(attachment, "ifname") is { Length: > 0 } ifName
                ? ValidAttachment($"{field}[{i}]", containerId, ifName)
                : throw Invalid(
                    $"{field}[{i}] must be an object with containerID and ifname, got {Shorten(item?.ToJsonString() ?? "null")}"))];
    }

    /// <summary>
    /// An attachment the runtime lists was named by the rules of CNI_CONTAINERID and CNI_IFNAME; one that breaks them could
    /// not have been made, and would match keys it does not name ("k/a" + "b" reads as "k" + "a/b").
    /// </summary>
    private static (string ContainerId, string IfName) ValidAttachment(string entry, string containerId, string ifName) =>
        CniIdentifiers.ContainerIdProblem(containerId) is { } problem
            ? throw Invalid($"{entry}: containerID {Printable.Quote(containerId)} {problem}")
            : CniIdentifiers.InterfaceNameProblem(ifName) is { } ifProblem
                ? throw Invalid($"{entry}: ifname {Printable.Quote(ifName)} {ifProblem}")
                : (containerId, ifName);

    private static string RequiredString(JsonObject config, string field) =>
        OptionalString(config, field) is { Length: > 0 } value ? value : throw Invalid($"{field} is missing or empty");

    private static string? OptionalString(JsonObject config, string field) => config[field] switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        var other => throw Invalid($"{field} must be a string, got {Shorten(other.ToJsonString())}"),
    };

    private static JsonObject? OptionalObject(JsonObject config, string field) => config[field] switch
    {
        null => null,
        JsonObject value => value,
        var other => throw Invalid($"{field} must be an object, got {Shorten(other.ToJsonString())}"),
    };

    /// <summary>The MTU of both veth ends: an integer from 68 (IPv4's minimum) to 65535 (veth's maximum).</summary>
    private static int? OptionalMtu(JsonObject config)
    {
        var node = config["mtu"];
        if (node is null) return null;
        if (node is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue(out int mtu)
            && mtu is >= 68 and <= 65535)
            return mtu;
        throw Invalid($"mtu must be an integer from 68 to 65535, got {Shorten(node.ToJsonString())}");
    }

    private static CniException Invalid(string message) =>
        new(CniErrorCode.InvalidNetworkConfig, $"invalid network configuration: {message}");

    /// <summary>A JSON value as the message quotes it: its first 80 characters (JSON escapes control characters itself).</summary>
    private static string Shorten(string text) => text.Length > 80 ? text[..80] + "..." : text;

    /// <summary>A string value in double quotes, escaped and cut like <see cref="Printable.Text"/>.</summary>
    private static string ShowString(string value) => $"\"{Printable.Text(value, 80)}\"";
}
