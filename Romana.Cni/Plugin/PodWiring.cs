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
        var metric = MetricFor(pod, podLink.Index, netns);
        var withMetric = metric == 0 ? "" : $" metric {metric}";
        pod.AddRoute(new RouteSpec(PodAttachment.Gateway, 32, null, podLink.Index, RouteValues.ProtocolBoot, Metric: metric),
            $"adding route {PodAttachment.Gateway}/32 dev {ifName}{withMetric} in {netns}");
        pod.AddPermanentNeighbour(podLink.Index, PodAttachment.Gateway, PodAttachment.HostMac,
            $"adding neighbour {PodAttachment.Gateway} lladdr {PodAttachment.HostMacText} on {ifName} in {netns}");
        pod.AddRoute(new RouteSpec(DefaultDestination, 0, PodAttachment.Gateway, podLink.Index, RouteValues.ProtocolBoot, Metric: metric),
            $"adding default route via {PodAttachment.Gateway} dev {ifName}{withMetric} in {netns}");
        if (metric != 0) RouteBySource(pod, podLink.Index, address, netns);

        var hostLink = host.FindLink(hostVeth, $"looking up {hostVeth}")
            ?? throw new NetlinkException($"looking up {hostVeth} after creating it", Errno.ENODEV);
        host.SetLinkUp(hostLink.Index, $"setting {hostVeth} up");
        host.AddRoute(new RouteSpec(address, 32, null, hostLink.Index, RomanaRoutes.Protocol),
            $"adding route {address}/32 dev {hostVeth} proto {RomanaRoutes.Protocol}");
        return PodAttachment.FormatMac(podLink.HardwareAddress);
    }

    /// <summary>
    /// The metric of this attachment's two routes (to the gateway, and the default via it). A pod's first interface gets
    /// 0, as it always has. A pod may have several (Multus and friends attach one network more than once, each with its own
    /// interface name), and routes to the same destination in one table must differ in metric: once the pod already has a
    /// default route or a route to 169.254.1.1 (another attachment's, Romana's or another plugin's), this one's routes get
    /// <see cref="SecondaryMetricBase"/> + the interface's index, unique in the namespace. So each attachment has its own
    /// complete pair, the first stays preferred, and deleting any one leaves the others working.
    /// </summary>
    private static uint MetricFor(RouteNetlink pod, int podLinkIndex, string netns)
    {
        var taken = pod.ListIPv4Routes($"listing routes in {netns}").Any(route => route.Table == RouteValues.TableMain
            && (route.DestinationLength == 0 || (route.DestinationLength == 32 && PodAttachment.Gateway.Equals(route.Destination))));
        return taken ? SecondaryMetricBase + (uint)podLinkIndex : 0;
    }

    /// <summary>Above the metrics tools set by hand (0, 100, 1024), so a secondary attachment's routes meet no one else's.</summary>
    public const uint SecondaryMetricBase = 1000;

    /// <summary>
    /// A secondary attachment's replies must leave by its own interface: they arrive at the host on its veth, which has no
    /// address, and the host's reverse-path filter (loose, as the daemon sets it) drops a packet that arrives on an
    /// address-less interface other than the one its source is routed by. So packets from this address look up a table of
    /// their own (number and rule priority: the metric) holding the gateway and default routes via this interface; the
    /// routes go with the interface, the rule is removed by DEL (<see cref="RemoveSourceRule"/>).
    /// </summary>
    private void RouteBySource(RouteNetlink pod, int podLinkIndex, IPAddress address, string netns)
    {
        var table = SecondaryMetricBase + (uint)podLinkIndex;
        var ifName = attachment.IfName;
        pod.AddRoute(new RouteSpec(PodAttachment.Gateway, 32, null, podLinkIndex, RouteValues.ProtocolBoot, Table: table),
            $"adding route {PodAttachment.Gateway}/32 dev {ifName} table {table} in {netns}");
        pod.AddRoute(new RouteSpec(DefaultDestination, 0, PodAttachment.Gateway, podLinkIndex, RouteValues.ProtocolBoot, Table: table),
            $"adding default route via {PodAttachment.Gateway} dev {ifName} table {table} in {netns}");
        var rule = new LookupRule(null, 0, table, table, address, 32);
        try
        {
            pod.AddRule(rule, $"adding rule from {address} lookup {table} in {netns}");
        }
        catch (NetlinkException e) when (e.Errno == Errno.EEXIST)
        {
            // The very rule, left by an earlier ADD of this attachment that was cut short: already so.
        }
    }

    /// <summary>
    /// DEL's part inside the pod: the source rule of a secondary attachment (<see cref="RouteBySource"/>), found by its
    /// interface's index, which the rule's table and priority carry. Nothing to do for a first attachment, or when the
    /// interface is already gone (its table went with it, so a rule left behind matches nothing).
    /// </summary>
    public void RemoveSourceRule(NetworkNamespace podNamespace)
    {
        using var podSocket = podNamespace.OpenNetlinkSocket();
        var pod = new RouteNetlink(podSocket);
        if (pod.FindLink(attachment.IfName, $"looking up {attachment.IfName} in {podNamespace.Path}") is not { } link) return;
        var table = SecondaryMetricBase + (uint)link.Index;
        foreach (var rule in pod.ListIPv4Rules($"listing rules in {podNamespace.Path}").Where(r => r.Table == table && r.Priority == table))
            pod.DeleteRule(rule, $"deleting rule from {rule.Source} lookup {table} in {podNamespace.Path}");
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
        var defaultRoute = pod.ListIPv4Routes($"CHECK: listing routes in {netns}").FirstOrDefault(route =>
            route.Table == RouteValues.TableMain && route.DestinationLength == 0 && PodAttachment.Gateway.Equals(route.Gateway)
                && route.OutputInterface == podLink.Index);
        if (defaultRoute is null)
            throw Missing(CniErrorCode.CheckAddressOrRouteMissing,
                $"default route via {PodAttachment.Gateway} dev {ifName} is missing in {netns}");
        var table = SecondaryMetricBase + (uint)podLink.Index;
        if (defaultRoute.Metric == table && !pod.ListIPv4Rules($"CHECK: listing rules in {netns}").Any(rule =>
                rule.Table == table && rule.SourceLength == 32 && address.Equals(rule.Source)))
            throw Missing(CniErrorCode.CheckAddressOrRouteMissing, $"rule from {address} lookup {table} is missing in {netns}");
        var hostRoute = host.ListIPv4Routes("CHECK: listing host routes").Any(route =>
            route.Table == RouteValues.TableMain && route.DestinationLength == 32 && address.Equals(route.Destination)
                && route.OutputInterface == hostLink.Index);
        if (!hostRoute) throw Missing(CniErrorCode.CheckAddressOrRouteMissing, $"host route {address}/32 dev {hostVeth} is missing");
    }

    private static CniException Missing(int code, string what) => new(code, $"CHECK: {what}");
}
