using Romana.Contracts.Cni;

namespace Romana.Cni.Plugin;

/// <summary>
/// The CNI_* environment variables of one invocation; required ones are checked by the command that needs them, by the
/// rules of <see cref="CniIdentifiers"/> (the daemon checks them again), and a bad value is code 4 naming the variable.
/// </summary>
internal sealed record CniEnvironment(string? Command, string? ContainerId, string? Netns, string? IfName, string? Args, string? Path)
{
    public static CniEnvironment FromProcess() => new(
        Read("CNI_COMMAND"), Read("CNI_CONTAINERID"), Read("CNI_NETNS"), Read("CNI_IFNAME"), Read("CNI_ARGS"), Read("CNI_PATH"));

    /// <summary>The spec's container id: an alphanumeric character, then alphanumerics, '_', '.' or '-' (at most 256).</summary>
    public string RequireContainerId() =>
        Valid("CNI_CONTAINERID", Require("CNI_CONTAINERID", ContainerId), CniIdentifiers.ContainerIdProblem);

    public string RequireNetns() => Require("CNI_NETNS", Netns);

    /// <summary>
    /// The pod-side interface name: a name the kernel takes as it is (1-15 printable ASCII characters, no '/', ':', '%' or
    /// space, not ".", "..", "all" or "default").
    /// </summary>
    public string RequireIfName() => Valid("CNI_IFNAME", Require("CNI_IFNAME", IfName), CniIdentifiers.InterfaceNameProblem);

    /// <summary>
    /// "namespace/name" from K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS, for the daemon's journal; null without them.
    /// Both are Kubernetes names (letters, digits, '.', '_', '-'; at most 253), since they go into the journal and the log.
    /// </summary>
    public string? PodName()
    {
        if (string.IsNullOrEmpty(Args)) return null;
        string? podNamespace = null, podName = null;
        foreach (var pair in Args.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=');
            if (equals <= 0)
                throw new CniException(CniErrorCode.InvalidEnvironment, $"CNI_ARGS: {Printable.Quote(pair)} is not KEY=VALUE");
            var key = pair[..equals];
            if (key == "K8S_POD_NAMESPACE") podNamespace = pair[(equals + 1)..];
            else if (key == "K8S_POD_NAME") podName = pair[(equals + 1)..];
        }
        if (podName is not { Length: > 0 }) return null;
        Valid("CNI_ARGS K8S_POD_NAME", podName, CniIdentifiers.PodNamePartProblem);
        if (podNamespace is { Length: > 0 }) Valid("CNI_ARGS K8S_POD_NAMESPACE", podNamespace, CniIdentifiers.PodNamePartProblem);
        return $"{(podNamespace is { Length: > 0 } ? podNamespace : "default")}/{podName}";
    }

    /// <summary>K8S_POD_UID from CNI_ARGS (the pod's uid, for the journal and the Pod watch); null without it.</summary>
    public string? PodUid()
    {
        if (string.IsNullOrEmpty(Args)) return null;
        foreach (var pair in Args.Split(';', StringSplitOptions.RemoveEmptyEntries))
            if (pair.StartsWith("K8S_POD_UID=", StringComparison.Ordinal) && pair["K8S_POD_UID=".Length..] is { Length: > 0 } uid)
                return Valid("CNI_ARGS K8S_POD_UID", uid, CniIdentifiers.PodUidProblem);
        return null;
    }

    /// <summary>DEL must get through whatever the arguments say: a pod name it cannot use is left out of the request.</summary>
    public string? PodNameIfValid()
    {
        try
        {
            return PodName();
        }
        catch (CniException)
        {
            return null;
        }
    }

    private static string Require(string variable, string? value) =>
        string.IsNullOrEmpty(value) ? throw new CniException(CniErrorCode.InvalidEnvironment, $"{variable} is not set") : value;

    private static string Valid(string variable, string value, Func<string, string?> problemOf) =>
        problemOf(value) is { } problem
            ? throw new CniException(CniErrorCode.InvalidEnvironment, $"{variable} {Printable.Quote(value)} {problem}")
            : value;

    private static string? Read(string variable) => Environment.GetEnvironmentVariable(variable);
}
