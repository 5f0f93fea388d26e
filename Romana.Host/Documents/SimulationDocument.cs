using System.Text.Json;
using System.Text.Json.Serialization;
using Romana.Host.Simulation;

namespace Romana.Host.Documents;

/// <summary>What `romana simulate --json` prints: {"timeline", "failovers", "final"}, the last in the plan document's format.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record SimulationDocument(
    IReadOnlyList<SimulationDocument.Entry> Timeline,
    IReadOnlyList<SimulationDocument.FailoverEntry> Failovers,
    PlanDocument Final,
    double? ConvergedAt)
{
    /// <summary>{"at", "event", then the details as string fields, in name order}.</summary>
    public sealed record Entry(double At, string Event)
    {
        // Settable because System.Text.Json refuses init-only extension data.
        [JsonExtensionData]
        public Dictionary<string, JsonElement>? Details { get; set; }
    }

    [JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
    public sealed record FailoverEntry(string Node, double FailedAt, double? DetectedAt, double? RoutesRepairedAt);

    public static SimulationDocument Of(SimulationResult result) => new(
        [.. result.Timeline.Select(e => new Entry(e.At, e.Event)
        {
            Details = e.Details.ToDictionary(d => d.Key, d => JsonSerializer.SerializeToElement(d.Value, DocumentJson.Default.String)),
        })],
        [.. result.Failovers.Select(f => new FailoverEntry(f.Node, f.FailedAt, f.DetectedAt, f.RoutesRepairedAt))],
        result.Final, result.ConvergedAt);

    public string ToJson() => JsonSerializer.Serialize(this, DocumentJson.Default.SimulationDocument);
}
