using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Serialization;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// For akka.actor.serialize-messages = on: the journal plugin's own messages to itself (Akka.Persistence.Sql's
/// WriteFinished carries a Task; DistributedData's ReadRepair has no binding) never leave the process and cannot be
/// serialized; this serializer hands them through by
/// reference, so verifying every message does not drop them. Bound in tests only, to third-party types only.
/// </summary>
public sealed class InProcessOnlySerializer(ExtendedActorSystem system) : Serializer(system)
{
    private static readonly ConcurrentDictionary<long, object> Held = new();
    private static long _next;

    /// <summary>HOCON that binds the types to it.</summary>
    public const string Hocon = """
        akka.actor.serializers.in-process-only = "Romana.Actors.Tests.Support.InProcessOnlySerializer, Romana.Actors.Tests"
        akka.actor.serialization-bindings {
          "Akka.Persistence.Sql.Journal.Types.WriteFinished, Akka.Persistence.Sql" = in-process-only
          "Akka.DistributedData.Internal.ReadRepair, Akka.DistributedData" = in-process-only
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
