using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Host.Documents;

/// <summary>
/// {"subnets":[{"id","podPrefix"}], "nodes":[{"name","subnet","ip","blocks","healthy"}],
///  "routeTables":[{"id","budget","routes":[{"cidr","target","eni"}]}], "forwardedFraction"}: what `romana plan --json`
/// prints, the final state of `romana simulate --json`, and `romana audit replay --json`.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record PlanDocument(
    IReadOnlyList<PlanDocument.Subnet> Subnets,
    IReadOnlyList<PlanDocument.Node> Nodes,
    IReadOnlyList<PlanDocument.RouteTable> RouteTables,
    double ForwardedFraction)
{
    [JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
    public sealed record Subnet(string Id, Ipv4Cidr PodPrefix);

    [JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
    public sealed record Node(string Name, string Subnet, string Ip, ImmutableArray<Ipv4Cidr> Blocks, bool Healthy);

    [JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
    public sealed record RouteTable(string Id, int Budget, IReadOnlyList<Route> Routes);

    [JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
    public sealed record Route(Ipv4Cidr Cidr, string Target, string Eni);

    /// <summary>Routes in prefix order and the fraction to six places, so that the same plan prints the same text.</summary>
    public static PlanDocument Of(IEnumerable<(string Id, Ipv4Cidr PodPrefix)> subnets, IEnumerable<Node> nodes,
        IEnumerable<TablePlan> tables, double forwardedFraction) => new(
        [.. subnets.Select(s => new Subnet(s.Id, s.PodPrefix))],
        [.. nodes],
        [.. tables.Select(t => new RouteTable(t.Table, t.Budget,
            [.. t.Routes.OrderBy(r => r.Cidr).Select(r => new Route(r.Cidr, r.Target.Value, r.Eni))]))],
        Math.Round(forwardedFraction, 6));

    /// <summary>Indented JSON, through the generated serializer.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, DocumentJson.Default.PlanDocument);

    /// <summary>A plan document read back (by tests and scripts); <paramref name="source"/> names it in errors.</summary>
    public static PlanDocument Parse(string json, string? source = null) =>
        DocumentReader.Read(json, source, DocumentJson.Default.PlanDocument, document => document,
            error => new PlanDocumentException(error));
}

public sealed class PlanDocumentException(DocumentError error) : DocumentException(error);
