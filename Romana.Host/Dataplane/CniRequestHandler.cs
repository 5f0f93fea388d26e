using System.Diagnostics;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Contracts.Cni;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Dataplane;

/// <summary>
/// What a CNI request becomes: the allocation key is container id + interface, the node is this host. Fields are checked
/// before anything reaches the journal, and every value an error or a log line quotes is bounded (<see cref="Echo"/>).
/// </summary>
public sealed class CniRequestHandler(IpamClient ipam, NodeIdentity node, ILoggingAdapter log) : ICniRequests
{
    /// <summary>Runtimes use 64 hex digits; the CNI spec sets no length, so this leaves room.</summary>
    public const int MaxContainerIdLength = 256;

    /// <summary>A Linux interface name: at most 15 bytes (IFNAMSIZ less its terminating zero).</summary>
    public const int MaxIfNameLength = 15;

    /// <summary>"namespace/name": a namespace of at most 63 characters, a name of at most 253.</summary>
    public const int MaxPodLength = 63 + 1 + 253;

    public async Task<DaemonReply> HandleAsync(DaemonRequest request)
    {
        if (request.Command == DaemonProtocol.Status) return new DaemonReply(true);
        if (request.Command == DaemonProtocol.Gc) return await CollectGarbageAsync(request.Valid ?? []);
        if (request.Command is not (DaemonProtocol.Add or DaemonProtocol.Del or DaemonProtocol.Check))
            return Refused(request, $"command: '{Echo.Of(request.Command)}' is none of ADD, DEL, CHECK, STATUS, GC");
        if (Invalid(request) is { } invalid) return Refused(request, invalid);
        var key = KeyOf(request);
        var started = Stopwatch.GetTimestamp();
        DaemonReply reply = request.Command switch
        {
            DaemonProtocol.Add => await ipam.AskAsync(new Allocate(node.Name, key, request.Pod)) switch
            {
                AddressAssigned assigned => new DaemonReply(true, assigned.Address.ToString()),
                var other => Failure(other, request),
            },
            // A DEL of what is not held succeeds: the runtime may repeat it, and after a failed ADD it always comes.
            DaemonProtocol.Del => await ipam.AskAsync(new Release(key, null, $"CNI DEL {request.Pod ?? request.ContainerId}")) switch
            {
                Succeeded => new DaemonReply(true),
                Failed { Error.Code: IpamErrorCode.NotFound } => new DaemonReply(true),
                var other => Failure(other, request),
            },
            _ => await ipam.AskAsync(new GetAddress(key)) switch
            {
                AddressAssigned held => new DaemonReply(true, held.Address.ToString()),
                var other => Failure(other, request),
            },
        };
        var millis = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (reply.Ok)
            log.Info("CNI {0} {1}{2}: {3} ({4:0.0} ms)", request.Command, key, request.Pod is null ? "" : $" pod {request.Pod}",
                reply.Address ?? "ok", millis);
        else log.Warning("CNI {0} {1}: {2}: {3}", request.Command, Echo.Of(key.Value), reply.Code, reply.Error);
        return reply;
    }

    /// <summary>
    /// An ADD's reply that never reached the plugin: the plugin reports the ADD failed and wires nothing (the runtime then
    /// deletes the attachment and tries again), so the address goes back at once rather than waiting for that DEL.
    /// </summary>
    public async Task UndeliveredAsync(DaemonRequest request, DaemonReply reply, string why)
    {
        if (request.Command != DaemonProtocol.Add || !reply.Ok) return;
        var key = KeyOf(request);
        var released = await ipam.AskAsync(new Release(key, null,
            $"CNI ADD {request.Pod ?? request.ContainerId}: the reply never reached the plugin ({why})"));
        if (released is Succeeded or Failed { Error.Code: IpamErrorCode.NotFound })
            log.Warning("CNI ADD {0}: the reply ({1}) never reached the plugin ({2}); the address was released", key, reply.Address, why);
        else
            log.Error("CNI ADD {0}: the reply ({1}) never reached the plugin ({2}), and releasing it failed: {3}", key, reply.Address, why,
                released is Failed failed ? Echo.Capped(failed.Error.Message) : released.GetType().Name);
    }

    /// <summary>The key of a request whose fields passed <see cref="Invalid"/>: short, and holding no control character.</summary>
    private static AllocationKey KeyOf(DaemonRequest request) => new(DaemonProtocol.KeyOf(request.ContainerId, request.IfName));

    /// <summary>
    /// What the CNI spec and Linux allow: a container id of letters, digits, '_', '.', '-' (starting with a letter or digit);
    /// an interface name of at most 15 bytes without '/', ':' or blanks; a pod name of Kubernetes' length.
    /// </summary>
    private static string? Invalid(DaemonRequest request)
    {
        var id = request.ContainerId;
        if (string.IsNullOrWhiteSpace(id)) return "containerId: empty";
        if (id.Length > MaxContainerIdLength)
            return $"containerId: '{Echo.Of(id)}' is longer than {MaxContainerIdLength} characters";
        if (!char.IsAsciiLetterOrDigit(id[0]) || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-'))
            return $"containerId: '{Echo.Of(id)}' holds a character other than letters, digits, '_', '.' and '-' " +
                "(or does not start with a letter or digit)";
        var ifName = request.IfName;
        if (string.IsNullOrWhiteSpace(ifName)) return "ifName: empty";
        if (System.Text.Encoding.UTF8.GetByteCount(ifName) > MaxIfNameLength || ifName is "." or ".."
            || ifName.Any(c => c is '/' or ':' || char.IsWhiteSpace(c) || char.IsControl(c)))
            return $"ifName: '{Echo.Of(ifName)}' is not a Linux interface name (at most {MaxIfNameLength} bytes; no '/', ':' or blanks)";
        if (request.Pod is { } pod && (pod.Length > MaxPodLength || pod.Any(char.IsControl)))
            return $"pod: '{Echo.Of(pod)}' is not a Kubernetes namespace/name (at most {MaxPodLength} characters, no control characters)";
        return null;
    }

    private DaemonReply Refused(DaemonRequest request, string why)
    {
        log.Warning("CNI {0}: invalid: {1}", Echo.Of(request.Command), why);
        return DaemonReply.Failure("invalid", why);
    }

    /// <summary>
    /// CNI GC: releases every address of this node whose key is a CNI attachment (container id/interface) that the runtime
    /// no longer lists, such as one whose DEL never came. Each release is an event saying so.
    /// </summary>
    private async Task<DaemonReply> CollectGarbageAsync(IReadOnlyCollection<string> valid)
    {
        if (await ipam.AskAsync(new GetAllocations(node.Name)) is not AllocationsOf held)
            return DaemonReply.Failure("unavailable", "GC: the node's addresses could not be read");
        var keep = valid.ToHashSet(StringComparer.Ordinal);
        var stale = held.Allocations.Where(a => a.Key.Value.Contains('/') && !keep.Contains(a.Key.Value)).ToList();
        var released = 0;
        foreach (var allocation in stale)
        {
            var reply = await ipam.AskAsync(new Release(allocation.Key, null, "CNI GC: not among the runtime's valid attachments"));
            if (reply is Succeeded) released++;
            else if (reply is Failed { Error.Code: not IpamErrorCode.NotFound } failed)
                return DaemonReply.Failure(failed.Error.CodeText, Echo.Capped(failed.Error.Message)) with { Released = released };
        }
        log.Info("CNI GC: {0} valid attachments; released {1} of {2} addresses held by this node: {3}", keep.Count, released,
            held.Allocations.Length, Echo.Capped(string.Join(", ", stale.Select(a => $"{a.Address} ({a.Key})"))));
        return new DaemonReply(true, Released: released);
    }

    /// <summary>The IPAM's error, its quotes of the key and the pod bounded, the whole capped.</summary>
    private static DaemonReply Failure(IpamReply reply, DaemonRequest request)
    {
        if (reply is not Failed failed) return DaemonReply.Failure("unavailable", $"unexpected IPAM answer {reply.GetType().Name}");
        var message = failed.Error.Message;
        foreach (var value in new[] { DaemonProtocol.KeyOf(request.ContainerId, request.IfName), request.Pod })
            if (value is { Length: > Echo.MaxQuoted }) message = message.Replace(value, Echo.Of(value), StringComparison.Ordinal);
        return DaemonReply.Failure(failed.Error.CodeText, Echo.Capped(message));
    }
}
