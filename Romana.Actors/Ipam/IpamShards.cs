using Akka.Actor;
using Akka.Cluster.Sharding;

namespace Romana.Actors.Ipam;

/// <summary>Cluster placement: zones and subnets as Cluster Sharding entities, addressed with a <see cref="ShardingEnvelope"/>.</summary>
public static class IpamShards
{
    public const string ZoneType = "zone";
    public const string SubnetType = "subnet";
    /// <summary>The reservation ledger: one entity (<see cref="LedgerEntity"/>) for the whole pod CIDR.</summary>
    public const string LedgerType = "reservations";
    public const string LedgerEntity = "pod-cidr";

    /// <summary>Shards the zone and subnet entities are spread over; every member must use the same number.</summary>
    public const int Shards = 32;

    /// <summary>
    /// Entity id = the zone's or subnet's name, hashed into a fixed number of shards. Messages come in a
    /// <see cref="ShardingEnvelope"/>, which the base class unwraps; nothing else is addressed to an entity.
    /// </summary>
    public sealed class Extractor(int shards) : HashCodeMessageExtractor(shards)
    {
        public override string? EntityId(object message) => null;
    }

    /// <summary>An entity id that is not in this member's topology (its configuration differs): every question is refused.</summary>
    public sealed class UnknownEntity : ReceiveActor
    {
        public UnknownEntity(string type, string id) =>
            ReceiveAny(_ => Sender.Tell(new IpamMessages.Failed(IpamError.NotFound(
                $"{type} '{id}' is not in this member's romana.topology (do the daemons' configurations differ?)"))));
    }

    /// <summary>One entity, as a local reference: what is sent to it is wrapped for the region, the sender kept.</summary>
    public sealed class EntityLink : ReceiveActor
    {
        public EntityLink(IActorRef region, string entityId) => ReceiveAny(m => region.Forward(new ShardingEnvelope(entityId, m)));

        public static Props Props(IActorRef region, string entityId) => Akka.Actor.Props.Create(() => new EntityLink(region, entityId));
    }
}
