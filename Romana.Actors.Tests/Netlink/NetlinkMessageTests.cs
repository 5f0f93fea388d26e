using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using Romana.Netlink;

namespace Romana.Actors.Tests.Netlink;

/// <summary>
/// The bytes of an rtnetlink request, checked against the kernel's format: a 16-byte nlmsghdr whose length covers the
/// whole message, a 4-byte aligned family header, rtattrs of a 4-byte header padded to 4 with zeroes, nested ones long
/// enough to cover their children; and the parsing of the kernel's answers.
/// </summary>
public class NetlinkMessageTests
{
    // Netlink is host byte order: read it as the kernel wrote it.
    private static ushort U16(ReadOnlySpan<byte> bytes, int offset) => BitConverter.ToUInt16(bytes[offset..]);
    private static uint U32(ReadOnlySpan<byte> bytes, int offset) => BitConverter.ToUInt32(bytes[offset..]);

    [Fact]
    public void The_fixed_headers_have_the_kernels_sizes()
    {
        Assert.Equal(16, Unsafe.SizeOf<NetlinkHeader>());
        Assert.Equal(16, Unsafe.SizeOf<InterfaceInfoMessage>());
        Assert.Equal(8, Unsafe.SizeOf<InterfaceAddressMessage>());
        Assert.Equal(12, Unsafe.SizeOf<RouteMessage>());
        Assert.Equal(12, Unsafe.SizeOf<NeighbourMessage>());
        Assert.Equal(12, Unsafe.SizeOf<FibRuleHeader>());
        Assert.Equal(NetlinkHeader.Size, Unsafe.SizeOf<NetlinkHeader>());
        Assert.Equal(InterfaceInfoMessage.Size, Unsafe.SizeOf<InterfaceInfoMessage>());
        Assert.Equal(InterfaceAddressMessage.Size, Unsafe.SizeOf<InterfaceAddressMessage>());
        Assert.Equal(RouteMessage.Size, Unsafe.SizeOf<RouteMessage>());
        Assert.Equal(NeighbourMessage.Size, Unsafe.SizeOf<NeighbourMessage>());
        Assert.Equal(FibRuleHeader.Size, Unsafe.SizeOf<FibRuleHeader>());
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 4)]
    [InlineData(4, 4)]
    [InlineData(5, 8)]
    [InlineData(19, 20)]
    [InlineData(20, 20)]
    public void Align_rounds_up_to_a_multiple_of_4(int length, int aligned) => Assert.Equal(aligned, NetlinkMessageBuilder.Align(length));

    [Fact]
    public void A_message_without_payload_is_a_bare_16_byte_header_with_the_request_flag_and_sequence()
    {
        var message = new NetlinkMessageBuilder(Rtm.GETLINK, NlmFlags.Dump).Seal(0xdeadbeef).ToArray();
        Assert.Equal(16, message.Length);
        Assert.Equal(16u, U32(message, 0));
        Assert.Equal(Rtm.GETLINK, U16(message, 4));
        Assert.Equal(NlmFlags.Dump | NlmFlags.Request, U16(message, 6));
        Assert.Equal(0xdeadbeefu, U32(message, 8));
        Assert.Equal(0u, U32(message, 12));
    }

    [Fact]
    public void An_address_request_lays_out_header_ifaddrmsg_and_two_4_byte_attributes_byte_by_byte()
    {
        var message = new NetlinkMessageBuilder(Rtm.NEWADDR, NlmFlags.Ack | NlmFlags.Create | NlmFlags.Excl)
            .Append(new InterfaceAddressMessage { Family = 2, PrefixLength = 32, Scope = 0, Index = 7 })
            .Attribute(Attr.IFA_LOCAL, IPAddress.Parse("100.64.0.5"))
            .Attribute(Attr.IFA_ADDRESS, IPAddress.Parse("100.64.0.5"))
            .Seal(1).ToArray();

        byte[] expected =
        [
            .. BitConverter.GetBytes(40u), .. BitConverter.GetBytes(Rtm.NEWADDR), .. BitConverter.GetBytes((ushort)0x605),
            .. BitConverter.GetBytes(1u), .. BitConverter.GetBytes(0u),
            2, 32, 0, 0, .. BitConverter.GetBytes(7),
            .. BitConverter.GetBytes((ushort)8), .. BitConverter.GetBytes(Attr.IFA_LOCAL), 100, 64, 0, 5,
            .. BitConverter.GetBytes((ushort)8), .. BitConverter.GetBytes(Attr.IFA_ADDRESS), 100, 64, 0, 5,
        ];
        Assert.Equal(expected, message);
    }

    [Fact]
    public void A_string_attribute_is_nul_terminated_its_length_unpadded_and_the_padding_zero()
    {
        var message = new NetlinkMessageBuilder(Rtm.GETLINK, 0)
            .Append(new InterfaceInfoMessage())
            .Attribute(Attr.IFLA_IFNAME, "eth0")
            .Attribute(Attr.IFLA_MTU, 1500u)
            .Seal(0).ToArray();

        // 16 header + 16 ifinfomsg + (4 + "eth0\0" = 9, padded to 12) + (4 + 4) = 52.
        Assert.Equal(52, message.Length);
        Assert.Equal(52u, U32(message, 0));
        Assert.Equal(9, U16(message, 32));
        Assert.Equal(Attr.IFLA_IFNAME, U16(message, 34));
        Assert.Equal("eth0\0"u8.ToArray(), message[36..41]);
        Assert.Equal(new byte[3], message[41..44]);
        Assert.Equal(8, U16(message, 44));
        Assert.Equal(Attr.IFLA_MTU, U16(message, 46));
        Assert.Equal(1500u, U32(message, 48));
    }

    [Fact]
    public void An_IPv6_address_attribute_carries_16_bytes()
    {
        var message = new NetlinkMessageBuilder(Rtm.NEWROUTE, 0)
            .Append(new RouteMessage())
            .Attribute(Attr.RTA_GATEWAY, IPAddress.Parse("fe80::1"))
            .Seal(0).ToArray();
        Assert.Equal(20, U16(message, 28));
        Assert.Equal(IPAddress.Parse("fe80::1").GetAddressBytes(), message[32..48]);
        Assert.Equal(48, message.Length);
    }

    /// <summary>The request RouteNetlink.CreateVethPair sends, built the same way.</summary>
    private static byte[] VethRequest(string hostName, string peerName, int? mtu)
    {
        var request = new NetlinkMessageBuilder(Rtm.NEWLINK, NlmFlags.Ack | NlmFlags.Create | NlmFlags.Excl)
            .Append(new InterfaceInfoMessage())
            .Attribute(Attr.IFLA_IFNAME, hostName)
            .Attribute(Attr.IFLA_ADDRESS, new byte[] { 0xee, 0xee, 0xee, 0xee, 0xee, 0xee });
        if (mtu is { } hostMtu) request.Attribute(Attr.IFLA_MTU, (uint)hostMtu);
        var linkInfo = request.BeginNested(Attr.IFLA_LINKINFO);
        request.Attribute(Attr.IFLA_INFO_KIND, "veth");
        var infoData = request.BeginNested(Attr.IFLA_INFO_DATA);
        var peer = request.BeginNested(Attr.VETH_INFO_PEER);
        request.Append(new InterfaceInfoMessage()).Attribute(Attr.IFLA_IFNAME, peerName).Attribute(Attr.IFLA_NET_NS_FD, 9u);
        if (mtu is { } peerMtu) request.Attribute(Attr.IFLA_MTU, (uint)peerMtu);
        request.EndNested(peer).EndNested(infoData).EndNested(linkInfo);
        return request.Seal(3).ToArray();
    }

    /// <summary>
    /// Walks one level of rtattrs as the kernel's nla_ok/nla_next do, checking each fits its parent, and returns
    /// (offset, length, type) of each.
    /// </summary>
    private static List<(int Offset, int Length, ushort Type)> Walk(byte[] message, int start, int end)
    {
        var found = new List<(int, int, ushort)>();
        var offset = start;
        while (offset < end)
        {
            Assert.True(end - offset >= 4, $"a partial rtattr header at {offset}");
            Assert.Equal(0, offset % 4);
            int length = U16(message, offset);
            Assert.True(length >= 4 && offset + length <= end,
                $"rtattr at {offset} of length {length} overruns its parent ending at {end}");
            found.Add((offset, length, U16(message, offset + 2)));
            offset += NetlinkMessageBuilder.Align(length);
        }
        Assert.Equal(end, offset);
        return found;
    }

    [Theory]
    [InlineData(null)]
    [InlineData(1450)]
    public void A_veth_request_has_nested_attributes_whose_lengths_cover_exactly_their_children(int? mtu)
    {
        var message = VethRequest("rmn9e27a0abdbb", "eth0", mtu);
        Assert.Equal(0, message.Length % 4);
        Assert.Equal((uint)message.Length, U32(message, 0));

        var top = Walk(message, 32, message.Length);
        int[] expectedTop = mtu is null
            ? [Attr.IFLA_IFNAME, Attr.IFLA_ADDRESS, Attr.IFLA_LINKINFO | Attr.NestedFlag]
            : [Attr.IFLA_IFNAME, Attr.IFLA_ADDRESS, Attr.IFLA_MTU, Attr.IFLA_LINKINFO | Attr.NestedFlag];
        Assert.Equal(expectedTop, top.Select(a => (int)a.Type));
        Assert.Equal(15 + 4, top[0].Length); // 14 characters and the NUL
        Assert.Equal(6 + 4, top[1].Length); // a MAC, not padded in the length

        var linkInfo = top[^1];
        Assert.Equal(message.Length, linkInfo.Offset + linkInfo.Length); // the last attribute ends the message
        var inLinkInfo = Walk(message, linkInfo.Offset + 4, linkInfo.Offset + linkInfo.Length);
        Assert.Equal(new[] { Attr.IFLA_INFO_KIND, Attr.IFLA_INFO_DATA | Attr.NestedFlag }, inLinkInfo.Select(a => (int)a.Type));
        Assert.Equal("veth\0"u8.ToArray(), message[(inLinkInfo[0].Offset + 4)..(inLinkInfo[0].Offset + inLinkInfo[0].Length)]);

        var infoData = inLinkInfo[1];
        var inInfoData = Walk(message, infoData.Offset + 4, infoData.Offset + infoData.Length);
        var peer = Assert.Single(inInfoData);
        Assert.Equal(Attr.VETH_INFO_PEER | Attr.NestedFlag, peer.Type);

        // VETH_INFO_PEER holds an ifinfomsg, then the peer's attributes.
        var peerAttributes = Walk(message, peer.Offset + 4 + 16, peer.Offset + peer.Length);
        ushort[] expectedPeer = mtu is null
            ? [Attr.IFLA_IFNAME, Attr.IFLA_NET_NS_FD]
            : [Attr.IFLA_IFNAME, Attr.IFLA_NET_NS_FD, Attr.IFLA_MTU];
        Assert.Equal(expectedPeer, peerAttributes.Select(a => a.Type));
        Assert.Equal(9u, U32(message, peerAttributes[1].Offset + 4));
        if (mtu is not null) Assert.Equal((uint)mtu, U32(message, peerAttributes[2].Offset + 4));
    }

    [Fact]
    public void A_message_past_the_initial_buffer_grows_and_keeps_what_was_written()
    {
        var big = Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray();
        var message = new NetlinkMessageBuilder(Rtm.NEWLINK, NlmFlags.Ack)
            .Append(new InterfaceInfoMessage { Index = 42 })
            .Attribute(Attr.IFLA_IFNAME, "eth0")
            .Attribute(1000, big)
            .Attribute(Attr.IFLA_MTU, 9000u)
            .Seal(77).ToArray();

        Assert.Equal(16 + 16 + 12 + 1004 + 8, message.Length);
        Assert.Equal((uint)message.Length, U32(message, 0));
        Assert.Equal(Rtm.NEWLINK, U16(message, 4));
        Assert.Equal(77u, U32(message, 8));
        Assert.Equal(42, BitConverter.ToInt32(message, 20));
        var attributes = NetlinkAttributes.Parse(message.AsSpan(32));
        Assert.Equal("eth0", attributes.String(Attr.IFLA_IFNAME));
        Assert.Equal(big, attributes.Bytes(1000));
        Assert.Equal(9000u, attributes.UInt32(Attr.IFLA_MTU));
    }

    [Fact]
    public void A_built_message_parses_back_to_its_family_header_and_attributes_nested_ones_included()
    {
        var bytes = VethRequest("rmn9e27a0abdbb", "eth0", 1450);
        var message = new NetlinkMessage(U16(bytes, 4), U16(bytes, 6), bytes[16..]);
        Assert.Equal(0, message.FamilyHeader<InterfaceInfoMessage>().Index);

        var attributes = message.Attributes(InterfaceInfoMessage.Size);
        Assert.Equal("rmn9e27a0abdbb", attributes.String(Attr.IFLA_IFNAME));
        Assert.Equal(new byte[] { 0xee, 0xee, 0xee, 0xee, 0xee, 0xee }, attributes.Bytes(Attr.IFLA_ADDRESS));
        Assert.Equal(1450u, attributes.UInt32(Attr.IFLA_MTU));

        // The nested flag is masked off the type, so IFLA_LINKINFO is found by its number.
        var linkInfo = NetlinkAttributes.Parse(attributes.Bytes(Attr.IFLA_LINKINFO));
        Assert.Equal("veth", linkInfo.String(Attr.IFLA_INFO_KIND));
        var peer = NetlinkAttributes.Parse(NetlinkAttributes.Parse(linkInfo.Bytes(Attr.IFLA_INFO_DATA)).Bytes(Attr.VETH_INFO_PEER)
            .AsSpan(16));
        Assert.Equal("eth0", peer.String(Attr.IFLA_IFNAME));
        Assert.Equal(9u, peer.UInt32(Attr.IFLA_NET_NS_FD));
    }

    [Fact]
    public void The_family_header_reads_back_the_kernels_fields()
    {
        var bytes = new NetlinkMessageBuilder(Rtm.NEWROUTE, 0)
            .Append(new RouteMessage { Family = 2, DestinationLength = 32, Table = 254, Protocol = 82, Scope = 253, Type = 1 })
            .Attribute(Attr.RTA_DST, IPAddress.Parse("100.64.0.5"))
            .Attribute(Attr.RTA_OIF, 12u)
            .Seal(0).ToArray();
        Assert.Equal(new byte[] { 2, 32, 0, 0, 254, 82, 253, 1, 0, 0, 0, 0 }, bytes[16..28]);

        var message = new NetlinkMessage(Rtm.NEWROUTE, 0, bytes[16..]);
        var header = message.FamilyHeader<RouteMessage>();
        Assert.Equal(((byte)32, (byte)254, (byte)82, (byte)253), (header.DestinationLength, header.Table, header.Protocol, header.Scope));
        var attributes = message.Attributes(RouteMessage.Size);
        Assert.Equal(IPAddress.Parse("100.64.0.5"), attributes.Address(Attr.RTA_DST));
        Assert.Equal(12u, attributes.UInt32(Attr.RTA_OIF));
        Assert.Null(attributes.Address(Attr.RTA_GATEWAY));
    }

    private static byte[] RawAttribute(ushort length, ushort type, params byte[] value) =>
        [.. BitConverter.GetBytes(length), .. BitConverter.GetBytes(type), .. value];

    [Fact]
    public void A_later_duplicate_attribute_wins()
    {
        byte[] data = [.. RawAttribute(8, 4, 1, 0, 0, 0), .. RawAttribute(8, 4, 2, 0, 0, 0)];
        Assert.Equal(2u, NetlinkAttributes.Parse(data).UInt32(4));
    }

    [Fact]
    public void Parsing_stops_at_an_attribute_that_overruns_the_data_and_keeps_the_ones_before()
    {
        byte[] data = [.. RawAttribute(8, 4, 1, 0, 0, 0), .. RawAttribute(12, 5, 9, 9, 9, 9)];
        var attributes = NetlinkAttributes.Parse(data);
        Assert.Equal(1u, attributes.UInt32(4));
        Assert.Null(attributes.Bytes(5));
    }

    [Fact]
    public void Parsing_stops_at_an_attribute_shorter_than_its_header()
    {
        byte[] data = [.. RawAttribute(2, 4, 0, 0), .. RawAttribute(8, 5, 1, 0, 0, 0)];
        var attributes = NetlinkAttributes.Parse(data);
        Assert.Null(attributes.Bytes(4));
        Assert.Null(attributes.Bytes(5));
    }

    [Fact]
    public void The_last_attribute_may_end_without_its_padding()
    {
        // A 5-byte attribute (one byte of value) as the last thing in the buffer: no padding follows.
        byte[] data = [.. RawAttribute(8, 4, 7, 0, 0, 0), .. RawAttribute(5, 6, 0x2a)];
        var attributes = NetlinkAttributes.Parse(data);
        Assert.Equal(7u, attributes.UInt32(4));
        Assert.Equal(new byte[] { 0x2a }, attributes.Bytes(6));
    }

    [Fact]
    public void Typed_readers_refuse_values_of_the_wrong_size()
    {
        byte[] data = [.. RawAttribute(6, 1, 1, 2, 0, 0), .. RawAttribute(9, 2, 1, 2, 3, 4, 5, 0, 0, 0), .. RawAttribute(4, 3)];
        var attributes = NetlinkAttributes.Parse(data);
        Assert.Null(attributes.UInt32(1)); // two bytes
        Assert.Null(attributes.Address(2)); // five bytes
        Assert.Empty(attributes.Bytes(3)!);
        Assert.Equal("", attributes.String(3));
        Assert.Null(attributes.String(99));
    }

    [Fact]
    public void A_string_attribute_reads_without_its_nul_padding() =>
        Assert.Equal("lo", NetlinkAttributes.Parse(RawAttribute(8, 3, (byte)'l', (byte)'o', 0, 0)).String(3));

    [Fact]
    public void A_kernel_string_attribute_of_non_ascii_utf8_reads_back() =>
        Assert.Equal("vé", NetlinkAttributes.Parse(RawAttribute(8, 3, [.. Encoding.UTF8.GetBytes("vé"), 0])).String(3));
}
