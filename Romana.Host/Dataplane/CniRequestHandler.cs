using System.Diagnostics;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Dataplane;
using Romana.Actors.Ipam;
using Romana.Contracts.Cni;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Dataplane;

/// <summary>
/// What a CNI request becomes: the allocation key is container id + interface, the node is this host. The socket is an
/// API of its own (any local root process can write to it), so every request is validated here by the plugin's rules, and
/// only validated or escaped values reach the log. An address is never handed out while this host's kernel still routes
/// it to a pod or holds its veth, and GC releases only addresses whose veth and route are gone.
/// </summary>
public sealed class CniRequestHandler(IpamClient ipam, NodeIdentity node, IHostNetwork host, ILoggingAdapter log) : ICniRequests
{
    /// <summary>How many addresses in a row one ADD sets aside as still in use before it gives up.</summary>
    private const int MaxSetAsidePerAdd = 8;

    /// <summary>
    /// ADD answers that handed out each key's address and were not reported undelivered, since the key was last released:
    /// a runtime may retry an ADD while the first is still being answered, and the address must stay while any answer
    /// may have reached the pod.
    /// </summary>
    private readonly Dictionary<AllocationKey, int> _answers = new();

    public async Task<DaemonReply> HandleAsync(DaemonRequest request)
    {
        if (request.Command == DaemonProtocol.Status) return new DaemonReply(true);
        if (request.Command == DaemonProtocol.Gc) return await CollectGarbageAsync(request.Valid);
        if (request.Command is not (DaemonProtocol.Add or DaemonProtocol.Del or DaemonProtocol.Check))
            return Refuse(request, DaemonReply.Failure("invalid",
                $"command: {Printable.Quote(request.Command)} is none of ADD, DEL, CHECK, STATUS, GC"));
        if (Problem(request) is { } problem) return Refuse(request, DaemonReply.Failure("invalid", problem));
        var key = new AllocationKey(DaemonProtocol.KeyOf(request.ContainerId, request.IfName));
        var started = Stopwatch.GetTimestamp();
        var reply = request.Command switch
        {
            DaemonProtocol.Add => await AddAsync(key, request),
            DaemonProtocol.Del => await DelAsync(key, request),
            _ => await CheckAsync(key, request),
        };
        var millis = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (reply.Ok && request.Command == DaemonProtocol.Add) CountAnswer(key, +1);
        else if (reply.Ok && request.Command == DaemonProtocol.Del) ForgetAnswers(key);
        if (reply.Ok)
            log.Info("CNI {0} {1}{2}: {3} ({4:0.0} ms)", request.Command, key, request.Pod is null ? "" : $" pod {request.Pod}",
                reply.Address ?? "ok", millis);
        else log.Warning("CNI {0} {1}: {2}: {3}", request.Command, key, reply.Code, Printable.Text(reply.Error));
        return reply;
    }

    /// <summary>The first field the plugin would never have sent, named with its value quoted; null when all are valid.</summary>
    private static string? Problem(DaemonRequest request) =>
        Field("containerId", request.ContainerId, CniIdentifiers.ContainerIdProblem)
        ?? Field("ifName", request.IfName, CniIdentifiers.InterfaceNameProblem)
        ?? (request.Pod is null ? null : Field("pod", request.Pod, CniIdentifiers.PodProblem))
        ?? (request.NetnsId is null ? null : Field("netnsId", request.NetnsId, CniIdentifiers.NetnsIdProblem))
        ?? (request.PodUid is null ? null : Field("podUid", request.PodUid, CniIdentifiers.PodUidProblem));

    private static string? Field(string name, string? value, Func<string?, string?> problemOf) =>
        problemOf(value) is { } problem ? $"{name} {Printable.Quote(value)} {problem}" : null;

    private DaemonReply Refuse(DaemonRequest request, DaemonReply reply)
    {
        log.Warning("CNI {0}: {1}: {2}", Printable.Quote(request.Command, 16), reply.Code, reply.Error);
        return reply;
    }

    /// <summary>
    /// The address for the key (the same again for a retried ADD from the same namespace; a conflict from another). A newly
    /// decided address is looked for on this host first: a /32 route to it that still exists means a pod still has it (one
    /// whose DEL never came while the IPAM was told otherwise), so it is set aside, recorded as such, and the next one taken.
    /// That look costs one netlink request (a route lookup, not a dump) on the ADD that hands out an address, none on a retry.
    /// </summary>
    private async Task<DaemonReply> AddAsync(AllocationKey key, DaemonRequest request)
    {
        for (var setAside = 0; ; setAside++)
        {
            var answer = await ipam.AskAsync(new Allocate(node.Name, key, request.Pod, request.NetnsId, request.PodUid));
            if (answer is not AddressAssigned assigned) return Failure(answer);
            if (!assigned.Fresh) return new DaemonReply(true, assigned.Address.ToString());
            string? use;
            try
            {
                use = (await host.FindPodAddressUsesAsync([new PodAddressProbe(assigned.Address)]))[0];
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                await ipam.AskAsync(new Release(key, null, "CNI ADD: this node's routes could not be read to check the address"));
                return DaemonReply.Failure("unavailable",
                    $"this node's routes could not be read to check {assigned.Address} before handing it out: {Printable.Text(e.Message)}");
            }
            if (use is null) return new DaemonReply(true, assigned.Address.ToString());
            log.Warning("CNI ADD {0}: {1} is still in use on this node ({2}): set aside, another address is taken", key,
                assigned.Address, use);
            var aside = await ipam.AskAsync(new SetAside(node.Name, key, assigned.Address,
                $"CNI ADD {key}: {use} still exists on node {node.Name}; set aside until a GC finds it gone"));
            if (aside is not Succeeded)
            {
                await ipam.AskAsync(new Release(key, null,
                    $"CNI ADD: {assigned.Address} is in use on the node and could not be set aside"));
                return Failure(aside);
            }
            if (setAside + 1 == MaxSetAsidePerAdd)
                return DaemonReply.Failure("unavailable",
                    $"{MaxSetAsidePerAdd} addresses in a row are still routed to pods on node {node.Name}; each was set aside");
        }
    }

    /// <summary>
    /// A DEL of what is not held succeeds: the runtime may repeat it, and after a failed ADD it always comes. A DEL from
    /// another namespace than the one the address was handed to releases nothing: it is the DEL that follows an ADD refused
    /// as a conflict, and the address is another pod's.
    /// </summary>
    private async Task<DaemonReply> DelAsync(AllocationKey key, DaemonRequest request)
    {
        if (request.NetnsId is { } netnsId && await ipam.AskAsync(new GetAddress(key)) is AddressAssigned { Netns: { } holder } held
            && holder != netnsId)
            return OtherNamespace(key, held, netnsId, "a DEL from there releases nothing");
        return await ipam.AskAsync(new Release(key, null, $"CNI DEL {request.Pod ?? request.ContainerId}")) switch
        {
            Succeeded => new DaemonReply(true),
            Failed { Error.Code: IpamErrorCode.NotFound } => new DaemonReply(true),
            var other => Failure(other),
        };
    }

    private async Task<DaemonReply> CheckAsync(AllocationKey key, DaemonRequest request) =>
        await ipam.AskAsync(new GetAddress(key)) switch
        {
            AddressAssigned { Netns: { } holder } held when request.NetnsId is { } netnsId && holder != netnsId =>
                OtherNamespace(key, held, netnsId, "it is another pod's"),
            AddressAssigned held => new DaemonReply(true, held.Address.ToString()),
            var other => Failure(other),
        };

    private static DaemonReply OtherNamespace(AllocationKey key, AddressAssigned held, string netnsId, string consequence) =>
        DaemonReply.Failure("conflict",
            $"key '{key}' holds {held.Address} for a pod in network namespace {held.Netns}, not {netnsId}: {consequence}");

    /// <summary>
    /// CNI GC: releases every address of this node whose key is a CNI attachment (container id/interface) that the runtime
    /// no longer lists, such as one whose DEL never came, and every address set aside, once this host holds neither its
    /// veth nor a /32 route to it: a list that is not the runtime's (an empty one while pods run) releases nothing that is
    /// still wired. Each release is an event saying so. Without a list, nothing is released: the request is malformed.
    /// </summary>
    private async Task<DaemonReply> CollectGarbageAsync(string[]? valid)
    {
        if (valid is null)
            return Refuse(new DaemonRequest(DaemonProtocol.Gc, "", ""), DaemonReply.Failure("invalid",
                "valid: missing; GC needs the runtime's list of the attachments it still has (an empty list for a node without pods)"));
        for (var i = 0; i < valid.Length; i++)
            if (KeyProblem(valid[i]) is { } problem)
                return Refuse(new DaemonRequest(DaemonProtocol.Gc, "", ""), DaemonReply.Failure("invalid", $"valid[{i}]: {problem}"));
        if (await ipam.AskAsync(new GetAllocations(node.Name)) is not AllocationsOf held)
            return DaemonReply.Failure("unavailable", "GC: the node's addresses could not be read");
        var keep = valid.ToHashSet(StringComparer.Ordinal);
        var stale = held.Allocations
            .Where(a => SetAside.IsSetAsideKey(a.Key) || (a.Key.Value.Contains('/') && !keep.Contains(a.Key.Value)))
            .ToList();
        IReadOnlyList<string?> uses;
        try
        {
            uses = await host.FindPodAddressUsesAsync([.. stale.Select(a => new PodAddressProbe(a.Address, HostVethOf(a.Key)))]);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return DaemonReply.Failure("unavailable", $"GC: this node's routes and links could not be read: {Printable.Text(e.Message)}");
        }
        var released = 0;
        var kept = new List<string>();
        for (var i = 0; i < stale.Count; i++)
        {
            var allocation = stale[i];
            if (uses[i] is { } use)
            {
                kept.Add($"{allocation.Address} ({allocation.Key}: {use})");
                continue;
            }
            var reason = SetAside.IsSetAsideKey(allocation.Key)
                ? "CNI GC: set aside while in use; no route or veth uses it any more"
                : "CNI GC: not among the runtime's valid attachments, and no route or veth uses it";
            var reply = await ipam.AskAsync(new Release(allocation.Key, null, reason));
            if (reply is Succeeded or Failed { Error.Code: IpamErrorCode.NotFound }) ForgetAnswers(allocation.Key);
            if (reply is Succeeded) released++;
            else if (reply is Failed { Error.Code: not IpamErrorCode.NotFound } failed)
                return Failure(failed) with { Released = released, Kept = kept.Count };
        }
        // Keys of a journal older than the checks may hold anything: the lists are escaped like any outside value.
        log.Info("CNI GC: {0} valid attachments; released {1} of {2} addresses held by this node: {3}; kept {4} still wired: {5}",
            keep.Count, released, held.Allocations.Length,
            Printable.Text(string.Join(", ", stale.Where((_, i) => uses[i] is null).Select(a => $"{a.Address} ({a.Key})")), 4000),
            kept.Count, Printable.Text(string.Join(", ", kept), 4000));
        return new DaemonReply(true, Released: released, Kept: kept.Count);
    }

    /// <summary>A key of GC's list: "containerId/ifName", each part valid (the first '/' separates them).</summary>
    private static string? KeyProblem(string? key)
    {
        var slash = key?.IndexOf('/') ?? -1;
        if (key is null || slash < 0) return $"{Printable.Quote(key)} is not \"containerId/ifName\"";
        return Field("containerId", key[..slash], CniIdentifiers.ContainerIdProblem)
            ?? Field("ifName", key[(slash + 1)..], CniIdentifiers.InterfaceNameProblem);
    }

    /// <summary>The host veth the plugin made for a CNI key; null for a key that is not one (a set-aside address).</summary>
    private static string? HostVethOf(AllocationKey key)
    {
        var slash = key.Value.IndexOf('/');
        return slash < 0 || SetAside.IsSetAsideKey(key) ? null : CniIdentifiers.HostVethName(key.Value[..slash], key.Value[(slash + 1)..]);
    }

    /// <summary>
    /// An ADD's reply that never reached the plugin: the plugin reports the ADD failed and wires nothing (the runtime then
    /// deletes the attachment and tries again), so the address goes back at once rather than waiting for that DEL.
    /// </summary>
    public async Task UndeliveredAsync(DaemonRequest request, DaemonReply reply, string why)
    {
        if (request.Command != DaemonProtocol.Add || !reply.Ok) return;
        var key = new AllocationKey(DaemonProtocol.KeyOf(request.ContainerId, request.IfName));
        if (CountAnswer(key, -1) > 0)
        {
            log.Info("CNI ADD {0}: the reply ({1}) never reached the plugin ({2}); kept: another answer handed the address out",
                key, reply.Address, why);
            return;
        }
        var released = await ipam.AskAsync(new Release(key, null,
            $"CNI ADD {request.Pod ?? request.ContainerId}: the reply never reached the plugin ({why})"));
        if (released is Succeeded or Failed { Error.Code: IpamErrorCode.NotFound })
            log.Warning("CNI ADD {0}: the reply ({1}) never reached the plugin ({2}); the address was released", key, reply.Address, why);
        else
            log.Error("CNI ADD {0}: the reply ({1}) never reached the plugin ({2}), and releasing it failed: {3}", key, reply.Address, why,
                released is Failed failed ? Printable.Text(failed.Error.Message) : released.GetType().Name);
    }

    /// <summary>Adds <paramref name="change"/> to the key's outstanding ADD answers; returns how many remain.</summary>
    private int CountAnswer(AllocationKey key, int change)
    {
        lock (_answers)
        {
            var count = Math.Max(0, _answers.GetValueOrDefault(key) + change);
            if (count == 0) _answers.Remove(key);
            else _answers[key] = count;
            return count;
        }
    }

    private void ForgetAnswers(AllocationKey key)
    {
        lock (_answers) _answers.Remove(key);
    }

    /// <summary>The IPAM's error, escaped and bounded: it may quote the key, the pod or an older journal's values.</summary>
    private static DaemonReply Failure(IpamReply reply) => reply is Failed failed
        ? DaemonReply.Failure(failed.Error.CodeText, Printable.Text(failed.Error.Message, 1000))
        : DaemonReply.Failure("unavailable", $"unexpected IPAM answer {reply.GetType().Name}");
}
