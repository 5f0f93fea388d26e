using System.Text.Json.Nodes;
using Romana.Cni.Daemon;
using Romana.Contracts.Cni;
using Romana.Netlink;

namespace Romana.Cni.Plugin;

/// <summary>
/// One invocation: reads the environment and the configuration, runs CNI_COMMAND, returns the JSON to print (null for
/// none). Failures are <see cref="CniException"/>s; system-call failures are turned into theirs here.
/// </summary>
internal sealed class CniPlugin(CniEnvironment environment, Func<byte[]> readStdin)
{
    /// <summary>The version to answer errors in: the request's when it is one we speak, else the latest.</summary>
    public string ResponseVersion { get; private set; } = CniVersions.Latest;

    public JsonObject? Run()
    {
        var command = environment.Command;
        if (string.IsNullOrEmpty(command)) throw new CniException(CniErrorCode.InvalidEnvironment, "CNI_COMMAND is not set");
        try
        {
            return command switch
            {
                "VERSION" => Version(),
                "ADD" => Add(ReadConfig()),
                "DEL" => Del(ReadConfig()),
                "CHECK" => Check(ReadConfig()),
                "STATUS" => Status(ReadConfig(anyVersion: true)),
                "GC" => CollectGarbage(ReadConfig()),
                _ => throw new CniException(CniErrorCode.InvalidEnvironment,
                    $"CNI_COMMAND {Printable.Quote(command)} is not supported: romana handles ADD, DEL, CHECK, STATUS, GC and VERSION"),
            };
        }
        catch (NotANetworkNamespaceException e)
        {
            throw new CniException(CniErrorCode.InvalidEnvironment,
                $"CNI_NETNS {Printable.Quote(e.Path)} {e.What}, not a network namespace");
        }
        catch (NetworkNamespaceException e)
        {
            throw new CniException(CniErrorCode.NamespaceUnavailable, Printable.Text(e.Message));
        }
        catch (NetlinkException e)
        {
            throw new CniException(CniErrorCode.NetlinkFailed, Printable.Text(e.Message));
        }
    }

    private JsonObject Version()
    {
        var stdin = readStdin();
        var requested = stdin.AsSpan().Trim(" \t\r\n"u8).IsEmpty ? null : NetworkConfig.PeekVersion(NetworkConfig.ParseObject(stdin));
        if (requested is not null && CniVersions.IsSupported(requested)) ResponseVersion = requested;
        var supported = new JsonArray();
        foreach (var version in CniVersions.Supported) supported.Add((JsonNode)version);
        return new JsonObject { ["cniVersion"] = ResponseVersion, ["supportedVersions"] = supported };
    }

    private NetworkConfig ReadConfig(bool anyVersion = false)
    {
        var json = NetworkConfig.ParseObject(readStdin());
        if (NetworkConfig.PeekVersion(json) is { } requested && CniVersions.IsSupported(requested)) ResponseVersion = requested;
        return NetworkConfig.From(json, anyVersion);
    }

    /// <summary>
    /// Every input is checked before the daemon is asked for anything: the identifiers, and CNI_NETNS, which must be a
    /// network namespace and not the plugin's own (the node's: wiring a "pod" there would give the node a default route
    /// via 169.254.1.1). The namespace's identity goes with the request, so the daemon can tell a retried ADD from the
    /// same container id reused in another pod.
    /// </summary>
    private JsonObject Add(NetworkConfig config)
    {
        var attachment = PodAttachment.For(environment.RequireContainerId(), environment.RequireIfName());
        var netns = environment.RequireNetns();
        var pod = environment.PodName();
        using var podNamespace = OpenPodNamespace(netns);
        var daemon = new DaemonCalls(new DaemonClient(config.DaemonSocket), attachment, netns, pod, podNamespace.Identity?.ToString(),
            environment.PodUid());
        var address = daemon.Add();
        var wiring = new PodWiring(attachment);
        string podMac;
        try
        {
            podMac = wiring.Wire(podNamespace, address, config.Mtu);
        }
        catch
        {
            if (wiring.CreatedHostVeth) wiring.TryUnwire();
            daemon.TryRelease();
            throw;
        }
        return CniResult.ForAdd(config.CniVersion, config.PrevResult, attachment, netns, podMac, address);
    }

    /// <summary>CNI_NETNS, opened only if it is a network namespace other than the plugin's own.</summary>
    private static NetworkNamespace OpenPodNamespace(string netns)
    {
        var opened = NetworkNamespace.OpenChecked(netns);
        if (opened.Identity != NetworkNamespace.CurrentIdentity()) return opened;
        opened.Dispose();
        throw new CniException(CniErrorCode.InvalidEnvironment,
            $"CNI_NETNS {Printable.Quote(netns)} is the plugin's own network namespace, the node's: a pod needs one of its own");
    }

    /// <summary>
    /// Idempotent: a veth, namespace or address already gone is success; CNI_NETNS is not needed at all. When it is given and
    /// is a network namespace, a key whose address the daemon handed to another namespace is left alone: that is another
    /// pod's (a container id reused), and this DEL is the one a runtime sends after the ADD the daemon refused.
    /// </summary>
    private JsonObject? Del(NetworkConfig config)
    {
        var attachment = PodAttachment.For(environment.RequireContainerId(), environment.RequireIfName());
        var netns = NullIfEmpty(environment.Netns);
        using var podNamespace = NamespaceIfAny(netns);
        var daemon = new DaemonCalls(new DaemonClient(config.DaemonSocket), attachment, netns, environment.PodNameIfValid(),
            podNamespace?.Identity?.ToString());
        if (daemon.HeldByAnotherNamespace()) return null;
        var wiring = new PodWiring(attachment);
        if (podNamespace is not null && podNamespace.Identity != NetworkNamespace.CurrentIdentity()) wiring.RemoveSourceRule(podNamespace);
        wiring.Unwire();
        daemon.Release();
        return null;
    }

    /// <summary>The network namespace DEL was given, or null when there is none to look at (not given, gone, not a namespace).</summary>
    private static NetworkNamespace? NamespaceIfAny(string? netns)
    {
        if (netns is null) return null;
        try
        {
            return NetworkNamespace.OpenChecked(netns);
        }
        catch (Exception e) when (e is NetworkNamespaceException or NotANetworkNamespaceException)
        {
            return null;
        }
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private JsonObject? Check(NetworkConfig config)
    {
        var attachment = PodAttachment.For(environment.RequireContainerId(), environment.RequireIfName());
        var netns = environment.RequireNetns();
        var prevResult = config.PrevResult
            ?? throw new CniException(CniErrorCode.InvalidNetworkConfig,
                "invalid network configuration: prevResult is missing (CHECK needs the result of ADD)");
        using var podNamespace = OpenPodNamespace(netns);
        var expected = CniResult.RomanaAddress(prevResult, attachment);
        var held = new DaemonCalls(new DaemonClient(config.DaemonSocket), attachment, netns, environment.PodNameIfValid(),
            podNamespace.Identity?.ToString()).Check();
        if (!held.Equals(expected))
            throw new CniException(CniErrorCode.CheckAddressMismatch,
                $"CHECK: the romana daemon holds {held} for container {attachment.ContainerId} interface {attachment.IfName}, " +
                $"prevResult says {expected}");
        new PodWiring(attachment).Verify(podNamespace, expected);
        return null;
    }

    /// <summary>
    /// Spec 1.1's GC: whatever Romana made for an attachment the runtime no longer lists goes, such as the leftovers of a
    /// DEL that never came. Host veths first (their pod ends and /32 routes go with them), then the daemon releases the
    /// addresses, in the order DEL uses: an address is never free while an interface still carries it.
    /// </summary>
    private JsonObject? CollectGarbage(NetworkConfig config)
    {
        var valid = config.ValidAttachments
            ?? throw new CniException(CniErrorCode.InvalidNetworkConfig,
                "invalid network configuration: cni.dev/valid-attachments is missing (GC needs the runtime's list of attachments)");
        PodWiring.RemoveVethsExcept(valid.Select(v => PodAttachment.For(v.ContainerId, v.IfName).HostVeth)
            .ToHashSet(StringComparer.Ordinal));
        var client = new DaemonClient(config.DaemonSocket);
        DaemonReply reply;
        try
        {
            var keys = valid.Select(v => DaemonProtocol.KeyOf(v.ContainerId, v.IfName));
            reply = client.Send(new DaemonRequest(DaemonProtocol.Gc, "", "", Valid: [.. keys]));
        }
        catch (DaemonUnreachableException e)
        {
            throw new CniException(CniErrorCode.TryAgainLater, e.Message);
        }
        if (!reply.Ok)
            throw new CniException(reply.Code == "unavailable" ? CniErrorCode.TryAgainLater : CniErrorCode.DaemonRefused,
                $"GC: romana daemon at {config.DaemonSocket} released {reply.Released ?? 0} addresses, then: " +
                Printable.Text(reply.Error ?? reply.Code));
        return null;
    }

    /// <summary>Spec 1.1's readiness question: the daemon answers it without a container.</summary>
    private JsonObject? Status(NetworkConfig config)
    {
        var client = new DaemonClient(config.DaemonSocket);
        DaemonReply reply;
        try
        {
            reply = client.Send(new DaemonRequest(DaemonProtocol.Status, "", ""));
        }
        catch (Exception e) when (e is DaemonUnreachableException or DaemonProtocolException)
        {
            throw new CniException(CniErrorCode.PluginNotAvailable, $"plugin not available: {e.Message}");
        }
        if (!reply.Ok)
            throw new CniException(CniErrorCode.PluginNotAvailable,
                $"plugin not available: romana daemon at {config.DaemonSocket} is not ready: " +
                Printable.Text(reply.Error ?? reply.Code ?? "no reason given"));
        return null;
    }
}
