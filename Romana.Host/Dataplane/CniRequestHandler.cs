using System.Diagnostics;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Contracts.Cni;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Dataplane;

/// <summary>What a CNI request becomes: the allocation key is container id + interface, the node is this host.</summary>
public sealed class CniRequestHandler(IpamClient ipam, NodeIdentity node, ILoggingAdapter log)
{
    public async Task<DaemonReply> HandleAsync(DaemonRequest request)
    {
        if (request.Command == DaemonProtocol.Status) return new DaemonReply(true);
        if (request.Command == DaemonProtocol.Gc) return await CollectGarbageAsync(request.Valid ?? []);
        if (string.IsNullOrWhiteSpace(request.ContainerId)) return DaemonReply.Failure("invalid", "containerId: empty");
        if (string.IsNullOrWhiteSpace(request.IfName)) return DaemonReply.Failure("invalid", "ifName: empty");
        var key = new AllocationKey(DaemonProtocol.KeyOf(request.ContainerId, request.IfName));
        var started = Stopwatch.GetTimestamp();
        DaemonReply reply = request.Command switch
        {
            DaemonProtocol.Add => await ipam.AskAsync(new Allocate(node.Name, key, request.Pod)) switch
            {
                AddressAssigned assigned => new DaemonReply(true, assigned.Address.ToString()),
                var other => Failure(other),
            },
            // A DEL of what is not held succeeds: the runtime may repeat it, and after a failed ADD it always comes.
            DaemonProtocol.Del => await ipam.AskAsync(new Release(key, null, $"CNI DEL {request.Pod ?? request.ContainerId}")) switch
            {
                Succeeded => new DaemonReply(true),
                Failed { Error.Code: IpamErrorCode.NotFound } => new DaemonReply(true),
                var other => Failure(other),
            },
            DaemonProtocol.Check => await ipam.AskAsync(new GetAddress(key)) switch
            {
                AddressAssigned held => new DaemonReply(true, held.Address.ToString()),
                var other => Failure(other),
            },
            _ => DaemonReply.Failure("invalid", $"command: '{request.Command}' is none of ADD, DEL, CHECK, STATUS, GC"),
        };
        var millis = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (reply.Ok)
            log.Info("CNI {0} {1}{2}: {3} ({4:0.0} ms)", request.Command, key, request.Pod is null ? "" : $" pod {request.Pod}",
                reply.Address ?? "ok", millis);
        else log.Warning("CNI {0} {1}: {2}: {3}", request.Command, key, reply.Code, reply.Error);
        return reply;
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
            else if (reply is Failed { Error.Code: not IpamErrorCode.NotFound } failed) return Failure(failed) with { Released = released };
        }
        log.Info("CNI GC: {0} valid attachments; released {1} of {2} addresses held by this node: {3}", keep.Count, released,
            held.Allocations.Length, string.Join(", ", stale.Select(a => $"{a.Address} ({a.Key})")));
        return new DaemonReply(true, Released: released);
    }

    private static DaemonReply Failure(IpamReply reply) => reply is Failed failed
        ? DaemonReply.Failure(failed.Error.CodeText, failed.Error.Message)
        : DaemonReply.Failure("unavailable", $"unexpected IPAM answer {reply.GetType().Name}");
}
