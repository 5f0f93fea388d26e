using System.Net;

namespace Romana.Cni.Netlink;

/// <summary>A link as RTM_GETLINK reports it.</summary>
internal sealed record LinkInfo(int Index, string Name, byte[] HardwareAddress, bool IsUp);

/// <summary>An IPv4 address as RTM_GETADDR reports it.</summary>
internal sealed record AddressInfo(int InterfaceIndex, IPAddress Local, int PrefixLength);

/// <summary>An IPv4 route as RTM_GETROUTE reports it; Destination is null for a default route.</summary>
internal sealed record RouteInfo(IPAddress? Destination, int DestinationLength, IPAddress? Gateway, int OutputInterface, uint Table, byte Protocol, byte Scope);

/// <summary>A route to add: on-link when Gateway is null (scope link), else via Gateway (scope universe).</summary>
internal sealed record RouteSpec(IPAddress Destination, int DestinationLength, IPAddress? Gateway, int OutputInterface, byte Protocol);

/// <summary>
/// The rtnetlink operations the plugin needs, over one socket (so in one namespace). Each takes the sentence that names
/// the operation for error messages ("adding address 100.64.0.5/32 to eth0 in /var/run/netns/x").
/// </summary>
internal sealed class RouteNetlink(NetlinkSocket socket)
{
    /// <summary>
    /// Creates a veth pair in one request: this end named <paramref name="hostName"/> with <paramref name="hostMac"/> here,
    /// the peer born inside the namespace <paramref name="peerNamespaceFd"/> with its final name, so it is never visible on the host.
    /// </summary>
    public void CreateVethPair(string hostName, byte[] hostMac, string peerName, int peerNamespaceFd, int? mtu, string operation)
    {
        var request = new NetlinkMessageBuilder(Rtm.NEWLINK, NlmFlags.Ack | NlmFlags.Create | NlmFlags.Excl)
            .Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC })
            .Attribute(Attr.IFLA_IFNAME, hostName)
            .Attribute(Attr.IFLA_ADDRESS, hostMac);
        if (mtu is { } hostMtu) request.Attribute(Attr.IFLA_MTU, (uint)hostMtu);
        var linkInfo = request.BeginNested(Attr.IFLA_LINKINFO);
        request.Attribute(Attr.IFLA_INFO_KIND, "veth");
        var infoData = request.BeginNested(Attr.IFLA_INFO_DATA);
        var peer = request.BeginNested(Attr.VETH_INFO_PEER);
        request.Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC })
            .Attribute(Attr.IFLA_IFNAME, peerName)
            .Attribute(Attr.IFLA_NET_NS_FD, (uint)peerNamespaceFd);
        if (mtu is { } peerMtu) request.Attribute(Attr.IFLA_MTU, (uint)peerMtu);
        request.EndNested(peer).EndNested(infoData).EndNested(linkInfo);
        socket.Execute(request, operation);
    }

    /// <summary>Deletes a link by name; false when there was none (ENODEV).</summary>
    public bool DeleteLink(string name, string operation)
    {
        var request = new NetlinkMessageBuilder(Rtm.DELLINK, NlmFlags.Ack)
            .Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC })
            .Attribute(Attr.IFLA_IFNAME, name);
        try
        {
            socket.Execute(request, operation);
            return true;
        }
        catch (NetlinkException e) when (e.Errno == Libc.ENODEV)
        {
            return false;
        }
    }

    /// <summary>The link of that name, or null when there is none.</summary>
    public LinkInfo? FindLink(string name, string operation)
    {
        var request = new NetlinkMessageBuilder(Rtm.GETLINK, NlmFlags.Ack)
            .Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC })
            .Attribute(Attr.IFLA_IFNAME, name);
        List<NetlinkMessage> replies;
        try
        {
            replies = socket.Get(request, operation);
        }
        catch (NetlinkException e) when (e.Errno == Libc.ENODEV)
        {
            return null;
        }
        return replies.FirstOrDefault(reply => reply.Type == Rtm.NEWLINK) is { } link ? ToLinkInfo(link) : null;
    }

    /// <summary>Every link of this namespace.</summary>
    public List<LinkInfo> ListLinks(string operation) =>
        socket.Dump(new NetlinkMessageBuilder(Rtm.GETLINK, NlmFlags.Dump).Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC }), operation)
            .Where(message => message.Type == Rtm.NEWLINK)
            .Select(ToLinkInfo)
            .ToList();

    private static LinkInfo ToLinkInfo(NetlinkMessage link)
    {
        var header = link.FamilyHeader<InterfaceInfoMessage>();
        var attributes = link.Attributes(InterfaceInfoMessage.Size);
        return new LinkInfo(header.Index, attributes.String(Attr.IFLA_IFNAME) ?? "", attributes.Bytes(Attr.IFLA_ADDRESS) ?? [], (header.Flags & LinkFlags.Up) != 0);
    }

    public void SetLinkUp(int index, string operation) =>
        socket.Execute(new NetlinkMessageBuilder(Rtm.NEWLINK, NlmFlags.Ack)
            .Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC, Index = index, Flags = LinkFlags.Up, Change = LinkFlags.Up }), operation);

    /// <summary>Sets a link up by name (no NLM_F_CREATE: an existing link is changed, a missing one is ENODEV).</summary>
    public void SetLinkUp(string name, string operation) =>
        socket.Execute(new NetlinkMessageBuilder(Rtm.NEWLINK, NlmFlags.Ack)
            .Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC, Flags = LinkFlags.Up, Change = LinkFlags.Up })
            .Attribute(Attr.IFLA_IFNAME, name), operation);

    public void AddAddress(int index, IPAddress address, int prefixLength, string operation) =>
        socket.Execute(new NetlinkMessageBuilder(Rtm.NEWADDR, NlmFlags.Ack | NlmFlags.Create | NlmFlags.Excl)
            .Append(new InterfaceAddressMessage { Family = Libc.AF_INET, PrefixLength = (byte)prefixLength, Scope = RouteValues.ScopeUniverse, Index = index })
            .Attribute(Attr.IFA_LOCAL, address)
            .Attribute(Attr.IFA_ADDRESS, address), operation);

    public void AddRoute(RouteSpec route, string operation)
    {
        var request = new NetlinkMessageBuilder(Rtm.NEWROUTE, NlmFlags.Ack | NlmFlags.Create | NlmFlags.Excl)
            .Append(new RouteMessage
            {
                Family = Libc.AF_INET,
                DestinationLength = (byte)route.DestinationLength,
                Table = RouteValues.TableMain,
                Protocol = route.Protocol,
                Scope = route.Gateway is null ? RouteValues.ScopeLink : RouteValues.ScopeUniverse,
                Type = RouteValues.TypeUnicast,
            });
        if (route.DestinationLength > 0) request.Attribute(Attr.RTA_DST, route.Destination);
        if (route.Gateway is { } gateway) request.Attribute(Attr.RTA_GATEWAY, gateway);
        request.Attribute(Attr.RTA_OIF, (uint)route.OutputInterface);
        socket.Execute(request, operation);
    }

    /// <summary>A PERMANENT neighbour entry (replacing any), so the address is never ARPed for.</summary>
    public void AddPermanentNeighbour(int index, IPAddress address, byte[] hardwareAddress, string operation) =>
        socket.Execute(new NetlinkMessageBuilder(Rtm.NEWNEIGH, NlmFlags.Ack | NlmFlags.Create | NlmFlags.Replace)
            .Append(new NeighbourMessage { Family = Libc.AF_INET, Index = index, State = NeighbourState.Permanent })
            .Attribute(Attr.NDA_DST, address)
            .Attribute(Attr.NDA_LLADDR, hardwareAddress), operation);

    public List<AddressInfo> ListIPv4Addresses(string operation) =>
        socket.Dump(new NetlinkMessageBuilder(Rtm.GETADDR, NlmFlags.Dump)
                .Append(new InterfaceAddressMessage { Family = Libc.AF_INET }), operation)
            .Where(message => message.Type == Rtm.NEWADDR)
            .Select(message =>
            {
                var header = message.FamilyHeader<InterfaceAddressMessage>();
                var attributes = message.Attributes(InterfaceAddressMessage.Size);
                var local = attributes.Address(Attr.IFA_LOCAL) ?? attributes.Address(Attr.IFA_ADDRESS) ?? IPAddress.Any;
                return new AddressInfo(header.Index, local, header.PrefixLength);
            })
            .ToList();

    public List<RouteInfo> ListIPv4Routes(string operation) =>
        socket.Dump(new NetlinkMessageBuilder(Rtm.GETROUTE, NlmFlags.Dump)
                .Append(new RouteMessage { Family = Libc.AF_INET }), operation)
            .Where(message => message.Type == Rtm.NEWROUTE)
            .Select(message =>
            {
                var header = message.FamilyHeader<RouteMessage>();
                var attributes = message.Attributes(RouteMessage.Size);
                return new RouteInfo(
                    attributes.Address(Attr.RTA_DST),
                    header.DestinationLength,
                    attributes.Address(Attr.RTA_GATEWAY),
                    (int)(attributes.UInt32(Attr.RTA_OIF) ?? 0),
                    attributes.UInt32(Attr.RTA_TABLE) ?? header.Table,
                    header.Protocol,
                    header.Scope);
            })
            .ToList();
}
