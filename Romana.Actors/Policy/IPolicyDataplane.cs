namespace Romana.Actors.Policy;

/// <summary>
/// A node's enforcement of NetworkPolicy: Romana's own nftables table (it never touches another). The adapter compiles the
/// world for the pods this node hosts and applies the result as one atomic transaction; later calls change only what
/// differs from the last one. Flows that a change denies stop; allowed established flows survive.
/// </summary>
public interface IPolicyDataplane
{
    /// <summary>
    /// Makes the kernel enforce <paramref name="world"/> for the pods hosted here (<paramref name="localPods"/>: keys
    /// <c>ns/name</c> of pods of the world). Traffic between these pods and their node is always allowed.
    /// </summary>
    Task<PolicyApplied> ApplyAsync(PolicyWorld world, IReadOnlySet<string> localPods, CancellationToken cancellation);

    /// <summary>Packets dropped so far, per local pod and direction.</summary>
    Task<IReadOnlyList<PolicyDrops>> DropsAsync(CancellationToken cancellation);

    /// <summary>Removes Romana's table: the node stops enforcing.</summary>
    Task RemoveAsync(CancellationToken cancellation);
}

/// <summary>What one apply did: whether it replaced the whole table or changed part of it, its size, and its times.</summary>
public sealed record PolicyApplied(bool Whole, int Statements, TimeSpan Compile, TimeSpan Apply);

public sealed record PolicyDrops(string Pod, PolicyDirections Direction, long Packets, long Bytes);
