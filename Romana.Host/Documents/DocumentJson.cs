using System.Text.Json;
using System.Text.Json.Serialization;
using Romana.Actors.Addressing;

namespace Romana.Host.Documents;

/// <summary>
/// The one serializer context of the JSON documents Romana reads and writes: cluster files, scenarios, conformance
/// vectors (read), the plan document and the simulation's document (written, and read back by tests). Strict on
/// purpose: property names are matched exactly (camelCase), a property given twice is an error, and every document
/// record refuses properties it does not know (<see cref="JsonUnmappedMemberHandling.Disallow"/>).
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true,
    AllowDuplicateProperties = false, Converters = [typeof(Ipv4CidrJsonConverter)])]
[JsonSerializable(typeof(ClusterFileDocument))]
[JsonSerializable(typeof(ScenarioDocument))]
[JsonSerializable(typeof(ConformanceVectorDocument))]
[JsonSerializable(typeof(PlanDocument))]
[JsonSerializable(typeof(SimulationDocument))]
[JsonSerializable(typeof(string))]
public sealed partial class DocumentJson : JsonSerializerContext;

/// <summary>A prefix as its text, "100.64.0.0/26"; anything else is refused where it is read.</summary>
public sealed class Ipv4CidrJsonConverter : JsonConverter<Ipv4Cidr>
{
    public override Ipv4Cidr Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String && Ipv4Cidr.TryParse(reader.GetString(), out var cidr)
            ? cidr
            : throw new JsonException("expected an IPv4 CIDR such as 100.64.0.0/26");

    public override void Write(Utf8JsonWriter writer, Ipv4Cidr value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}
