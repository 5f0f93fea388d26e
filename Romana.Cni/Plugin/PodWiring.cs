using System.Net;
using Romana.Netlink;

namespace Romana.Cni.Plugin;

/// <summary>
/// The rtnetlink steps that wire a pod (ADD), unwire it (DEL) and verify it (CHECK), over one host-namespace socket and,
/// where the pod is touched, one pod-namespace socket.
/// </summary>
internal sealed class PodWiring(PodAttachment attachment)
{
    private static readonly IPAddress DefaultDestination = IPAddress.Any;

    /// <summary>True once this ADD has created the host veth: only then does a rollback delete it.</summary>
    public bool CreatedHostVeth { get; private set; }

    /// <summary>Creates and configures both ends; returns the pod interface's MAC.</summary>
    public string Wire(NetworkNamespace podNamespace, IPAddress address, int? mtu)
    {
        using var hostSocket = NetlinkSocket.Open();
        using var podSocket = podNamespace.OpenNetlinkSocket();
        var host = new RouteNetlink(hostSocket);
        var pod = new RouteNetlink(podSocket);
        var netns = podNamespace.Path;
        var ifName = attachment.IfName;
        var hostVeth = attachment.HostVeth;

        CreateVeth(host, podNamespace, mtu);

        var podLink = pod.FindLink(ifName, $"looking up {ifName} in {netns}")
            ?? throw new NetlinkException($"looking up {ifName} in {netns} after creating it", Errno.ENODEV);
        // The loopback plugin may not be in the chain; setting lo up when it already is changes nothing.
        pod.SetLinkUp("lo", $"setting lo up in {netns}");
        pod.AddAddress(podLink.Index, address, 32, $"adding address {address}/32 to {ifName} in {netns}");
        pod.SetLinkUp(podLink.Index, $"setting {ifName} up in {netns}");
        pod.AddRoute(new RouteSpec(PodAttachment.Gateway, 32, null, podLink.Index, RouteValues.ProtocolBoot),
            $"adding route {PodAttachment.Gateway}/32 dev {ifName} in {netns}");
        pod.AddPermanentNeighbour(podLink.Index, PodAttachment.Gateway, PodAttachment.HostMac,
            $"adding neighbour {PodAttachment.Gateway} lladdr {PodAttachment.HostMacText} on {ifName} in {netns}");
        pod.AddRoute(new RouteSpec(DefaultDestination, 0, PodAttachment.Gateway, podLink.Index, RouteValues.ProtocolBoot),
            $"adding default route via {PodAttachment.Gateway} dev {ifName} in {netns}");

        var hostLink = host.FindLink(hostVeth, $"looking up {hostVeth}")
            ?? throw new NetlinkException($"looking up {hostVeth} after creating it", Errno.ENODEV);
        host.SetLinkUp(hostLink.Index, $"setting {hostVeth} up");
        host.AddRoute(new RouteSpec(address, 32, null, hostLink.Index, RomanaRoutes.Protocol),
            $"adding route {address}/32 dev {hostVeth} proto {RomanaRoutes.Protocol}");
        return PodAttachment.FormatMac(podLink.HardwareAddress);
    }

    /// <summary>
    /// One RTM_NEWLINK for the pair. A host veth left by an earlier, interrupted ADD of the same attachment is deleted
    /// (with its peer) and the pair made again; a name clash inside the pod is reported as such.
    /// </summary>
    private void CreateVeth(RouteNetlink host, NetworkNamespace podNamespace, int? mtu)
    {
        var operation = $"creating veth {attachment.HostVeth} for container {attachment.ContainerId}";
        try
        {
            host.CreateVethPair(attachment.HostVeth, PodAttachment.HostMac, attachment.IfName, podNamespace.Fd, mtu, operation);
        }
        catch (NetlinkException e) when (e.Errno == Errno.EEXIST)
        {
            if (host.FindLink(attachment.HostVeth, $"looking up {attachment.HostVeth}") is null)
                throw new NetlinkException($"{operation}: interface {attachment.IfName} already exists in {podNamespace.Path}",
                    Errno.EEXIST);
            host.DeleteLink(attachment.HostVeth, $"deleting the stale veth {attachment.HostVeth} of an earlier ADD");
            host.CreateVethPair(attachment.HostVeth, PodAttachment.HostMac, attachment.IfName, podNamespace.Fd, mtu, operation);
        }
        CreatedHostVeth = true;
    }

    /// <summary>Deletes the host veth: the kernel removes its peer and the /32 route with it. False when it was already gone.</summary>
    public bool Unwire()
    {
        using var hostSocket = NetlinkSocket.Open();
        return new RouteNetlink(hostSocket)
            .DeleteLink(attachment.HostVeth, $"deleting veth {attachment.HostVeth} of container {attachment.ContainerId}");
    }

    /// <summary>
    /// GC: deletes every host veth of Romana's (named by <see cref="PodAttachment.For"/>)
    /// that is not in <paramref name="keep"/>.
    /// </summary>
    public static void RemoveVethsExcept(IReadOnlySet<string> keep)
    {
        using var hostSocket = NetlinkSocket.Open();
        var host = new RouteNetlink(hostSocket);
        foreach (var link in host.ListLinks("GC: listing links"))
            if (PodAttachment.IsHostVethName(link.Name) && !keep.Contains(link.Name))
                host.DeleteLink(link.Name, $"GC: deleting veth {link.Name}, whose attachment the runtime no longer lists");
    }

    /// <summary>Rollback after a failed ADD; errors are dropped so the original one is reported.</summary>
    public void TryUnwire()
    {
        try
        {
            Unwire();
        }
        catch (NetlinkException)
        {
        }
    }

    /// <summary>Verifies every piece ADD made; the first one missing is reported by name.</summary>
    public void Verify(NetworkNamespace podNamespace, IPAddress address)
    {
        using var hostSocket = NetlinkSocket.Open();
        using var podSocket = podNamespace.OpenNetlinkSocket();
        var host = new RouteNetlink(hostSocket);
        var pod = new RouteNetlink(podSocket);
        var netns = podNamespace.Path;
        var ifName = attachment.IfName;
        var hostVeth = attachment.HostVeth;

        // The pod end first: deleting either end deletes both, and the pod's interface is the name the runtime knows.
        var podLink = pod.FindLink(ifName, $"CHECK: looking up {ifName} in {netns}")
            ?? throw Missing(CniErrorCode.CheckInterfaceMissing, $"interface {ifName} is missing in {netns}");
        if (!podLink.IsUp) throw Missing(CniErrorCode.CheckInterfaceMissing, $"interface {ifName} is down in {netns}");
        var hostLink = host.FindLink(hostVeth, $"CHECK: looking up {hostVeth}")
            ?? throw Missing(CniErrorCode.CheckInterfaceMissing, $"host veth {hostVeth} is missing");
        if (!hostLink.IsUp) throw Missing(CniErrorCode.CheckInterfaceMissing, $"host veth {hostVeth} is down");
        var hasAddress = pod.ListIPv4Addresses($"CHECK: listing addresses in {netns}").Any(entry =>
            entry.InterfaceIndex == podLink.Index && entry.PrefixLength == 32 && entry.Local.Equals(address));
        if (!hasAddress) throw Missing(CniErrorCode.CheckAddressOrRouteMissing, $"address {address}/32 is missing on {ifName} in {netns}");
        var hasDefault = pod.ListIPv4Routes($"CHECK: listing routes in {netns}").Any(route =>
            route.Table == RouteValues.TableMain && route.DestinationLength == 0 && PodAttachment.Gateway.Equals(route.Gateway)
                && route.OutputInterface == podLink.Index);
        if (!hasDefault)
            throw Missing(CniErrorCode.CheckAddressOrRouteMissing,
                $"default route via {PodAttachment.Gateway} dev {ifName} is missing in {netns}");
        var hostRoute = host.ListIPv4Routes("CHECK: listing host routes").Any(route =>
            route.Table == RouteValues.TableMain && route.DestinationLength == 32 && address.Equals(route.Destination)
                && route.OutputInterface == hostLink.Index);
        if (!hostRoute) throw Missing(CniErrorCode.CheckAddressOrRouteMissing, $"host route {address}/32 dev {hostVeth} is missing");
    }

    private static CniException Missing(int code, string what) => new(code, $"CHECK: {what}");
}
