using System.Text.Json.Serialization;

namespace Romana.Host.Documents;

// A scenario as written (hocon/examples/scenarios/*.json); ScenarioReader checks it into a Scenario.

/// <summary>A cluster, optional health settings, events at virtual times, and when the run stops.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ScenarioDocument(
    ClusterFileDocument? Cluster,
    ScenarioHealthDocument? Health,
    IReadOnlyList<ScenarioEventDocument?>? Events,
    string? Until);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ScenarioHealthDocument(int? ProbeIntervalMs = null, int? FailureThreshold = null, int? RecoveryThreshold = null);

/// <summary>
/// One event: "at" and exactly one of the other fields, which names what happens ("for" goes with "ec2" only), as in
/// {"at": "5s", "fail": "node-1"} or {"at": "20s", "ec2": "throttle", "for": "5s"}.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ScenarioEventDocument(
    string? At,
    string? Fail = null,
    string? FailForwarder = null,
    string? Recover = null,
    ClusterNodeDocument? AddNode = null,
    string? RemoveNode = null,
    string? Ec2 = null,
    string? For = null,
    bool? RestartRouteManager = null);
