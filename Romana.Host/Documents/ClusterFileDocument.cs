using System.Text.Json.Serialization;

namespace Romana.Host.Documents;

// A cluster file as written (hocon/examples/*.json). Everything is nullable so that a missing field is reported by
// ClusterFileReader with its path, instead of turning into a default.

/// <summary>The topology, the route tables and the nodes that `romana plan` and `romana simulate` read.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ClusterFileDocument(
    string? PodCidr,
    int? BlockPrefixLength,
    int? RouteLimit,
    IReadOnlyList<ClusterZoneDocument?>? Zones,
    IReadOnlyList<ClusterRouteTableDocument?>? RouteTables,
    IReadOnlyList<ClusterNodeDocument?>? Nodes);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ClusterZoneDocument(string? Name, IReadOnlyList<ClusterSubnetDocument?>? Subnets, string? PodPrefix = null);

/// <summary>A VPC subnet: its CIDR, the route table associated with it, and optionally its own pod prefix.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ClusterSubnetDocument(string? Id, string? Cidr, string? RouteTable, string? PodPrefix = null);

/// <summary>A route table and the routes in it that are not Romana's (they count against its limit).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ClusterRouteTableDocument(string? Id, int? ForeignRoutes = null);

/// <summary>A node, also as a scenario's addNode event writes it.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ClusterNodeDocument(string? Name, string? Subnet, string? Ip, string? Eni, string? InstanceId = null,
    int? Pods = null, bool? Healthy = null);
