using Romana.Actors.Addressing;

namespace Romana.Actors.Policy;

/// <summary>
/// The reference: networking.k8s.io/v1 semantics, pure. A packet from A to B is allowed when A's egress allows it and B's
/// ingress allows it. A pod selected by no policy of a direction is open in it; selected by some, it allows what the
/// union of their rules of that direction allows. Traffic between a pod and its own node is always allowed (kubelet
/// probes). Addresses that are no pod of the world (outside the cluster) have no policies and match only ipBlocks.
/// </summary>
public static class PolicyEvaluator
{
    public static bool Allows(PolicyWorld world, PolicyProbe probe)
    {
        var from = PodAt(world, probe.From);
        var to = PodAt(world, probe.To);
        if (from is not null && from.NodeAddress == probe.To) return true;
        if (to is not null && to.NodeAddress == probe.From) return true;
        return (from is null || DirectionAllows(world, from, PolicyDirections.Egress, probe.To, to, probe))
            && (to is null || DirectionAllows(world, to, PolicyDirections.Ingress, probe.From, from, probe));
    }

    public static bool Allows(PolicyWorld world, PolicyPod from, PolicyPod to, int port, PolicyProtocol protocol) =>
        Allows(world, new PolicyProbe(from.Address, to.Address, port, protocol));

    /// <summary>The policies of <paramref name="direction"/> that select <paramref name="pod"/>.</summary>
    public static IEnumerable<NetworkPolicy> Selecting(PolicyWorld world, PolicyPod pod, PolicyDirections direction) =>
        world.Policies.Where(p => (p.Directions & direction) != 0 && p.Selects(pod));

    /// <summary>
    /// Whether <paramref name="pod"/>'s policies of <paramref name="direction"/> let the packet through; the peer is the
    /// other end (<paramref name="peerPod"/> when it is a pod of the world). Ports are always the destination's.
    /// </summary>
    private static bool DirectionAllows(PolicyWorld world, PolicyPod pod, PolicyDirections direction, Ipv4 peerAddress,
        PolicyPod? peerPod, PolicyProbe probe)
    {
        var selecting = Selecting(world, pod, direction).ToList();
        if (selecting.Count == 0) return true;
        var destination = direction == PolicyDirections.Ingress ? pod : peerPod;
        return selecting.Any(policy =>
            (direction == PolicyDirections.Ingress ? policy.Ingress : policy.Egress).Any(rule =>
                PortsAllow(rule, destination, probe.Port, probe.Protocol)
                && (rule.Peers.IsEmpty || rule.Peers.Any(peer => PeerMatches(world, policy, peer, peerAddress, peerPod)))));
    }

    public static bool PeerMatches(PolicyWorld world, NetworkPolicy policy, PolicyPeer peer, Ipv4 address, PolicyPod? pod)
    {
        if (peer.IpBlock is { } block) return block.Contains(address);
        if (pod is null) return false;
        if (peer.NamespaceSelector is null)
            return pod.Namespace == policy.Namespace && (peer.PodSelector ?? LabelSelector.Everything).Matches(pod.Labels);
        return peer.NamespaceSelector.Matches(world.NamespaceLabels(pod.Namespace))
            && (peer.PodSelector ?? LabelSelector.Everything).Matches(pod.Labels);
    }

    /// <summary>
    /// A rule without ports allows every port; otherwise one of them must match. A named port matches when the destination
    /// pod has a container port of that name and protocol at the probed number; a destination that is no pod of the world
    /// has no names, so a named port never matches it.
    /// </summary>
    public static bool PortsAllow(PolicyRule rule, PolicyPod? destination, int port, PolicyProtocol protocol) =>
        rule.Ports.IsEmpty || rule.Ports.Any(p => PortMatches(p, destination, port, protocol));

    public static bool PortMatches(PolicyPort policyPort, PolicyPod? destination, int port, PolicyProtocol protocol)
    {
        if (policyPort.Protocol != protocol) return false;
        if (policyPort.Name is { } name)
            return destination is not null
                && destination.NamedPorts.Any(n => n.Name == name && n.Protocol == protocol && n.Number == port);
        if (policyPort.Number is not { } number) return true;
        return policyPort.EndPort is { } end ? port >= number && port <= end : port == number;
    }

    private static PolicyPod? PodAt(PolicyWorld world, Ipv4 address)
    {
        foreach (var pod in world.Pods)
            if (pod.Address == address) return pod;
        return null;
    }
}
