using Romana.Actors.Addressing;

namespace Romana.Actors.Dataplane;

/// <summary>
/// The port to this host's network stack. The Linux adapter keeps Romana's host routes in a routing table of its own,
/// consulted by an <c>ip rule</c> for the pod CIDR, and marks them as Romana's so it never changes a route it did not make.
/// </summary>
public interface IHostNetwork
{
    /// <summary>
    /// Turns forwarding on, makes reverse-path filtering accept forwarded pod traffic,
    /// and installs the rule. Idempotent.
    /// </summary>
    Task PrepareAsync(Ipv4Cidr podCidr, CancellationToken cancel = default);

    /// <summary>Romana's routes now in its table (the kernel's truth, not a cache).</summary>
    Task<IReadOnlyDictionary<Ipv4Cidr, Ipv4>> ReadRoutesAsync(CancellationToken cancel = default);

    /// <summary>Puts and removes routes one by one, never flushing: at no moment is a still-wanted route missing.</summary>
    Task ApplyAsync(HostRouteChanges changes, CancellationToken cancel = default);

    /// <summary>
    /// For each pod address (and the host veth that carried it, when known), what on this host still uses it, or null when
    /// nothing does: a /32 route the kernel would send the address's packets by (Romana's route to a pod, an address of
    /// the host's own), or the veth. Asked before an address is handed out or released by GC, so that a pod still wired
    /// never shares its address. A few netlink requests per address, no dump.
    /// </summary>
    Task<IReadOnlyList<string?>> FindPodAddressUsesAsync(IReadOnlyList<PodAddressProbe> probes, CancellationToken cancel = default);
}

/// <summary>An address to look for on the host, with the host veth its attachment had (null when unknown).</summary>
public sealed record PodAddressProbe(Ipv4 Address, string? HostVeth = null);
