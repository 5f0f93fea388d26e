using System.Text.Json.Nodes;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// What a container runtime does with a conflist (libcni's part): runs each plugin of the chain with CNI_COMMAND,
/// CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH in its environment and its config on stdin, handing each plugin the
/// previous one's result as prevResult; DEL runs the chain backwards. The plugins run inside the node's namespace.
/// </summary>
public sealed class CniRuntime(string nodeNetns, string conflist)
{
    /// <summary>Romana's plugin, built with NativeAOT and installed by scripts/install-cni.sh, once per test run.</summary>
    public static string PluginFolder => Installed.Value;

    /// <summary>Romana's folder first, then the reference plugins of Debian's containernetworking-plugins.</summary>
    public static string CniPath => $"{PluginFolder}:/usr/lib/cni";

    public static string? WhyNoReferencePlugins => File.Exists("/usr/lib/cni/tuning") ? null
        : "the reference CNI plugins are missing (/usr/lib/cni): .ci/run installs Debian's containernetworking-plugins";

    private static readonly Lazy<string> Installed = new(() =>
    {
        var folder = Directory.CreateTempSubdirectory("romana-cni-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(folder, true);
        var (exit, output, error) = Processes.Run("bash", [Path.Combine(Paths.RepositoryRoot, "scripts", "install-cni.sh"), folder],
            timeout: TimeSpan.FromMinutes(10)); // a NativeAOT build: minutes on a busy 2-core machine
        return exit == 0 && File.Exists(Path.Combine(folder, "romana"))
            ? folder
            : throw new InvalidOperationException($"scripts/install-cni.sh failed ({exit}): {output}{error}");
    });

    public sealed record Outcome(int Exit, string Output, string Error)
    {
        public JsonObject Json => JsonNode.Parse(Output)!.AsObject();
        public bool Ok => Exit == 0;
        public override string ToString() => $"exit {Exit}: {Output}{Error}";
    }

    public Outcome Add(string containerId, string podNetns, string ifName = "eth0", JsonObject? runtimeConfig = null) =>
        Chain("ADD", containerId, podNetns, ifName, runtimeConfig, null);

    public Outcome Del(string containerId, string podNetns, JsonNode? result, string ifName = "eth0", JsonObject? runtimeConfig = null) =>
        Chain("DEL", containerId, podNetns, ifName, runtimeConfig, result);

    public Outcome Check(string containerId, string podNetns, JsonNode result, string ifName = "eth0") =>
        Chain("CHECK", containerId, podNetns, ifName, null, result);

    private Outcome Chain(string command, string containerId, string podNetns, string ifName, JsonObject? runtimeConfig, JsonNode? result)
    {
        var list = JsonNode.Parse(conflist)!.AsObject();
        var plugins = list["plugins"]!.AsArray().Select(p => p!.AsObject()).ToList();
        if (command == "DEL") plugins.Reverse();
        Outcome last = new(0, result?.ToJsonString() ?? "", "");
        foreach (var plugin in plugins)
        {
            var config = JsonNode.Parse(plugin.ToJsonString())!.AsObject();
            config["cniVersion"] = list["cniVersion"]!.GetValue<string>();
            config["name"] = list["name"]!.GetValue<string>();
            if (runtimeConfig is not null && config["capabilities"] is JsonObject capabilities)
                config["runtimeConfig"] = new JsonObject(runtimeConfig.Where(r => capabilities.ContainsKey(r.Key))
                    .Select(r => KeyValuePair.Create(r.Key, r.Value?.DeepClone())));
            if (result is not null) config["prevResult"] = result.DeepClone();
            last = Run(plugin["type"]!.GetValue<string>(), command, containerId, podNetns, ifName, config.ToJsonString());
            if (!last.Ok) return last;
            if (command == "ADD") result = JsonNode.Parse(last.Output);
        }
        return command == "ADD" ? last : new(0, "", last.Error);
    }

    /// <summary>
    /// Spec 1.1's GC of the first plugin (Romana's):
    /// only CNI_COMMAND and CNI_PATH, the attachments still valid in the config.
    /// </summary>
    public Outcome Gc(params (string ContainerId, string IfName)[] valid)
    {
        var list = JsonNode.Parse(conflist)!.AsObject();
        var config = list["plugins"]![0]!.DeepClone().AsObject();
        config["cniVersion"] = "1.1.0";
        config["name"] = list["name"]!.GetValue<string>();
        config["cni.dev/valid-attachments"] =
            new JsonArray([.. valid.Select(v => new JsonObject { ["containerID"] = v.ContainerId, ["ifname"] = v.IfName })]);
        return Invoke("romana", config.ToJsonString(), new Dictionary<string, string> { ["CNI_COMMAND"] = "GC", ["CNI_PATH"] = CniPath });
    }

    /// <summary>One plugin invocation, exactly as a runtime makes it.</summary>
    public Outcome Run(string type, string command, string containerId, string podNetns, string ifName, string config) =>
        Invoke(type, config, new Dictionary<string, string>
        {
            ["CNI_COMMAND"] = command,
            ["CNI_CONTAINERID"] = containerId,
            ["CNI_NETNS"] = NetnsLab.PathOf(podNetns),
            ["CNI_IFNAME"] = ifName,
            ["CNI_PATH"] = CniPath,
            ["CNI_ARGS"] = $"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={podNetns}",
        });

    private Outcome Invoke(string type, string config, Dictionary<string, string> environment)
    {
        var (exit, output, error) = NetnsLab.Exec(nodeNetns, Path.Combine(type == "romana" ? PluginFolder : "/usr/lib/cni", type), [],
            config, environment);
        return new Outcome(exit, output, error);
    }
}
