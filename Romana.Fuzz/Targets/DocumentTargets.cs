using System.Text;
using Romana.Actors.Topology;
using Romana.Host.Documents;
using Romana.Host.Ipam;
using Romana.Host.Routing;
using Romana.Host.Simulation;
using static Romana.Fuzz.FuzzFinding;

namespace Romana.Fuzz;

/// <summary>
/// The JSON documents Romana reads (Romana.Host/Documents): each reader refuses with its own exception, one line naming the
/// source, the JSON path and the value. A document that reads carves its topology as <c>romana plan</c> would next, which
/// refuses with <see cref="TopologyException"/>. The plan document, the one that is also written, must round-trip.
/// </summary>
public static class DocumentTargets
{
    private const string Source = "fuzz.json";

    public static FuzzTarget Cluster { get; } = new("cluster", "a cluster file (ClusterFileReader), then its topology carved", input =>
    {
        if (Read(input, text => ClusterFileReader.Parse(text, Source)) is { } cluster) Carve(cluster.Topology);
    });

    public static FuzzTarget Scenario { get; } = new("scenario", "a scenario (ScenarioReader), then its cluster's topology carved", input =>
    {
        if (Read(input, text => ScenarioReader.Parse(text, Source)) is { } scenario) Carve(scenario.Cluster.Topology);
    });

    public static FuzzTarget Vector { get; } = new("vector",
        "an IPAM conformance vector (ConformanceVectorReader), then its topology carved", input =>
        {
            if (Read(input, text => ConformanceVectorReader.Parse(text, Source)) is not { } vector) return;
            Require(vector.File == Source && vector.Steps.Select(s => s.Number).SequenceEqual(Enumerable.Range(1, vector.Steps.Count)),
                "a vector read with steps not numbered 1, 2, ... or without its file");
            Carve(vector.Topology);
        });

    public static FuzzTarget Plan { get; } = new("plan", "a plan document (PlanDocument.Parse), written back and read again", input =>
    {
        if (Read(input, text => PlanDocument.Parse(text, Source)) is not { } plan) return;
        var json = plan.ToJson();
        var again = Read(Encoding.UTF8.GetBytes(json), text => PlanDocument.Parse(text, Source))
            ?? throw new FuzzFinding("a plan document that was read does not read back once written");
        Require(again.ToJson() == json, "a plan document does not survive writing and reading");
    });

    /// <summary>The document, or null when its reader refused it with its own exception, naming the source.</summary>
    private static T? Read<T>(byte[] input, Func<string, T> read) where T : class
    {
        try
        {
            return read(Encoding.UTF8.GetString(input));
        }
        catch (DocumentException e)
        {
            Require(e.Message.StartsWith(Source + ": $", StringComparison.Ordinal) && e.Error is not null,
                $"a refusal that names no source and path: {e.Message}");
            Require(!e.Message.Contains('\n', StringComparison.Ordinal), $"a refusal of more than one line: {e.Message}");
            return null;
        }
    }

    private static void Carve(TopologySpec topology)
    {
        try
        {
            TopologyCarver.Carve(topology);
        }
        catch (TopologyException e)
        {
            Require(!string.IsNullOrWhiteSpace(e.Message), "the carver refused a topology without a message");
        }
    }
}
