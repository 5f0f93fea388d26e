using System.Buffers;
using System.Text;

namespace Romana.Contracts.Cni;

/// <summary>
/// What an attachment is named by, checked by the same rules on both sides of the socket: the plugin refuses a runtime's
/// malformed variables (code 4), and the daemon refuses a request the plugin would never send, since any local client can
/// write to its socket. Each check returns null when the value is valid, else a sentence saying what it must be (the
/// value itself is not in it: callers quote it with <see cref="Printable.Quote"/>).
/// </summary>
public static class CniIdentifiers
{
    /// <summary>
    /// The spec puts no bound on a container id; runtimes use 64 hex digits (containerd, CRI-O, Docker) or a UUID. A bound
    /// keeps a request within the daemon's line and a key within reason in the journal.
    /// </summary>
    public const int MaxContainerIdLength = 256;

    /// <summary>IFNAMSIZ (16) less the terminating NUL.</summary>
    public const int MaxInterfaceNameLength = 15;

    /// <summary>A Kubernetes object name (a DNS subdomain) is at most 253 characters; a namespace (a DNS label) 63.</summary>
    public const int MaxPodNamePartLength = 253;

    /// <summary>"MAJOR:MINOR:INODE", each a decimal number: at most 10 + 1 + 10 + 1 + 20 characters.</summary>
    public const int MaxNetnsIdLength = 42;

    public const string ContainerIdRule =
        "an alphanumeric character, then alphanumerics, '_', '.' or '-', at most 256 in all, as the CNI spec defines it";

    public const string InterfaceNameRule =
        "1-15 printable ASCII characters, no '/', ':', '%' or space, not '.', '..', 'all' or 'default'";

    public const string PodNamePartRule = "1-253 of ASCII letters, digits, '.', '_' and '-', as Kubernetes names are";

    /// <summary>The CNI spec's container id: an alphanumeric character, then alphanumerics, '_', '.' or '-'.</summary>
    public static string? ContainerIdProblem(string? value)
    {
        if (string.IsNullOrEmpty(value)) return "is empty";
        if (value.Length > MaxContainerIdLength || !char.IsAsciiLetterOrDigit(value[0])
            || value.AsSpan(1).ContainsAnyExcept(NameCharacters))
            return $"is not a container id ({ContainerIdRule})";
        return null;
    }

    /// <summary>
    /// A name the kernel takes as given: its own rules (1-15 bytes, no '/', ':' or whitespace, not "." or ".."), and none
    /// it would read otherwise: '%' asks it to pick a number ("eth%d" becomes eth0), "all" and "default" are the names of
    /// the per-namespace settings in /proc/sys/net/ipv4/conf, and control or non-ASCII characters print as anything.
    /// </summary>
    public static string? InterfaceNameProblem(string? value)
    {
        if (string.IsNullOrEmpty(value)) return "is empty";
        if (value.Length > MaxInterfaceNameLength || value is "." or ".." or "all" or "default"
            || value.Any(c => c is < '!' or > '~' or '/' or ':' or '%'))
            return $"is not a valid interface name ({InterfaceNameRule})";
        return null;
    }

    /// <summary>A pod's namespace or name as Kubernetes makes them (a superset: upper case and '_' pass too).</summary>
    public static string? PodNamePartProblem(string? value)
    {
        if (string.IsNullOrEmpty(value)) return "is empty";
        if (value.Length > MaxPodNamePartLength || value.AsSpan().ContainsAnyExcept(NameCharacters))
            return $"is not a Kubernetes name ({PodNamePartRule})";
        return null;
    }

    /// <summary>A pod's uid as Kubernetes makes them (a UUID; here 1-64 ASCII letters, digits and '-').</summary>
    public static string? PodUidProblem(string? value)
    {
        if (string.IsNullOrEmpty(value)) return "is empty";
        return value.Length > 64 || value.Any(c => !char.IsAsciiLetterOrDigit(c) && c != '-')
            ? "is not a Kubernetes uid (1-64 of ASCII letters, digits and '-')"
            : null;
    }

    /// <summary>The pod as the plugin sends it: "namespace/name", each part a <see cref="PodNamePartProblem"/>-valid name.</summary>
    public static string? PodProblem(string? value)
    {
        var slash = value?.IndexOf('/') ?? -1;
        if (value is null || slash < 0) return "is not \"namespace/name\"";
        return PodNamePartProblem(value[..slash]) is { } problem ? $"namespace {problem}"
            : PodNamePartProblem(value[(slash + 1)..]) is { } nameProblem ? $"name {nameProblem}"
            : null;
    }

    /// <summary>A network namespace's identity as the plugin sends it: "MAJOR:MINOR:INODE" of its nsfs file.</summary>
    public static string? NetnsIdProblem(string? value)
    {
        if (string.IsNullOrEmpty(value)) return "is empty";
        var parts = value.Split(':');
        if (value.Length > MaxNetnsIdLength || parts.Length != 3 || parts.Any(p => p.Length == 0 || !p.All(char.IsAsciiDigit)))
            return "is not a namespace identity (\"MAJOR:MINOR:INODE\", the device and inode of the namespace file)";
        return null;
    }

    /// <summary>
    /// The host end of an attachment's veth: "rmn" + 11 hex digits (44 bits) of the FNV-1a hash of the allocation key,
    /// deterministic, so a retried ADD, a DEL, a GC and the daemon all find the same link without state, and 14
    /// characters, within the kernel's 15. Not a cryptographic hash on purpose: .NET's SHA-256 loads OpenSSL, which
    /// measured 3 ms of a 6 ms ADD.
    /// </summary>
    public static string HostVethName(string containerId, string ifName)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(DaemonProtocol.KeyOf(containerId, ifName))) hash = (hash ^ b) * 1099511628211UL;
        return $"rmn{hash >> 20:x11}";
    }

    /// <summary>The characters after the first of a container id, and those of a pod's namespace and name.</summary>
    private static readonly SearchValues<char> NameCharacters =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
}
