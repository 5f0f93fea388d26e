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
        string netns = "/proc/self/ns/net", string ifName = "eth0")
    {
        var environment = new Dictionary<string, string>
        {
            ["CNI_COMMAND"] = command, ["CNI_IFNAME"] = ifName, ["CNI_NETNS"] = netns, ["CNI_PATH"] = CniRuntime.PluginFolder
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
        using var pod = new OtherNetworkNamespace();
        AssertError(11, socket, Invoke("ADD", Config(socket: socket), netns: pod.Path));
        AssertError(11, socket, Invoke("DEL", Config(socket: socket)));
        AssertError(50, socket, Invoke("STATUS", Config(socket: socket)));
    }

    /// <summary>
    /// CNI_NETNS must be a network namespace, and not the plugin's own (the node's): checked before the daemon is asked
    /// for anything, so with no daemon at all the answer is code 4 naming the variable, never "daemon unreachable".
    /// </summary>
    [Theory]
    [InlineData("regular file")]
    [InlineData("directory")]
    [InlineData("/proc/self/ns/mnt")]
    [InlineData("/proc/self/ns/net")]
    public void A_CNI_NETNS_that_is_no_pod_network_namespace_is_code_4_before_the_daemon_is_asked(string kind)
    {
        using var folder = new TempFolder();
        var netns = kind switch
        {
            "regular file" => folder.Write("netns", "not a namespace"),
            "directory" => folder.Path,
            _ => kind,
        };
        var outcome = Invoke("ADD", Config(), netns: netns);
        AssertError(4, "CNI_NETNS", outcome);
        AssertError(4, kind == "/proc/self/ns/net" ? "own" : "not a network namespace", outcome);
        AssertError(4, "CNI_NETNS", Invoke("CHECK", Config(""","prevResult":{"interfaces":[],"ips":[]}"""), netns: netns));
    }

    [Fact]
    public void A_container_id_of_100000_characters_is_code_4_naming_the_variable_in_a_short_message()
    {
        var outcome = Invoke("ADD", Config(), containerId: new string('a', 100_000));
        AssertError(4, "CNI_CONTAINERID", outcome);
        Assert.InRange(outcome.Json["msg"]!.GetValue<string>().Length, 1, 300);
    }

    [Theory]
    [InlineData("%d")]
    [InlineData("all")]
    [InlineData("eth\u00010")]
    public void An_interface_name_the_kernel_would_read_otherwise_is_code_4_before_the_daemon_is_asked(string ifName) =>
        AssertError(4, "CNI_IFNAME", Invoke("ADD", Config(), ifName: ifName));

    [Fact]
    public void A_key_given_twice_in_the_configuration_is_code_6() =>
        AssertError(6, "twice", Invoke("ADD", Config(""","mtu":1500,"mtu":9001""")));

    [Fact]
    public void A_daemonSocket_with_an_embedded_NUL_is_code_7_and_no_other_socket_is_tried() =>
        AssertError(7, "NUL", Invoke("DEL", Config(socket: "/nonexistent/romana.sock\\u0000/run/romana/cni.sock")));

    [Fact]
    public void A_daemonSocket_that_is_a_directory_is_said_to_be_one()
    {
        using var folder = new TempFolder();
        var outcome = Invoke("DEL", Config(socket: folder.Path));
        AssertError(11, "is a directory", outcome);
        Assert.DoesNotContain("no such socket", outcome.Json["msg"]!.GetValue<string>());
    }

    [Fact]
    public void A_6_MB_field_is_quoted_in_a_short_message()
    {
        var outcome = Invoke("ADD", Config($$""","mtu":"{{new string('9', 6_000_000)}}" """));
        AssertError(7, "mtu", outcome);
        Assert.InRange(outcome.Json["msg"]!.GetValue<string>().Length, 1, 400);
    }
}

/// <summary>
/// A network namespace that is not this process's, held by a sleeping `unshare --net` (with a user namespace when not
/// root), whose /proc/PID/ns/net is the path; the process is killed at the end.
/// </summary>
public sealed class OtherNetworkNamespace : IDisposable
{
    private readonly System.Diagnostics.Process _holder;

    public OtherNetworkNamespace()
    {
        var asRoot = Environment.UserName == "root";
        _holder = System.Diagnostics.Process.Start(Processes.Describe("unshare",
            asRoot ? ["--net", "sleep", "600"] : ["--net", "--map-root-user", "sleep", "600"]))!;
        Path = $"/proc/{_holder.Id}/ns/net";
        var own = File.ResolveLinkTarget("/proc/self/ns/net", false)?.ToString();
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (Target() is not { } target || target == own)
        {
            if (_holder.HasExited) throw new InvalidOperationException($"unshare --net exited {_holder.ExitCode}");
            if (deadline.Elapsed > TimeSpan.FromSeconds(10)) throw new TimeoutException("unshare --net did not enter a namespace");
            Thread.Sleep(10);
        }
    }

    public string Path { get; }

    private string? Target()
    {
        try { return File.ResolveLinkTarget(Path, false)?.ToString(); }
        catch (IOException) { return null; }
    }

    public void Dispose()
    {
        try { _holder.Kill(); _holder.WaitForExit(5000); }
        catch (InvalidOperationException) { }
        _holder.Dispose();
    }
}
