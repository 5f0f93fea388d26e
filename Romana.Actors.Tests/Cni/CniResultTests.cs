using System.Net;
using System.Text.Json.Nodes;
using Romana.Cni.Plugin;

namespace Romana.Actors.Tests.Cni;

/// <summary>ADD's result in each spec version's format, chained after a previous plugin's result, and CHECK's reading of it back.</summary>
public class CniResultTests
{
    private const string Netns = "/var/run/netns/pod1";
    private const string PodMac = "0a:58:64:40:00:05";
    private static readonly IPAddress Address = IPAddress.Parse("100.64.0.5");
    private static readonly PodAttachment Attachment = PodAttachment.For("c1", "eth0");

    private static JsonObject Json(string text) => JsonNode.Parse(text)!.AsObject();

    /// <summary>The result as the runtime will hand it back: written out and parsed again.</summary>
    private static JsonObject RoundTrip(JsonObject result) => Json(result.ToJsonString());

    private static JsonObject Add(string version = "1.0.0", JsonObject? prevResult = null) =>
        RoundTrip(CniResult.ForAdd(version, prevResult, Attachment, Netns, PodMac, Address));

    /// <summary>A bridge-like earlier plugin: two interfaces, one address on the second, a route and dns.</summary>
    private static JsonObject PreviousPlugin() => Json("""
        {
          "cniVersion": "1.0.0",
          "interfaces": [
            { "name": "cni0", "mac": "aa:bb:cc:00:00:01" },
            { "name": "net1", "mac": "aa:bb:cc:00:00:02", "sandbox": "/var/run/netns/pod1" }
          ],
          "ips": [ { "address": "10.1.0.7/24", "gateway": "10.1.0.1", "interface": 1 } ],
          "routes": [ { "dst": "10.1.0.0/16" } ],
          "dns": { "nameservers": [ "10.96.0.10" ], "search": [ "svc.cluster.local" ] }
        }
        """);

    [Fact]
    public void A_1_0_0_result_lists_host_veth_then_pod_interface_and_a_32_via_the_link_local_gateway()
    {
        var result = Add();
        Assert.Equal("1.0.0", result["cniVersion"]!.GetValue<string>());

        var interfaces = result["interfaces"]!.AsArray();
        Assert.Equal(2, interfaces.Count);
        Assert.Equal(Attachment.HostVeth, interfaces[0]!["name"]!.GetValue<string>());
        Assert.Equal("ee:ee:ee:ee:ee:ee", interfaces[0]!["mac"]!.GetValue<string>());
        Assert.Null(interfaces[0]!["sandbox"]);
        Assert.Equal("eth0", interfaces[1]!["name"]!.GetValue<string>());
        Assert.Equal(PodMac, interfaces[1]!["mac"]!.GetValue<string>());
        Assert.Equal(Netns, interfaces[1]!["sandbox"]!.GetValue<string>());

        var ip = Assert.Single(result["ips"]!.AsArray())!.AsObject();
        Assert.Equal("100.64.0.5/32", ip["address"]!.GetValue<string>());
        Assert.Equal("169.254.1.1", ip["gateway"]!.GetValue<string>());
        Assert.Equal(1, ip["interface"]!.GetValue<int>());

        var route = Assert.Single(result["routes"]!.AsArray())!.AsObject();
        Assert.Equal("0.0.0.0/0", route["dst"]!.GetValue<string>());
        Assert.Equal("169.254.1.1", route["gw"]!.GetValue<string>());

        Assert.Empty(result["dns"]!.AsObject());
    }

    [Fact]
    public void A_1_0_0_result_has_no_version_in_its_ips() =>
        Assert.False(Add("1.0.0")["ips"]![0]!.AsObject().ContainsKey("version"));

    [Theory]
    [InlineData("0.3.0")]
    [InlineData("0.3.1")]
    [InlineData("0.4.0")]
    public void A_pre_1_0_result_carries_version_4_in_its_ips_and_echoes_the_requested_version(string version)
    {
        var result = Add(version);
        Assert.Equal(version, result["cniVersion"]!.GetValue<string>());
        var ip = result["ips"]![0]!.AsObject();
        Assert.Equal("4", ip["version"]!.GetValue<string>());
        Assert.Equal("100.64.0.5/32", ip["address"]!.GetValue<string>());
        Assert.Equal(1, ip["interface"]!.GetValue<int>());
    }

    [Fact]
    public void Chained_after_a_prevResult_its_interfaces_ips_routes_and_dns_come_first_and_ours_are_appended()
    {
        var previous = PreviousPlugin();
        var result = Add(prevResult: previous);

        var names = result["interfaces"]!.AsArray().Select(i => i!["name"]!.GetValue<string>());
        Assert.Equal(["cni0", "net1", Attachment.HostVeth, "eth0"], names);
        Assert.Equal("/var/run/netns/pod1", result["interfaces"]![1]!["sandbox"]!.GetValue<string>());

        var ips = result["ips"]!.AsArray();
        Assert.Equal(2, ips.Count);
        Assert.True(JsonNode.DeepEquals(previous["ips"]![0], ips[0]), "the earlier plugin's ips entry must be kept unchanged");
        Assert.Equal("100.64.0.5/32", ips[1]!["address"]!.GetValue<string>());

        var routes = result["routes"]!.AsArray();
        Assert.Equal(2, routes.Count);
        Assert.Equal("10.1.0.0/16", routes[0]!["dst"]!.GetValue<string>());
        Assert.Equal("0.0.0.0/0", routes[1]!["dst"]!.GetValue<string>());

        Assert.True(JsonNode.DeepEquals(previous["dns"], result["dns"]), "dns of the prevResult must be kept");
    }

    [Fact]
    public void Chained_our_ips_entry_points_past_the_earlier_interfaces_at_our_pod_interface()
    {
        var result = Add(prevResult: PreviousPlugin());
        var index = result["ips"]![1]!["interface"]!.GetValue<int>();
        Assert.Equal(3, index);
        Assert.Equal("eth0", result["interfaces"]![index]!["name"]!.GetValue<string>());
    }

    [Fact]
    public void Merging_leaves_the_prevResult_untouched()
    {
        var previous = PreviousPlugin();
        var before = previous.ToJsonString();
        var result = CniResult.ForAdd("1.0.0", previous, Attachment, Netns, PodMac, Address);
        Assert.Equal(before, previous.ToJsonString());
        // The result owns copies: changing it does not reach back into the prevResult.
        result["dns"]!.AsObject()["nameservers"]!.AsArray().Add("1.1.1.1");
        Assert.Equal(before, previous.ToJsonString());
    }

    [Fact]
    public void A_prevResult_without_dns_gives_an_empty_dns_object() =>
        Assert.Empty(Add(prevResult: Json("""{"cniVersion":"1.0.0","interfaces":[{"name":"x"}]}"""))["dns"]!.AsObject());

    [Theory]
    [InlineData("interfaces")]
    [InlineData("ips")]
    [InlineData("routes")]
    public void A_prevResult_list_that_is_not_an_array_is_code_7_naming_it(string field)
    {
        var previous = Json($$"""{"{{field}}":{"a":1},"cniVersion":"1.0.0"}""");
        var error = Assert.Throws<CniException>(() => CniResult.ForAdd("1.0.0", previous, Attachment, Netns, PodMac, Address));
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains($"prevResult.{field} must be an array, got object", error.Message);
    }

    [Theory]
    [InlineData("1.0.0")]
    [InlineData("0.4.0")]
    public void CHECK_finds_the_address_ADD_reported(string version) =>
        Assert.Equal(Address, CniResult.RomanaAddress(Add(version), Attachment));

    [Fact]
    public void CHECK_finds_our_address_in_a_chained_result_and_not_the_earlier_plugins() =>
        Assert.Equal(Address, CniResult.RomanaAddress(Add(prevResult: PreviousPlugin()), Attachment));

    [Fact]
    public void CHECK_takes_the_pod_interface_after_our_host_veth_not_an_earlier_one_of_the_same_name()
    {
        // An earlier plugin's interface is also called eth0, with its own address: ours is the eth0 after our veth.
        var previous = Json("""
            {"cniVersion":"1.0.0",
             "interfaces":[{"name":"eth0","sandbox":"/var/run/netns/pod1"}],
             "ips":[{"address":"10.9.9.9/24","interface":0}]}
            """);
        Assert.Equal(Address, CniResult.RomanaAddress(Add(prevResult: previous), Attachment));
    }

    [Fact]
    public void CHECK_skips_an_IPv6_address_on_our_interface_and_takes_the_IPv4_one()
    {
        var prevResult = Json($$"""
            {"cniVersion":"1.0.0",
             "interfaces":[{"name":"{{Attachment.HostVeth}}"},{"name":"eth0"}],
             "ips":[{"address":"fd00::5/128","interface":1},{"address":"100.64.0.9/32","interface":1}]}
            """);
        Assert.Equal(IPAddress.Parse("100.64.0.9"), CniResult.RomanaAddress(prevResult, Attachment));
    }

    [Fact]
    public void CHECK_without_our_host_veth_in_prevResult_is_code_7_naming_the_veth()
    {
        var prevResult = Json(
            """{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"100.64.0.5/32","interface":0}]}""");
        var error = Assert.Throws<CniException>(() => CniResult.RomanaAddress(prevResult, Attachment));
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains($"no entry for the host veth {Attachment.HostVeth}", error.Message);
    }

    [Fact]
    public void CHECK_with_the_pod_interface_only_before_our_host_veth_is_code_7()
    {
        var prevResult = Json($$"""{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"},{"name":"{{Attachment.HostVeth}}"}],"ips":""" +
            $$"""[{"address":"100.64.0.5/32","interface":0}]}""");
        var error = Assert.Throws<CniException>(() => CniResult.RomanaAddress(prevResult, Attachment));
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains($"no entry for eth0 after {Attachment.HostVeth}", error.Message);
    }

    [Theory]
    [InlineData("""[]""")]
    [InlineData("""[{"address":"100.64.0.5/32","interface":0}]""")]
    [InlineData("""[{"address":"100.64.0.5/32","interface":"1"}]""")]
    [InlineData("""[{"address":"not an address","interface":1}]""")]
    [InlineData("""[{"address":"fd00::5/128","interface":1}]""")]
    public void CHECK_without_an_IPv4_address_on_our_pod_interface_is_code_7_naming_the_index(string ips)
    {
        var prevResult = Json(
            $$"""{"cniVersion":"1.0.0","interfaces":[{"name":"{{Attachment.HostVeth}}"},{"name":"eth0"}],"ips":{{ips}}}""");
        var error = Assert.Throws<CniException>(() => CniResult.RomanaAddress(prevResult, Attachment));
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("no IPv4 address for interface 1 (eth0)", error.Message);
    }
}
