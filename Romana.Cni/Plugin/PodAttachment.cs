using System.Net;
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

    /// <summary>The attachment, with its host veth named by <see cref="CniIdentifiers.HostVethName"/>.</summary>
    public static PodAttachment For(string containerId, string ifName) =>
        new(containerId, ifName, CniIdentifiers.HostVethName(containerId, ifName));

    /// <summary>"rmn" and 11 lowercase hex digits: a name <see cref="For"/> makes.</summary>
    public static bool IsHostVethName(string name) =>
        name.Length == 14 && name.StartsWith("rmn", StringComparison.Ordinal) && name.AsSpan(3).IndexOfAnyExcept("0123456789abcdef") < 0;

    public static string FormatMac(byte[] mac) => string.Join(':', mac.Select(b => b.ToString("x2")));
}
