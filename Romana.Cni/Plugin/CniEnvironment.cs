namespace Romana.Cni.Plugin;

/// <summary>The CNI_* environment variables of one invocation; required ones are checked by the command that needs them.</summary>
internal sealed record CniEnvironment(string? Command, string? ContainerId, string? Netns, string? IfName, string? Args, string? Path)
{
    public static CniEnvironment FromProcess() => new(
        Read("CNI_COMMAND"), Read("CNI_CONTAINERID"), Read("CNI_NETNS"), Read("CNI_IFNAME"), Read("CNI_ARGS"), Read("CNI_PATH"));

    public string RequireContainerId() => Require("CNI_CONTAINERID", ContainerId);

    public string RequireNetns() => Require("CNI_NETNS", Netns);

    /// <summary>
    /// The pod-side interface name:
    /// a valid Linux name (1-15 ASCII characters, no '/', ':' or whitespace, not "." or "..").
    /// </summary>
    public string RequireIfName()
    {
        var name = Require("CNI_IFNAME", IfName);
        if (name.Length > 15 || name is "." or ".." || name.Any(c => c is '/' or ':' || char.IsWhiteSpace(c) || c > 0x7e))
            throw new CniException(CniErrorCode.InvalidEnvironment,
                $"CNI_IFNAME '{name}' is not a valid interface name (1-15 ASCII characters, no '/', ':' or spaces)");
        return name;
    }

    /// <summary>
    /// "namespace/name" from K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS,
    /// for the daemon's journal; null without them.
    /// </summary>
    public string? PodName()
    {
        if (string.IsNullOrEmpty(Args)) return null;
        string? podNamespace = null, podName = null;
        foreach (var pair in Args.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=');
            if (equals <= 0) throw new CniException(CniErrorCode.InvalidEnvironment, $"CNI_ARGS: '{pair}' is not KEY=VALUE");
            var key = pair[..equals];
            if (key == "K8S_POD_NAMESPACE") podNamespace = pair[(equals + 1)..];
            else if (key == "K8S_POD_NAME") podName = pair[(equals + 1)..];
        }
        return podName is { Length: > 0 } ? $"{(podNamespace is { Length: > 0 } ? podNamespace : "default")}/{podName}" : null;
    }

    private static string Require(string variable, string? value) =>
        string.IsNullOrEmpty(value) ? throw new CniException(CniErrorCode.InvalidEnvironment, $"{variable} is not set") : value;

    private static string? Read(string variable) => Environment.GetEnvironmentVariable(variable);
}
