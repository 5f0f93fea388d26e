using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Romana.Host.Documents;

// An IPAM conformance vector as written (shared/conformance/README.md). Only its shape is checked when it is read:
// whether a topology or a step makes sense is what the run finds out and compares with the vector's expectations.

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ConformanceVectorDocument(
    string? Name,
    string? From,
    string? Note,
    VectorTopologyDocument? Topology,
    string? ExpectLoad,
    IReadOnlyList<VectorStepDocument?>? Steps);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record VectorTopologyDocument(string? PodCidr, int? BlockPrefixLength, IReadOnlyList<VectorZoneDocument?>? Zones);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record VectorZoneDocument(string? Name, IReadOnlyList<VectorSubnetDocument?>? Subnets, string? PodPrefix = null);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record VectorSubnetDocument(string? Id, string? PodPrefix = null);

/// <summary>A step: the operation, the fields it takes (which depend on it), and the expected outcome as any JSON.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record VectorStepDocument(
    string? Op,
    string? Node = null,
    string? Subnet = null,
    string? Ip = null,
    string? Key = null,
    string? Address = null,
    string? Cidr = null,
    JsonNode? Expect = null);
