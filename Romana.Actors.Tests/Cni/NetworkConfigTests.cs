using System.Text;
using System.Text.Json.Nodes;
using Romana.Cni.Plugin;

namespace Romana.Actors.Tests.Cni;

/// <summary>
/// The plugin's network configuration as it arrives on stdin:
/// decoding (code 6), then field by field validation (codes 1 and 7).
/// </summary>
public class NetworkConfigTests
{
    private static JsonObject Json(string text) => JsonNode.Parse(text)!.AsObject();

    private static NetworkConfig From(string extra = "", string version = "1.0.0") =>
        NetworkConfig.From(Json($$"""{"cniVersion":"{{version}}","name":"romana","type":"romana"{{extra}}}"""));

    private static CniException Refused(string extra, string version = "1.0.0") => Assert.Throws<CniException>(() => From(extra, version));

    [Fact]
    public void Stdin_that_is_not_json_is_code_6_with_the_line_of_the_error()
    {
        var error = Assert.Throws<CniException>(() => NetworkConfig.ParseObject(Encoding.UTF8.GetBytes(
            "{\"cniVersion\":\"1.0.0\",\n  oops}")));
        Assert.Equal(CniErrorCode.DecodingFailure, error.Code);
        Assert.Contains("line 2", error.Message);
    }

    [Fact]
    public void Empty_stdin_is_code_6() =>
        Assert.Equal(CniErrorCode.DecodingFailure, Assert.Throws<CniException>(() => NetworkConfig.ParseObject([])).Code);

    [Theory]
    [InlineData("[1,2]", "array")]
    [InlineData("null", "null")]
    [InlineData("\"romana\"", "string")]
    [InlineData("42", "number")]
    public void Json_that_is_not_an_object_is_code_6_naming_what_it_got(string stdin, string kind)
    {
        var error = Assert.Throws<CniException>(() => NetworkConfig.ParseObject(Encoding.UTF8.GetBytes(stdin)));
        Assert.Equal(CniErrorCode.DecodingFailure, error.Code);
        Assert.EndsWith($"got {kind}", error.Message);
    }

    [Fact]
    public void An_object_on_stdin_is_returned_with_its_fields()
    {
        var config = NetworkConfig.ParseObject(Encoding.UTF8.GetBytes("""{"cniVersion":"0.4.0","name":"n"}"""));
        Assert.Equal("0.4.0", config["cniVersion"]!.GetValue<string>());
        Assert.Equal("n", config["name"]!.GetValue<string>());
    }

    [Fact]
    public void PeekVersion_reads_a_string_cniVersion_and_ignores_any_other_type()
    {
        Assert.Equal("0.3.1", NetworkConfig.PeekVersion(Json("""{"cniVersion":"0.3.1"}""")));
        Assert.Null(NetworkConfig.PeekVersion(Json("""{"cniVersion":1}""")));
        Assert.Null(NetworkConfig.PeekVersion(Json("""{"name":"romana"}""")));
    }

    [Fact]
    public void A_minimal_configuration_gets_the_default_socket_no_mtu_and_no_prevResult()
    {
        var config = From();
        Assert.Equal("1.0.0", config.CniVersion);
        Assert.Equal("romana", config.Name);
        Assert.Equal("/run/romana/cni.sock", config.DaemonSocket);
        Assert.Equal(NetworkConfig.DefaultDaemonSocket, config.DaemonSocket);
        Assert.Null(config.Mtu);
        Assert.Null(config.PrevResult);
    }

    [Theory]
    [InlineData("0.3.0")]
    [InlineData("0.3.1")]
    [InlineData("0.4.0")]
    [InlineData("1.0.0")]
    public void Each_version_the_plugin_has_always_spoken_is_accepted_and_kept(string version) =>
        Assert.Equal(version, From(version: version).CniVersion);

    [Theory]
    [InlineData("0.2.0")]
    [InlineData("0.1.0")]
    [InlineData("2.0.0")]
    [InlineData("1.0")]
    public void An_unknown_cniVersion_is_code_1_naming_it(string version)
    {
        var error = Refused("", version);
        Assert.Equal(CniErrorCode.IncompatibleVersion, error.Code);
        Assert.Contains(version, error.Message);
    }

    [Fact]
    public void A_missing_cniVersion_is_code_7_naming_the_field()
    {
        var error = Assert.Throws<CniException>(() => NetworkConfig.From(Json("""{"name":"romana"}""")));
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("cniVersion is missing or empty", error.Message);
    }

    [Fact]
    public void A_cniVersion_that_is_not_a_string_is_code_7_naming_field_and_value()
    {
        var error = Assert.Throws<CniException>(() => NetworkConfig.From(Json("""{"cniVersion":1.0,"name":"romana"}""")));
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("cniVersion must be a string, got 1.0", error.Message);
    }

    [Theory]
    [InlineData("""{"cniVersion":"1.0.0"}""")]
    [InlineData("""{"cniVersion":"1.0.0","name":""}""")]
    public void A_missing_or_empty_name_is_code_7(string json)
    {
        var error = Assert.Throws<CniException>(() => NetworkConfig.From(Json(json)));
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("name is missing or empty", error.Message);
    }

    [Fact]
    public void A_name_that_is_not_a_string_is_code_7_naming_field_and_value()
    {
        var error = Assert.Throws<CniException>(() => NetworkConfig.From(Json("""{"cniVersion":"1.0.0","name":["a"]}""")));
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("name must be a string, got [\"a\"]", error.Message);
    }

    [Fact]
    public void Unknown_fields_are_ignored()
    {
        var config = From(""","runtimeConfig":{"portMappings":[]},"capabilities":{"portMappings":true},"args":{"cni":{"x":1}},"ipam":{}""");
        Assert.Equal("romana", config.Name);
    }

    [Fact]
    public void A_given_absolute_daemonSocket_is_kept() =>
        Assert.Equal("/var/run/other/romana.sock", From(""","daemonSocket":"/var/run/other/romana.sock" """).DaemonSocket);

    [Theory]
    [InlineData("run/romana/cni.sock")]
    [InlineData("./cni.sock")]
    [InlineData("")]
    public void A_relative_or_empty_daemonSocket_is_code_7_naming_it(string socket)
    {
        var error = Refused($$""","daemonSocket":"{{socket}}" """);
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains($"daemonSocket must be an absolute path, got \"{socket}\"", error.Message);
    }

    [Fact]
    public void A_daemonSocket_that_is_not_a_string_is_code_7() =>
        Assert.Contains("daemonSocket must be a string, got 5", Refused(""","daemonSocket":5""").Message);

    [Fact]
    public void A_daemonSocket_of_107_bytes_fits_sun_path_and_one_of_108_does_not()
    {
        var fits = "/" + new string('s', 106);
        Assert.Equal(fits, From($$""","daemonSocket":"{{fits}}" """).DaemonSocket);
        var tooLong = fits + "s";
        var error = Refused($$""","daemonSocket":"{{tooLong}}" """);
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("longer than a Unix socket path may be", error.Message);
    }

    [Fact]
    public void The_daemonSocket_limit_counts_utf8_bytes_not_characters()
    {
        // 54 characters, 106 bytes + "/" = 107 bytes: fits. One more two-byte character: 109 bytes.
        var fits = "/" + new string('é', 53);
        Assert.Equal(fits, From($$""","daemonSocket":"{{fits}}" """).DaemonSocket);
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, Refused($$""","daemonSocket":"{{fits}}é" """).Code);
    }

    [Theory]
    [InlineData(68)]
    [InlineData(1500)]
    [InlineData(9001)]
    [InlineData(65535)]
    public void An_mtu_from_68_to_65535_is_kept(int mtu) => Assert.Equal(mtu, From($""","mtu":{mtu}""").Mtu);

    [Theory]
    [InlineData("67")]
    [InlineData("0")]
    [InlineData("-1500")]
    [InlineData("65536")]
    [InlineData("4294967296")]
    [InlineData("1500.5")]
    [InlineData("\"1500\"")]
    [InlineData("true")]
    [InlineData("{}")]
    public void An_mtu_out_of_range_or_not_an_integer_is_code_7_naming_the_value(string mtu)
    {
        var error = Refused($""","mtu":{mtu}""");
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains($"mtu must be an integer from 68 to 65535, got {mtu}", error.Message);
    }

    [Fact]
    public void A_json_null_mtu_counts_as_absent() => Assert.Null(From(""","mtu":null""").Mtu);

    [Fact]
    public void A_prevResult_object_is_kept_with_its_content()
    {
        var config = From(""","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[]}""");
        Assert.NotNull(config.PrevResult);
        Assert.Equal("eth0", config.PrevResult!["interfaces"]![0]!["name"]!.GetValue<string>());
    }

    [Fact]
    public void A_prevResult_that_is_not_an_object_is_code_7_naming_it()
    {
        var error = Refused(""","prevResult":[1,2,3]""");
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("prevResult must be an object, got [1,2,3]", error.Message);
    }

    [Fact]
    public void A_long_wrong_prevResult_is_shortened_to_80_characters_in_the_message()
    {
        var long_ = "\"" + new string('x', 200) + "\"";
        var error = Refused($""","prevResult":{long_}""");
        Assert.Contains("got \"" + new string('x', 79) + "...", error.Message);
        Assert.DoesNotContain(new string('x', 80), error.Message);
    }

    /// <summary>
    /// A key given twice has no meaning in the spec, and two readers may take different ones (the first, the last): it is a
    /// decoding failure, code 6, at any depth.
    /// </summary>
    [Theory]
    [InlineData("""{"cniVersion":"1.0.0","name":"romana","daemonSocket":"/a.sock","daemonSocket":"/b.sock"}""")]
    [InlineData("""{"cniVersion":"1.0.0","cniVersion":"1.0.0","name":"romana"}""")]
    [InlineData("""{"cniVersion":"1.0.0","name":"romana","prevResult":{"ips":[],"ips":[]}}""")]
    public void A_key_given_twice_is_code_6(string stdin)
    {
        var error = Assert.Throws<CniException>(() => NetworkConfig.From(NetworkConfig.ParseObject(Encoding.UTF8.GetBytes(stdin))));
        Assert.Equal(CniErrorCode.DecodingFailure, error.Code);
        Assert.Contains("twice", error.Message);
    }

    /// <summary>A NUL ends a C string: the socket path would be cut there and another socket used.</summary>
    [Fact]
    public void A_daemonSocket_with_an_embedded_NUL_is_code_7()
    {
        var error = Refused(""","daemonSocket":"/tmp/romana.sock\u0000/run/romana/cni.sock" """);
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("daemonSocket", error.Message);
        Assert.Contains("NUL", error.Message);
        Assert.DoesNotContain('\0', error.Message);
    }

    /// <summary>Whatever a message quotes of the input, it quotes at most a few hundred characters of it.</summary>
    [Theory]
    [InlineData(""","mtu":"VALUE" """)]
    [InlineData(""","daemonSocket":"VALUE" """)]
    [InlineData(""","daemonSocket":["VALUE"]""")]
    [InlineData(""","prevResult":"VALUE" """)]
    [InlineData(""","cni.dev/valid-attachments":[{"containerID":"VALUE"}]""")]
    public void A_message_quoting_a_6_MB_value_stays_short(string extra)
    {
        var error = Refused(extra.Replace("VALUE", new string('v', 6_000_000)));
        Assert.InRange(error.Message.Length, 1, 400);
    }

    [Fact]
    public void A_6_MB_cniVersion_is_code_1_with_a_short_message()
    {
        var version = new string('1', 6_000_000);
        var error = Assert.Throws<CniException>(() => NetworkConfig.From(Json($$"""{"cniVersion":"{{version}}","name":"r"}""")));
        Assert.Equal(CniErrorCode.IncompatibleVersion, error.Code);
        Assert.InRange(error.Message.Length, 1, 400);
    }

    /// <summary>GC's list names attachments by the same rules as CNI_CONTAINERID and CNI_IFNAME: "k/a"+"b" would be "k"+"a/b".</summary>
    [Theory]
    [InlineData("k/a", "b")]
    [InlineData("k", "a/b")]
    [InlineData("c1\\n", "eth0")]
    [InlineData("c1", "all")]
    public void A_valid_attachment_that_no_runtime_could_have_made_is_code_7(string containerId, string ifName)
    {
        var error = Refused($$"""
            ,"cni.dev/valid-attachments":[{"containerID":"c0","ifname":"eth0"},{"containerID":"{{containerId}}","ifname":"{{ifName}}"}]
            """, "1.1.0");
        Assert.Equal(CniErrorCode.InvalidNetworkConfig, error.Code);
        Assert.Contains("cni.dev/valid-attachments[1]", error.Message);
    }
}
