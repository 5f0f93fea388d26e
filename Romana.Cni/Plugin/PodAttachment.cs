using System.Net;
using System.Text;
using Romana.Contracts.Cni;

namespace Romana.Cni.Plugin;

/// <summary>
/// The fixed shape of every Romana pod attachment (the Calico layout): the pod gets its address as a /32 and a default
/// route via the link-local 169.254.1.1, which it reaches with a permanent neighbour entry for ee:ee:ee:ee:ee:ee, the MAC
/// every host-side veth wears. Each veth is its own L2 segment, so the shared MAC never collides.
/// </summary>
internal sealed record PodAttachment(string ContainerId, string IfName, string HostVeth)
{
    public static readonly IPAddress Gateway = IPAddress.Parse("169.254.1.1");
    public static readonly byte[] HostMac = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
    public const string HostMacText = "ee:ee:ee:ee:ee:ee";

    /// <summary>
    /// "rmn" + 11 hex digits (44 bits) of the FNV-1a hash of the allocation key: deterministic, so a retried ADD or a DEL
    /// finds the same veth without state, and 14 characters, within the kernel's 15. Not a cryptographic hash on purpose:
    /// .NET's SHA-256 loads OpenSSL, which measured 3 ms of a 6 ms ADD.
    /// </summary>
    public static PodAttachment For(string containerId, string ifName)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(DaemonProtocol.KeyOf(containerId, ifName))) hash = (hash ^ b) * 1099511628211UL;
        return new PodAttachment(containerId, ifName, $"rmn{hash >> 20:x11}");
    }

    /// <summary>"rmn" and 11 lowercase hex digits: a name <see cref="For"/> makes.</summary>
    public static bool IsHostVethName(string name) =>
        name.Length == 14 && name.StartsWith("rmn", StringComparison.Ordinal) && name.AsSpan(3).IndexOfAnyExcept("0123456789abcdef") < 0;

    public static string FormatMac(byte[] mac) => string.Join(':', mac.Select(b => b.ToString("x2")));
}
