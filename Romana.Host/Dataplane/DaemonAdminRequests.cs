using Akka.Cluster;
using Akka.Event;
using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Contracts.Cni;
using Romana.Host.Composition;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Dataplane;

/// <summary>
/// The daemon's admin API on its socket (root's only, like the CNI's): CLUSTER answers this member's view of the cluster,
/// NODE-REMOVE takes a node whose daemon is gone out of Romana. Every request is validated here, as the CNI's are, and
/// only validated or escaped values reach the log.
/// </summary>
/// <param name="cluster">This daemon's cluster; null when it runs alone (romana.cluster.enabled = off).</param>
public sealed class DaemonAdminRequests(IpamClient ipam, NodeIdentity node, Cluster? cluster, ILoggingAdapter log)
{
    /// <summary>The reason every address released by NODE-REMOVE carries in the journal.</summary>
    public const string RemoveReason = "removed by romana node remove";

    /// <summary>Kubernetes allows a node name of at most 253 characters (a DNS subdomain); Romana takes no longer one.</summary>
    public const int LongestNodeName = 253;

    public static bool Handles(string? command) => command is DaemonProtocol.Cluster or DaemonProtocol.NodeRemove;

    public async Task<DaemonReply> HandleAsync(DaemonRequest request)
    {
        if (request.Command == DaemonProtocol.Cluster) return new DaemonReply(true, Cluster: View());
        if (Refusal(request.Node, node.Name, View()) is { } refused)
        {
            log.Warning("NODE-REMOVE {0}: {1}: {2}", Printable.Quote(request.Node), refused.Code, refused.Error);
            return refused;
        }
        var name = new NodeName(request.Node!);
        // The IPAM answers once the node's journal holds every release and the return of its blocks, and the subnet's that
        // it left.
        var reply = await ipam.AskAsync(new RemoveNode(name, RemoveReason));
        if (reply is NodeRemoved removed)
        {
            log.Info("NODE-REMOVE {0}: removed from subnet {1}; {2} addresses released, its blocks returned: {3}", name, removed.Subnet,
                removed.Released.Length, Printable.Text(string.Join(", ", removed.Released), 4000));
            return new DaemonReply(true, Released: removed.Released.Length, Node: name.Value, Subnet: removed.Subnet.Value);
        }
        var failure = reply is Failed failed
            ? DaemonReply.Failure(failed.Error.CodeText, Printable.Text(failed.Error.Message, 1000))
            : DaemonReply.Failure("unavailable", $"unexpected IPAM answer {reply.GetType().Name}");
        log.Warning("NODE-REMOVE {0}: {1}: {2}", name, failure.Code, failure.Error);
        return failure;
    }

    /// <summary>This member's view: every member with its node (from its name role), oldest first, and the route manager's host.</summary>
    public ClusterView View() => cluster is null ? new ClusterView(node.Name.Value, false, null, [], null) : ViewOf(node.Name, cluster);

    public static ClusterView ViewOf(NodeName self, Cluster cluster)
    {
        var state = cluster.State;
        var unreachable = state.Unreachable.Select(m => m.UniqueAddress).ToHashSet();
        var members = state.Members.OrderBy(m => m, Member.AgeOrdering)
            .Select(m => new ClusterMember(ClusterHosting.NodeOf(m)?.Value,
                m.Roles.Select(ClusterHosting.SubnetOfRole).FirstOrDefault(s => s is not null)?.Value, m.Address.ToString(),
                m.Status.ToString(), !unreachable.Contains(m.UniqueAddress)))
            .ToArray();
        var routeManager = ClusterHosting.RouteManagerHost(state.Members) is { } host ? ClusterHosting.NodeOf(host)?.Value : null;
        return new ClusterView(self.Value, true, cluster.SelfAddress.ToString(), members, routeManager);
    }

    /// <summary>
    /// Why NODE-REMOVE of <paramref name="requested"/> is refused before the IPAM is asked, or null: a missing or bad name and
    /// this daemon's own node are invalid; a node that is an Up and reachable member of the cluster is a conflict (its daemon
    /// runs: it must be stopped first). Whatever else is left to the IPAM, whose subnet refuses a node that a live daemon still
    /// holds.
    /// </summary>
    public static DaemonReply? Refusal(string? requested, NodeName self, ClusterView view)
    {
        if (NodeNameProblem(requested) is { } problem)
            return DaemonReply.Failure("invalid", $"node {Printable.Quote(requested)} {problem}");
        var name = new NodeName(requested!);
        if (name == self)
            return DaemonReply.Failure("invalid", $"node {name} is this daemon's own node; stop this daemon and remove the node " +
                "from another node's daemon");
        if (view.Members.FirstOrDefault(m => m.Node == name.Value && m.Status == nameof(MemberStatus.Up) && m.Reachable) is { } live)
            return DaemonReply.Failure("conflict", $"node {name} is an Up and reachable member of the cluster at {live.Address}: " +
                "stop its daemon first");
        return null;
    }

    /// <summary>Why a node name is not one Romana could have: missing, empty, too long, or holding spaces or control characters.</summary>
    public static string? NodeNameProblem(string? name) => name switch
    {
        null => "is missing; name the node to remove",
        "" => "is empty; name the node to remove",
        { Length: > LongestNodeName } => $"is longer than {LongestNodeName} characters",
        _ when name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)) => "holds a space or a control character",
        _ => null,
    };
}

/// <summary>
/// Each request of the socket to its handler: the admin commands to <see cref="DaemonAdminRequests"/>, the rest to the CNI's.
/// </summary>
public sealed class DaemonSocketRequests(ICniRequests cni, DaemonAdminRequests admin) : ICniRequests
{
    public Task<DaemonReply> HandleAsync(DaemonRequest request) =>
        DaemonAdminRequests.Handles(request.Command) ? admin.HandleAsync(request) : cni.HandleAsync(request);

    /// <summary>An admin reply that does not arrive changes nothing: what NODE-REMOVE did is in the journal, as it says.</summary>
    public Task UndeliveredAsync(DaemonRequest request, DaemonReply reply, string why) =>
        DaemonAdminRequests.Handles(request.Command) ? Task.CompletedTask : cni.UndeliveredAsync(request, reply, why);
}
