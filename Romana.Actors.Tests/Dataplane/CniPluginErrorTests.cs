using System.Text.Json.Nodes;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>
/// The plugin binary's answers to bad input and to a missing daemon:
/// the spec's error JSON on stdout, exit 1, never a stack trace.
/// </summary>
public class CniPluginErrorTests
{
    private static (int Exit, JsonObject Json, string Error) Invoke(string command, string config, string? containerId = "c1",
        string netns = "/proc/self/ns/net")
    {
        var environment = new Dictionary<string, string>
        {
            ["CNI_COMMAND"] = command, ["CNI_IFNAME"] = "eth0", ["CNI_NETNS"] = netns, ["CNI_PATH"] = CniRuntime.PluginFolder
        };
        if (containerId is not null) environment["CNI_CONTAINERID"] = containerId;
        var (exit, output, error) = NetnsLab.Exec(null, Path.Combine(CniRuntime.PluginFolder, "romana"), [], config, environment);
        Assert.DoesNotContain("   at ", output + error);
        return (exit, JsonNode.Parse(output)!.AsObject(), error);
    }

    private static string Config(string extra = "", string version = "1.0.0", string socket = "/nonexistent/romana/cni.sock") =>
        $$"""{"cniVersion":"{{version}}","name":"romana","type":"romana","daemonSocket":"{{socket}}"{{extra}}}""";

    private static void AssertError(int code, string mentions, (int Exit, JsonObject Json, string Error) outcome)
    {
        Assert.Equal(1, outcome.Exit);
        Assert.Equal(code, outcome.Json["code"]!.GetValue<int>());
        Assert.Contains(mentions, outcome.Json["msg"]!.GetValue<string>() + outcome.Json["details"]?.GetValue<string>());
    }

    [Fact]
    public void VERSION_names_the_spec_versions_it_speaks()
    {
        var (exit, json, _) = Invoke("VERSION", Config());
        Assert.Equal(0, exit);
        Assert.Equal(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
            json["supportedVersions"]!.AsArray().Select(v => v!.GetValue<string>()));
    }

    [Fact]
    public void A_missing_variable_is_code_4_naming_it() => AssertError(4, "CNI_CONTAINERID", Invoke("ADD", Config(), containerId: null));

    [Fact]
    public void Stdin_that_is_not_json_is_code_6() => AssertError(6, "", Invoke("ADD", "{not json"));

    [Fact]
    public void A_field_of_the_wrong_type_is_code_7_naming_field_and_value() =>
        AssertError(7, "mtu", Invoke("ADD", Config(""","mtu":"abc" """)));

    [Fact]
    public void An_unknown_spec_version_is_code_1() => AssertError(1, "0.2.0", Invoke("ADD", Config(version: "0.2.0")));

    [Fact]
    public void A_missing_daemon_is_code_11_naming_the_socket_for_ADD_and_DEL_and_50_for_STATUS()
    {
        using var folder = new TempFolder();
        var socket = Path.Combine(folder.Path, "cni.sock");
        AssertError(11, socket, Invoke("ADD", Config(socket: socket)));
        AssertError(11, socket, Invoke("DEL", Config(socket: socket)));
        AssertError(50, socket, Invoke("STATUS", Config(socket: socket)));
    }
}
