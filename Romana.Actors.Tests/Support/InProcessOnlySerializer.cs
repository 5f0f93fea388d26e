using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Serialization;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// For akka.actor.serialize-messages = on: the journal plugin's own messages to itself (Akka.Persistence.Sql's
/// WriteFinished carries a Task, the write journal's Desequenced any event; DistributedData's ReadRepair has no binding)
/// and the cluster's own events to its local subscribers (membership and reachability changes, the singleton manager's
/// oldest-member notices) never leave the process, and the default serializer cannot carry them: it loses a member's
/// up-number, so a singleton manager reading a copy misjudges which member is oldest and waits for a hand-over that never
/// comes. Cluster bootstrap's coordinator talks to itself and its contact point probes the same way (a discovery answer
/// holds IPAddresses, which the default serializer cannot carry). This serializer hands them through by reference, so
/// verifying every message does not drop or corrupt them.
/// Bound in tests only, to third-party types only.
/// </summary>
public sealed class InProcessOnlySerializer(ExtendedActorSystem system) : Serializer(system)
{
    private static readonly ConcurrentDictionary<long, object> Held = new();
    private static long _next;

    /// <summary>HOCON that binds the types to it.</summary>
    public const string Hocon = """
        akka.actor.serializers.in-process-only = "Romana.Actors.Tests.Support.InProcessOnlySerializer, Romana.Actors.Tests"
        akka.actor.serializers.local = "Romana.Actors.Tests.Support.InProcessOnlySerializer, Romana.Actors.Tests"
        akka.actor.serialization-bindings {
          "Akka.Persistence.Sql.Journal.Types.WriteFinished, Akka.Persistence.Sql" = in-process-only
          "Akka.DistributedData.Internal.ReadRepair, Akka.DistributedData" = in-process-only
          "Akka.Persistence.Journal.AsyncWriteJournal+Desequenced, Akka.Persistence" = in-process-only
          "Akka.Cluster.ClusterEvent+IClusterDomainEvent, Akka.Cluster" = in-process-only
          "Akka.Cluster.ClusterEvent+CurrentClusterState, Akka.Cluster" = in-process-only
          "Akka.Cluster.Tools.Singleton.OldestChangedBuffer+OldestChanged, Akka.Cluster.Tools" = in-process-only
          "Akka.Cluster.Tools.Singleton.OldestChangedBuffer+InitialOldestState, Akka.Cluster.Tools" = in-process-only
          "Akka.Discovery.ServiceDiscovery+Resolved, Akka.Discovery" = in-process-only
          "Akka.Management.Cluster.Bootstrap.Internal.BootstrapCoordinator+Protocol+InitiateBootstrapping, Akka.Management" = local
          "Akka.Management.Cluster.Bootstrap.Internal.BootstrapCoordinator+Protocol+ObtainedSeedNodesObservation, Akka.Management" = local
          "Akka.Management.Cluster.Bootstrap.Internal.BootstrapCoordinator+Protocol+ProbingFailed, Akka.Management" = local
          "Akka.Management.Cluster.Bootstrap.IJoinDecision, Akka.Management" = in-process-only
        }
        akka.actor.serialization-identifiers { "Romana.Actors.Tests.Support.InProcessOnlySerializer, Romana.Actors.Tests" = 4199 }
        """;

    public override int Identifier => 4199;
    public override bool IncludeManifest => false;

    public override byte[] ToBinary(object obj)
    {
        var id = Interlocked.Increment(ref _next);
        Held[id] = obj;
        return BitConverter.GetBytes(id);
    }

    public override object FromBinary(byte[] bytes, Type? type) =>
        Held.TryRemove(BitConverter.ToInt64(bytes), out var obj) ? obj : throw new InvalidOperationException("not held");
}
