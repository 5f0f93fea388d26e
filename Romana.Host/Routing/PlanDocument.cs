using System.Collections.Immutable;
using System.Text.Json.Nodes;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Host.Routing;

/// <summary>
/// {"subnets":[{"id","podPrefix"}], "nodes":[{"name","subnet","ip","blocks","healthy"}],
///  "routeTables":[{"id","budget","routes":[{"cidr","target","eni"}]}], "forwardedFraction"}: what `romana plan --json`
/// prints, the final state of `romana simulate --json`, and `romana audit replay --json`.
/// </summary>
public static class PlanDocument
{
    public sealed record Node(string Name, string Subnet, string Ip, ImmutableArray<Ipv4Cidr> Blocks, bool Healthy);

    public static JsonObject ToJson(IEnumerable<(string Id, Ipv4Cidr PodPrefix)> subnets, IEnumerable<Node> nodes, IEnumerable<TablePlan> tables,
        double forwardedFraction) => new()
    {
        ["subnets"] = new JsonArray([.. subnets.Select(s => (JsonNode)new JsonObject { ["id"] = s.Id, ["podPrefix"] = s.PodPrefix.ToString() })]),
        ["nodes"] = new JsonArray([.. nodes.Select(n => (JsonNode)new JsonObject
        {
            ["name"] = n.Name,
            ["subnet"] = n.Subnet,
            ["ip"] = n.Ip,
            ["blocks"] = new JsonArray([.. n.Blocks.Select(b => (JsonNode)JsonValue.Create(b.ToString()))]),
            ["healthy"] = n.Healthy,
        })]),
        ["routeTables"] = new JsonArray([.. tables.Select(t => (JsonNode)new JsonObject
        {
            ["id"] = t.Table,
            ["budget"] = t.Budget,
            ["routes"] = new JsonArray([.. t.Routes.OrderBy(r => r.Cidr).Select(r => (JsonNode)new JsonObject
            {
                ["cidr"] = r.Cidr.ToString(),
                ["target"] = r.Target.Value,
                ["eni"] = r.Eni,
            })]),
        })]),
        ["forwardedFraction"] = Math.Round(forwardedFraction, 6),
    };
}
