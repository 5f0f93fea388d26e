using System.Text;
using System.Text.Json.Nodes;
using Romana.Contracts.Cni;

namespace Romana.Actors.Tests.Cni;

/// <summary>Plugin and daemon speak one JSON object on one line each way; anything else decodes to null, never an exception.</summary>
public class DaemonProtocolTests
{
    private static string Text(byte[] line) => Encoding.UTF8.GetString(line);

    [Fact]
    public void The_allocation_key_is_container_id_slash_interface() => Assert.Equal("c1/eth0", DaemonProtocol.KeyOf("c1", "eth0"));

    [Fact]
    public void A_request_is_one_line_of_camel_case_json_ending_in_a_newline()
    {
        var line = DaemonProtocol.Encode(new DaemonRequest(DaemonProtocol.Add, "c1", "eth0", Netns: "/var/run/netns/x", Pod: "web/api"));
        Assert.Equal((byte)'\n', line[^1]);
        Assert.Equal(1, line.Count(b => b == (byte)'\n'));
        var json = JsonNode.Parse(line)!.AsObject();
        Assert.Equal("ADD", json["command"]!.GetValue<string>());
        Assert.Equal("c1", json["containerId"]!.GetValue<string>());
        Assert.Equal("eth0", json["ifName"]!.GetValue<string>());
        Assert.Equal("/var/run/netns/x", json["netns"]!.GetValue<string>());
        Assert.Equal("web/api", json["pod"]!.GetValue<string>());
    }

    [Fact]
    public void Absent_optional_fields_are_left_out_of_the_line()
    {
        var json = JsonNode.Parse(DaemonProtocol.Encode(new DaemonRequest(DaemonProtocol.Del, "c1", "eth0")))!.AsObject();
        Assert.False(json.ContainsKey("netns"));
        Assert.False(json.ContainsKey("pod"));
        var reply = JsonNode.Parse(DaemonProtocol.Encode(new DaemonReply(true)))!.AsObject();
        Assert.Equal(["ok"], reply.Select(p => p.Key));
    }

    [Fact]
    public void Newlines_and_quotes_in_a_value_are_escaped_so_the_request_stays_one_line()
    {
        var line = DaemonProtocol.Encode(new DaemonRequest(DaemonProtocol.Add, "c\n1", "eth0", Pod: "we\"b/a\r\npi"));
        Assert.Equal(1, line.Count(b => b == (byte)'\n'));
        var decoded = DaemonProtocol.DecodeRequest(line)!;
        Assert.Equal("c\n1", decoded.ContainerId);
        Assert.Equal("we\"b/a\r\npi", decoded.Pod);
    }

    [Theory]
    [InlineData("ADD", "/var/run/netns/x", "web/api")]
    [InlineData("DEL", null, null)]
    [InlineData("CHECK", "/proc/1/ns/net", null)]
    [InlineData("STATUS", null, "ünïcode/pod")]
    public void A_request_decodes_to_what_was_encoded(string command, string? netns, string? pod)
    {
        var request = new DaemonRequest(command, "0123456789abcdef", "net1", Netns: netns, Pod: pod);
        var decoded = DaemonProtocol.DecodeRequest(DaemonProtocol.Encode(request));
        Assert.NotNull(decoded);
        Assert.Equal((command, "0123456789abcdef", "net1", netns, pod),
            (decoded.Command, decoded.ContainerId, decoded.IfName, decoded.Netns, decoded.Pod));
    }

    [Fact]
    public void A_reply_decodes_to_what_was_encoded()
    {
        var ok = DaemonProtocol.DecodeReply(DaemonProtocol.Encode(new DaemonReply(true, Address: "100.64.0.5")));
        Assert.NotNull(ok);
        Assert.Equal((true, "100.64.0.5", (string?)null, (string?)null), (ok.Ok, ok.Address, ok.Code, ok.Error));

        var failed = DaemonProtocol.DecodeReply(DaemonProtocol.Encode(DaemonReply.Failure("exhausted",
            "subnet 100.64.0.0/24: no address left")));
        Assert.NotNull(failed);
        Assert.Equal((false, (string?)null, "exhausted", "subnet 100.64.0.0/24: no address left"),
            (failed.Ok, failed.Address, failed.Code, failed.Error));
    }

    [Fact]
    public void A_line_without_its_newline_decodes_the_same() =>
        Assert.Equal("100.64.0.5", DaemonProtocol.DecodeReply("""{"ok":true,"address":"100.64.0.5"}"""u8)!.Address);

    [Theory]
    [InlineData("")]
    [InlineData("\n")]
    [InlineData("{not json")]
    [InlineData("{\"command\":\"ADD\",\"containerId\":\"c1\"")]
    [InlineData("[\"ADD\",\"c1\",\"eth0\"]")]
    [InlineData("\"ADD c1 eth0\"")]
    [InlineData("{\"command\":1,\"containerId\":\"c1\",\"ifName\":\"eth0\"}")]
    [InlineData("{\"command\":\"ADD\",\"containerId\":\"c1\",\"ifName\":\"eth0\"} {\"command\":\"DEL\"}")]
    [InlineData("null")]
    [InlineData("GET / HTTP/1.1")]
    [InlineData("{}")]
    [InlineData("{\"containerId\":\"c1\",\"ifName\":\"eth0\"}")]
    [InlineData("{\"command\":\"ADD\",\"containerId\":\"c1\",\"containerId\":\"c2\",\"ifName\":\"eth0\"}")]
    [InlineData("{\"command\":\"GC\",\"containerId\":\"\",\"ifName\":\"\",\"valid\":[\"c1/eth0\"],\"valid\":[]}")]
    public void A_malformed_request_line_decodes_to_null(string line) =>
        Assert.Null(DaemonProtocol.DecodeRequest(Encoding.UTF8.GetBytes(line)));

    [Theory]
    [InlineData("")]
    [InlineData("{\"ok\":\"yes\"}")]
    [InlineData("{\"ok\":true,\"address\":5}")]
    [InlineData("<html>")]
    [InlineData("null")]
    public void A_malformed_reply_line_decodes_to_null(string line) =>
        Assert.Null(DaemonProtocol.DecodeReply(Encoding.UTF8.GetBytes(line)));

    [Fact]
    public void Invalid_utf8_decodes_to_null() => Assert.Null(DaemonProtocol.DecodeRequest([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
}
