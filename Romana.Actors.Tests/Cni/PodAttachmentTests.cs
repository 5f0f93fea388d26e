using System.Text.RegularExpressions;
using Romana.Cni.Plugin;

namespace Romana.Actors.Tests.Cni;

/// <summary>
/// The host veth name is derived from the attachment alone, so ADD,
/// a retried ADD and DEL all find the same link without state.
/// </summary>
public partial class PodAttachmentTests
{
    [GeneratedRegex("^rmn[0-9a-f]{11}$")]
    private static partial Regex VethName();

    [Theory]
    [InlineData("c1", "eth0")]
    [InlineData("", "")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "net1")]
    [InlineData("container-ü-ß", "eth0")]
    public void The_host_veth_is_rmn_and_11_lowercase_hex_digits_within_the_kernels_15_characters(string containerId, string ifName)
    {
        var attachment = PodAttachment.For(containerId, ifName);
        Assert.Matches(VethName(), attachment.HostVeth);
        Assert.True(attachment.HostVeth.Length <= 15);
        Assert.Equal(containerId, attachment.ContainerId);
        Assert.Equal(ifName, attachment.IfName);
    }

    [Fact]
    public void The_same_attachment_always_gets_the_same_host_veth() =>
        Assert.Equal(PodAttachment.For("c1", "eth0").HostVeth, PodAttachment.For("c1", "eth0").HostVeth);

    /// <summary>
    /// Pinned values (FNV-1a 64 of "containerId/ifName", top 44 bits): a pod wired by one plugin build must be found by
    /// the DEL of the next, so the derivation must never change.
    /// </summary>
    [Theory]
    [InlineData("c1", "eth0", "rmn9e27a0abdbb")]
    [InlineData("abc", "eth0", "rmn561a69de51a")]
    public void The_host_veth_name_is_stable_across_builds(string containerId, string ifName, string expected) =>
        Assert.Equal(expected, PodAttachment.For(containerId, ifName).HostVeth);

    [Fact]
    public void Different_containers_or_interfaces_get_different_host_veths()
    {
        Assert.NotEqual(PodAttachment.For("c1", "eth0").HostVeth, PodAttachment.For("c2", "eth0").HostVeth);
        Assert.NotEqual(PodAttachment.For("c1", "eth0").HostVeth, PodAttachment.For("c1", "eth1").HostVeth);
    }

    [Fact]
    public void A_thousand_pods_on_a_node_get_a_thousand_distinct_host_veths()
    {
        var names = Enumerable.Range(0, 1000).Select(i => PodAttachment.For($"{i:x64}", "eth0").HostVeth).ToHashSet();
        Assert.Equal(1000, names.Count);
    }

    [Fact]
    public void FormatMac_writes_six_lowercase_two_digit_hex_bytes_joined_by_colons()
    {
        Assert.Equal("0a:00:ff:1b:c2:05", PodAttachment.FormatMac([0x0a, 0x00, 0xff, 0x1b, 0xc2, 0x05]));
        Assert.Equal(PodAttachment.HostMacText, PodAttachment.FormatMac(PodAttachment.HostMac));
    }
}
