using System.Net;

namespace Romana.Netlink;

/// <summary>A link as RTM_GETLINK reports it.</summary>
public sealed record LinkInfo(int Index, string Name, byte[] HardwareAddress, bool IsUp);

/// <summary>An IPv4 address as RTM_GETADDR reports it.</summary>
public sealed record AddressInfo(int InterfaceIndex, IPAddress Local, int PrefixLength);

/// <summary>An IPv4 route as RTM_GETROUTE reports it; Destination is null for a default route.</summary>
public sealed record RouteInfo(
    IPAddress? Destination, int DestinationLength, IPAddress? Gateway, int OutputInterface, uint Table, byte Protocol, byte Scope,
    uint Metric = 0);

/// <summary>
/// A route to add: on-link when Gateway is null (scope link), else via Gateway (scope universe). OutputInterface 0 lets the
/// kernel pick the link that reaches the gateway, as <c>ip route add ... via</c> does. Protocol marks whose route it is.
/// Metric (RTA_PRIORITY) tells apart routes to the same destination in one table: lower is preferred.
/// </summary>
public sealed record RouteSpec(
    IPAddress Destination, int DestinationLength, IPAddress? Gateway, int OutputInterface, byte Protocol,
    uint Table = RouteValues.TableMain, uint Metric = 0);

/// <summary>
/// A policy rule "from Source/SourceLength to Destination/DestinationLength lookup Table priority Priority"; Destination and
/// Source are null for "all", Table 0 for a rule that looks up no table (blackhole, goto, ...).
/// </summary>
public sealed record LookupRule(IPAddress? Destination, int DestinationLength, uint Table, uint Priority, IPAddress? Source = null,
    int SourceLength = 0);

/// <summary>
/// The rtnetlink operations Romana needs, over one socket (so in one namespace). Each takes the sentence that names
/// the operation for error messages ("adding address 100.64.0.5/32 to eth0 in /var/run/netns/x").
/// </summary>
public sealed class RouteNetlink(NetlinkSocket socket)
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
        catch (NetlinkException e) when (e.Errno == Errno.ENODEV)
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
        catch (NetlinkException e) when (e.Errno == Errno.ENODEV)
        {
            return null;
        }
        return replies.FirstOrDefault(reply => reply.Type == Rtm.NEWLINK) is { } link ? ToLinkInfo(link) : null;
    }

    /// <summary>Every link of this namespace.</summary>
    public List<LinkInfo> ListLinks(string operation) =>
        socket.Dump(new NetlinkMessageBuilder(Rtm.GETLINK, NlmFlags.Dump)
                .Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC }), operation)
            .Where(message => message.Type == Rtm.NEWLINK)
            .Select(ToLinkInfo)
            .ToList();

    private static LinkInfo ToLinkInfo(NetlinkMessage link)
    {
        var header = link.FamilyHeader<InterfaceInfoMessage>();
        var attributes = link.Attributes(InterfaceInfoMessage.Size);
        var name = attributes.String(Attr.IFLA_IFNAME) ?? "";
        return new LinkInfo(header.Index, name, attributes.Bytes(Attr.IFLA_ADDRESS) ?? [], (header.Flags & LinkFlags.Up) != 0);
    }

    public void SetLinkUp(int index, string operation) =>
        socket.Execute(new NetlinkMessageBuilder(Rtm.NEWLINK, NlmFlags.Ack)
            .Append(new InterfaceInfoMessage
            {
                Family = Libc.AF_UNSPEC, Index = index, Flags = LinkFlags.Up, Change = LinkFlags.Up,
            }), operation);

    /// <summary>Sets a link up by name (no NLM_F_CREATE: an existing link is changed, a missing one is ENODEV).</summary>
    public void SetLinkUp(string name, string operation) =>
        socket.Execute(new NetlinkMessageBuilder(Rtm.NEWLINK, NlmFlags.Ack)
            .Append(new InterfaceInfoMessage { Family = Libc.AF_UNSPEC, Flags = LinkFlags.Up, Change = LinkFlags.Up })
            .Attribute(Attr.IFLA_IFNAME, name), operation);

    public void AddAddress(int index, IPAddress address, int prefixLength, string operation) =>
        socket.Execute(new NetlinkMessageBuilder(Rtm.NEWADDR, NlmFlags.Ack | NlmFlags.Create | NlmFlags.Excl)
            .Append(new InterfaceAddressMessage
            {
                Family = Libc.AF_INET, PrefixLength = (byte)prefixLength, Scope = RouteValues.ScopeUniverse, Index = index,
            })
            .Attribute(Attr.IFA_LOCAL, address)
            .Attribute(Attr.IFA_ADDRESS, address), operation);

    /// <summary>Adds a route; EEXIST when the table already has one to that destination.</summary>
    public void AddRoute(RouteSpec route, string operation) =>
        socket.Execute(RouteRequest(NlmFlags.Ack | NlmFlags.Create | NlmFlags.Excl, route), operation);

    /// <summary>
    /// Adds a route, or replaces the one to the same destination (and metric) in its table, as <c>ip route replace</c>: at no
    /// moment is there no route. The kernel replaces whatever route is there, whoever made it.
    /// </summary>
    public void ReplaceRoute(RouteSpec route, string operation) =>
        socket.Execute(RouteRequest(NlmFlags.Ack | NlmFlags.Create | NlmFlags.Replace, route), operation);

    private static NetlinkMessageBuilder RouteRequest(ushort flags, RouteSpec route)
    {
        var request = new NetlinkMessageBuilder(Rtm.NEWROUTE, flags)
            .Append(new RouteMessage
            {
                Family = Libc.AF_INET,
                DestinationLength = (byte)route.DestinationLength,
                Table = TableField(route.Table),
                Protocol = route.Protocol,
                Scope = route.Gateway is null ? RouteValues.ScopeLink : RouteValues.ScopeUniverse,
                Type = RouteValues.TypeUnicast,
            })
            .Attribute(Attr.RTA_TABLE, route.Table);
        if (route.DestinationLength > 0) request.Attribute(Attr.RTA_DST, route.Destination);
        if (route.Gateway is { } gateway) request.Attribute(Attr.RTA_GATEWAY, gateway);
        if (route.OutputInterface != 0) request.Attribute(Attr.RTA_OIF, (uint)route.OutputInterface);
        if (route.Metric != 0) request.Attribute(Attr.RTA_PRIORITY, route.Metric);
        return request;
    }

    /// <summary>
    /// The routing entry the kernel would send a packet to <paramref name="destination"/> by, as <c>ip route get fibmatch</c>
    /// finds it: policy rules applied, the entry itself with its own prefix length and table. Null when nothing routes it
    /// (unreachable, prohibited, blackholed, or no route at all).
    /// </summary>
    public RouteInfo? MatchRoute(IPAddress destination, string operation)
    {
        var request = new NetlinkMessageBuilder(Rtm.GETROUTE, NlmFlags.Ack)
            .Append(new RouteMessage { Family = Libc.AF_INET, DestinationLength = 32, Flags = RouteValues.FlagFibMatch })
            .Attribute(Attr.RTA_DST, destination);
        List<NetlinkMessage> replies;
        try
        {
            replies = socket.Get(request, operation);
        }
        catch (NetlinkException e) when (e.Errno is Errno.ENETUNREACH or Errno.EHOSTUNREACH or Errno.EACCES or Errno.EINVAL)
        {
            return null;
        }
        return replies.FirstOrDefault(reply => reply.Type == Rtm.NEWROUTE) is { } route ? ToRouteInfo(route) : null;
    }

    /// <summary>
    /// Deletes the route to <paramref name="destination"/>/<paramref name="destinationLength"/> in <paramref name="table"/>
    /// only if its protocol is <paramref name="protocol"/> (the kernel matches it), so a route someone else made to the same
    /// destination stays. False when there was no such route (ESRCH).
    /// </summary>
    public bool DeleteRoute(IPAddress destination, int destinationLength, uint table, byte protocol, string operation)
    {
        var request = new NetlinkMessageBuilder(Rtm.DELROUTE, NlmFlags.Ack)
            .Append(new RouteMessage
            {
                Family = Libc.AF_INET,
                DestinationLength = (byte)destinationLength,
                Table = TableField(table),
                Protocol = protocol,
                Scope = RouteValues.ScopeNowhere,
            })
            .Attribute(Attr.RTA_TABLE, table);
        if (destinationLength > 0) request.Attribute(Attr.RTA_DST, destination);
        try
        {
            socket.Execute(request, operation);
            return true;
        }
        catch (NetlinkException e) when (e.Errno == Errno.ESRCH)
        {
            return false;
        }
    }

    /// <summary>The byte-sized table field of rtmsg and fib_rule_hdr; the full id always goes in RTA_TABLE/FRA_TABLE too.</summary>
    private static byte TableField(uint table) => table < 256 ? (byte)table : RouteValues.TableUnspecified;

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

    /// <summary>The IPv4 routes of one table. The dump brings every table; the kernel filters only for strict-checking sockets.</summary>
    public List<RouteInfo> ListIPv4Routes(uint table, string operation) =>
        ListIPv4Routes(operation).Where(route => route.Table == table).ToList();

    /// <summary>Every IPv4 route of every table.</summary>
    public List<RouteInfo> ListIPv4Routes(string operation) =>
        socket.Dump(new NetlinkMessageBuilder(Rtm.GETROUTE, NlmFlags.Dump)
                .Append(new RouteMessage { Family = Libc.AF_INET }), operation)
            .Where(message => message.Type == Rtm.NEWROUTE)
            .Select(ToRouteInfo)
            .ToList();

    private static RouteInfo ToRouteInfo(NetlinkMessage message)
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
            header.Scope,
            attributes.UInt32(Attr.RTA_PRIORITY) ?? 0);
    }

    /// <summary>Every IPv4 policy rule (<c>ip rule show</c>).</summary>
    public List<LookupRule> ListIPv4Rules(string operation) =>
        socket.Dump(new NetlinkMessageBuilder(Rtm.GETRULE, NlmFlags.Dump).Append(new FibRuleHeader { Family = Libc.AF_INET }), operation)
            .Where(message => message.Type == Rtm.NEWRULE)
            .Select(message =>
            {
                var header = message.FamilyHeader<FibRuleHeader>();
                var attributes = message.Attributes(FibRuleHeader.Size);
                var table = header.Action == RouteValues.RuleActionToTable ? attributes.UInt32(Attr.FRA_TABLE) ?? header.Table : 0;
                // The kernel leaves FRA_PRIORITY out for priority 0 (the "lookup local" rule).
                var priority = attributes.UInt32(Attr.FRA_PRIORITY) ?? 0;
                return new LookupRule(attributes.Address(Attr.FRA_DST), header.DestinationLength, table, priority,
                    attributes.Address(Attr.FRA_SRC), header.SourceLength);
            })
            .ToList();

    /// <summary>Adds the rule (<c>ip rule add to D/L lookup T priority P</c>); EEXIST when the kernel already has that very rule.</summary>
    public void AddRule(LookupRule rule, string operation) =>
        socket.Execute(RuleRequest(Rtm.NEWRULE, NlmFlags.Ack | NlmFlags.Create | NlmFlags.Excl, rule), operation);

    /// <summary>Deletes the rule that matches all of <paramref name="rule"/>'s fields; false when there was none (ENOENT).</summary>
    public bool DeleteRule(LookupRule rule, string operation)
    {
        try
        {
            socket.Execute(RuleRequest(Rtm.DELRULE, NlmFlags.Ack, rule), operation);
            return true;
        }
        catch (NetlinkException e) when (e.Errno == Errno.ENOENT)
        {
            return false;
        }
    }

    private static NetlinkMessageBuilder RuleRequest(ushort type, ushort flags, LookupRule rule)
    {
        var request = new NetlinkMessageBuilder(type, flags)
            .Append(new FibRuleHeader
            {
                Family = Libc.AF_INET,
                DestinationLength = (byte)rule.DestinationLength,
                SourceLength = (byte)rule.SourceLength,
                Table = TableField(rule.Table),
                Action = RouteValues.RuleActionToTable,
            })
            .Attribute(Attr.FRA_TABLE, rule.Table)
            .Attribute(Attr.FRA_PRIORITY, rule.Priority);
        if (rule.Destination is { } destination && rule.DestinationLength > 0) request.Attribute(Attr.FRA_DST, destination);
        if (rule.Source is { } source && rule.SourceLength > 0) request.Attribute(Attr.FRA_SRC, source);
        return request;
    }
}
