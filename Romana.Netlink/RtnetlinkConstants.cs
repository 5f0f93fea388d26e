using System.Runtime.InteropServices;

namespace Romana.Netlink;

/// <summary>
/// Message types, flags and attribute numbers from linux/netlink.h, rtnetlink.h, if_link.h, veth.h, neighbour.h,
/// fib_rules.h.
/// </summary>
internal static class Rtm
{
    public const ushort NLMSG_ERROR = 2;
    public const ushort NLMSG_DONE = 3;

    public const ushort NEWLINK = 16;
    public const ushort DELLINK = 17;
    public const ushort GETLINK = 18;
    public const ushort NEWADDR = 20;
    public const ushort GETADDR = 22;
    public const ushort NEWROUTE = 24;
    public const ushort DELROUTE = 25;
    public const ushort GETROUTE = 26;
    public const ushort NEWNEIGH = 28;
    public const ushort NEWRULE = 32;
    public const ushort DELRULE = 33;
    public const ushort GETRULE = 34;
}

internal static class NlmFlags
{
    public const ushort Request = 0x1;
    public const ushort Ack = 0x4;
    public const ushort Dump = 0x300;
    public const ushort Replace = 0x100;
    public const ushort Excl = 0x200;
    public const ushort Create = 0x400;

    /// <summary>In an NLMSG_ERROR: the original request is not echoed (NETLINK_CAP_ACK) / extended-ack attributes follow.</summary>
    public const ushort Capped = 0x100;
    public const ushort AckTlvs = 0x200;
}

internal static class Attr
{
    public const ushort NestedFlag = 0x8000;
    public const ushort TypeMask = 0x3fff;

    public const ushort IFLA_ADDRESS = 1;
    public const ushort IFLA_IFNAME = 3;
    public const ushort IFLA_MTU = 4;
    public const ushort IFLA_LINKINFO = 18;
    public const ushort IFLA_NET_NS_FD = 28;
    public const ushort IFLA_INFO_KIND = 1;
    public const ushort IFLA_INFO_DATA = 2;
    public const ushort VETH_INFO_PEER = 1;

    public const ushort IFA_ADDRESS = 1;
    public const ushort IFA_LOCAL = 2;

    public const ushort RTA_DST = 1;
    public const ushort RTA_OIF = 4;
    public const ushort RTA_GATEWAY = 5;
    public const ushort RTA_PRIORITY = 6;
    public const ushort RTA_TABLE = 15;

    public const ushort FRA_DST = 1;
    public const ushort FRA_SRC = 2;
    public const ushort FRA_PRIORITY = 6;
    public const ushort FRA_TABLE = 15;

    public const ushort NDA_DST = 1;
    public const ushort NDA_LLADDR = 2;

    public const ushort NLMSGERR_ATTR_MSG = 1;
}

/// <summary>Values of rtmsg and fib_rule_hdr fields (linux/rtnetlink.h, fib_rules.h).</summary>
public static class RouteValues
{
    /// <summary>rtm_table when the table is given by RTA_TABLE alone (ids above 255 do not fit the byte).</summary>
    public const byte TableUnspecified = 0;
    public const byte TableMain = 254;
    public const byte ProtocolBoot = 3;
    public const byte ScopeUniverse = 0;
    public const byte ScopeLink = 253;

    /// <summary>In a deletion: match a route of any scope.</summary>
    public const byte ScopeNowhere = 255;
    public const byte TypeUnicast = 1;

    /// <summary>FR_ACT_TO_TBL: a rule that looks up a table ("ip rule ... lookup N").</summary>
    public const byte RuleActionToTable = 1;

    /// <summary>RTM_F_FIB_MATCH in rtm_flags of a GETROUTE: answer with the matching table entry, not a computed route.</summary>
    public const uint FlagFibMatch = 0x2000;
}

internal static class LinkFlags
{
    public const uint Up = 0x1;
}

internal static class NeighbourState
{
    public const ushort Permanent = 0x80;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NetlinkHeader
{
    public const int Size = 16;
    public uint Length;
    public ushort Type;
    public ushort Flags;
    public uint Sequence;
    public uint PortId;
}

[StructLayout(LayoutKind.Sequential)]
internal struct InterfaceInfoMessage
{
    public const int Size = 16;
    public byte Family;
    public byte Padding;
    public ushort Type;
    public int Index;
    public uint Flags;
    public uint Change;
}

[StructLayout(LayoutKind.Sequential)]
internal struct InterfaceAddressMessage
{
    public const int Size = 8;
    public byte Family;
    public byte PrefixLength;
    public byte Flags;
    public byte Scope;
    public int Index;
}

[StructLayout(LayoutKind.Sequential)]
internal struct RouteMessage
{
    public const int Size = 12;
    public byte Family;
    public byte DestinationLength;
    public byte SourceLength;
    public byte Tos;
    public byte Table;
    public byte Protocol;
    public byte Scope;
    public byte Type;
    public uint Flags;
}

/// <summary>struct fib_rule_hdr: the fixed header of RTM_*RULE messages.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FibRuleHeader
{
    public const int Size = 12;
    public byte Family;
    public byte DestinationLength;
    public byte SourceLength;
    public byte Tos;
    public byte Table;
    public byte Reserved1;
    public byte Reserved2;
    public byte Action;
    public uint Flags;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NeighbourMessage
{
    public const int Size = 12;
    public byte Family;
    public byte Padding1;
    public ushort Padding2;
    public int Index;
    public ushort State;
    public byte Flags;
    public byte Type;
}
