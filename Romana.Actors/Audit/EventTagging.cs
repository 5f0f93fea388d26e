using System.Collections.Immutable;
using Akka.Persistence.Journal;

namespace Romana.Actors.Audit;

/// <summary>Every persisted event: it says when it happened and why, so the journal is an audit trail.</summary>
public interface IRomanaEvent
{
    DateTimeOffset At { get; }
    string Reason { get; }
}

/// <summary>Events about addresses, blocks, reservations and topology.</summary>
public interface IIpamEvent : IRomanaEvent;

public static class EventTags
{
    public const string Ipam = "ipam";
    public const string Routes = "routes";
    public const string Health = "health";
    public const string Policy = "policy";
}

/// <summary>The one write-event adapter: tags each event by its concern for EventsByTag audit queries.</summary>
public sealed class EventTagger : IWriteEventAdapter
{
    private static readonly ImmutableHashSet<string> IpamTags = [EventTags.Ipam];
    private static readonly ImmutableHashSet<string> RouteTags = [EventTags.Routes];
    private static readonly ImmutableHashSet<string> HealthTags = [EventTags.Health];

    public string Manifest(object evt) => string.Empty;

    public object ToJournal(object evt) => evt switch
    {
        IIpamEvent => new Tagged(evt, IpamTags),
        Routing.IRouteEvent => new Tagged(evt, RouteTags),
        Health.IHealthEvent => new Tagged(evt, HealthTags),
        _ => evt,
    };

    /// <summary>The tag <see cref="ToJournal"/> gives an event (null: none): what a reader of all events files it under.</summary>
    public static string? TagOf(object evt) => evt switch
    {
        IIpamEvent => EventTags.Ipam,
        Routing.IRouteEvent => EventTags.Routes,
        Health.IHealthEvent => EventTags.Health,
        _ => null,
    };
}
