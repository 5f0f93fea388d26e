using System.Net;
using System.Net.Sockets;
using Romana.Cni.Daemon;
using Romana.Contracts.Cni;

namespace Romana.Cni.Plugin;

/// <summary>
/// The daemon requests of each command, with the daemon's answers turned into CNI error codes. <paramref name="netnsId"/> is
/// the identity of the pod's namespace (<see cref="DaemonRequest.NetnsId"/>), when there is one.
/// </summary>
internal sealed class DaemonCalls(DaemonClient client, PodAttachment attachment, string? netns, string? pod, string? netnsId = null,
    string? podUid = null)
{
    private const string NotFound = "not-found";
    private const string Conflict = "conflict";

    public string SocketPath => client.SocketPath;

    /// <summary>Allocates (or, for a retried ADD, returns again) the pod's address.</summary>
    public IPAddress Add()
    {
        var reply = Ask(DaemonProtocol.Add);
        if (!reply.Ok) throw Refused(DaemonProtocol.Add, reply);
        if (IPAddress.TryParse(reply.Address?.Split('/')[0], out var address) && address.AddressFamily == AddressFamily.InterNetwork)
            return address;
        TryRelease();
        throw new CniException(CniErrorCode.DaemonProtocolError,
            $"romana daemon at {SocketPath} answered ADD with no IPv4 address (got {Printable.Quote(reply.Address)})");
    }

    /// <summary>Releases the address; one the daemon does not hold is already released.</summary>
    public void Release()
    {
        var reply = Ask(DaemonProtocol.Del);
        if (!reply.Ok && reply.Code != NotFound) throw Refused(DaemonProtocol.Del, reply);
    }

    /// <summary>Release after a failed ADD: the original error is what gets reported, so this one's own failure is dropped.</summary>
    public void TryRelease()
    {
        try
        {
            Release();
        }
        catch (CniException)
        {
        }
    }

    /// <summary>The address the daemon holds for this attachment; none is "container unknown" (code 3).</summary>
    public IPAddress Check()
    {
        var reply = Ask(DaemonProtocol.Check);
        if (!reply.Ok && reply.Code == NotFound)
            throw new CniException(CniErrorCode.ContainerUnknown,
                $"CHECK: the romana daemon holds no address for container {attachment.ContainerId} interface {attachment.IfName}",
                Printable.Text(reply.Error));
        if (!reply.Ok) throw Refused(DaemonProtocol.Check, reply);
        return IPAddress.TryParse(reply.Address?.Split('/')[0], out var address)
            ? address
            : throw new CniException(CniErrorCode.DaemonProtocolError,
                $"romana daemon at {SocketPath} answered CHECK with no address (got {Printable.Quote(reply.Address)})");
    }

    /// <summary>
    /// True when the daemon holds this attachment's key for a pod in another namespace than <c>netnsId</c>: the same
    /// container id in another pod, which is not this caller's to touch. Asked with CHECK, which changes nothing.
    /// </summary>
    public bool HeldByAnotherNamespace()
    {
        if (netnsId is null) return false;
        var reply = Ask(DaemonProtocol.Check);
        return !reply.Ok && reply.Code == Conflict;
    }

    private DaemonReply Ask(string command)
    {
        try
        {
            return client.Send(new DaemonRequest(command, attachment.ContainerId, attachment.IfName, netns, pod, NetnsId: netnsId,
                PodUid: podUid));
        }
        catch (DaemonUnreachableException e)
        {
            throw new CniException(CniErrorCode.TryAgainLater, e.Message);
        }
        catch (DaemonProtocolException e)
        {
            throw new CniException(CniErrorCode.DaemonProtocolError, e.Message);
        }
    }

    private CniException Refused(string command, DaemonReply reply)
    {
        var code = reply.Code switch
        {
            "exhausted" => CniErrorCode.AddressExhausted,
            "unavailable" => CniErrorCode.TryAgainLater,
            _ => CniErrorCode.DaemonRefused,
        };
        var message = string.IsNullOrEmpty(reply.Error)
            ? $"romana daemon refused {command} ({Printable.Quote(reply.Code ?? "no code")})"
            : Printable.Text(reply.Error);
        return new CniException(code, message,
            $"romana daemon at {SocketPath}: {command} failed with code {Printable.Quote(reply.Code ?? "(none)")}");
    }
}
