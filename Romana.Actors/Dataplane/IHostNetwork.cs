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
}
