using System.Collections.Concurrent;
using Prometheus;
using Romana.Actors.Addressing;

namespace Romana.Host.Observability;

/// <summary>
/// Romana's collectors, on a registry of their own per host instance (never prometheus-net's static default registry): two
/// daemons or a daemon and a simulation in one process keep their figures apart. Fed by <see cref="MetricsFeed"/> (what
/// the actors publish), by the EC2 and probe decorators, and read by <see cref="RomanaHttpServer"/>.
/// </summary>
public sealed class RomanaMetrics
{
    private readonly ConcurrentDictionary<NodeName, DateTimeOffset> _firstMiss = new();
    private (bool Ok, DateTimeOffset At, string Writer, string Cause)? _lastWrite;
    private readonly Lock _gate = new();

    public RomanaMetrics()
    {
        var f = Metrics.WithCustomRegistry(Registry);
        Allocations = f.CreateCounter("romana_ipam_allocations_total",
            "Pod addresses handed out by a node, counted when the allocation is written to the journal.", "node");
        Releases = f.CreateCounter("romana_ipam_releases_total",
            "Pod addresses given back by a node (CNI DEL, pod gone, node retired), counted when written to the journal.", "node");
        NodeHeld = f.CreateGauge("romana_ipam_node_addresses_held",
            "Pod addresses a node holds now, by the node actors of this process.", "subnet", "node");
        NodeFree = f.CreateGauge("romana_ipam_node_addresses_free",
            "Addresses in a node's blocks neither held nor fenced by a reservation, by the node actors of this process.", "subnet", "node");
        NodeBlocks = f.CreateGauge("romana_ipam_node_blocks", "Blocks a node holds now.", "subnet", "node");
        SubnetHeld = f.CreateGauge("romana_ipam_subnet_addresses_held",
            "Pod addresses held in a subnet (sum over its nodes; only where this process runs every node's actor).", "subnet");
        SubnetFree = f.CreateGauge("romana_ipam_subnet_addresses_free",
            "Free addresses in the blocks of a subnet's nodes (only where this process runs every node's actor).", "subnet");
        SubnetBlocks = f.CreateGauge("romana_ipam_subnet_blocks", "Blocks of a subnet assigned to its nodes.", "subnet");
        SubnetBlockCapacity = f.CreateGauge("romana_ipam_subnet_block_capacity",
            "Blocks a subnet's pod prefix holds in all (assigned or not, reservations included).", "subnet");
        Ec2Calls = f.CreateCounter("romana_ec2_calls_total",
            "EC2 calls by action and result (ok, or the error code EC2 answered; error when it answered none).", "action", "result");
        Ec2Throttles = f.CreateCounter("romana_ec2_throttles_total",
            "EC2 calls answered with a throttling error (RequestLimitExceeded), by action.", "action");
        Routes = f.CreateGauge("romana_routes",
            "Pod routes Romana owns in a route table (its journal's view: claimed, created or replaced, not deleted).", "table");
        RouteBudget = f.CreateGauge("romana_route_budget",
            "Routes a table may hold for pods: its route limit minus the routes Romana does not own.", "table");
        Failovers = f.CreateCounter("romana_failovers_total", "Nodes judged failed by their subnet's supervisor.", "subnet");
        RepairSeconds = f.CreateHistogram("romana_failover_repair_seconds",
            "From a node's first missed probe (or its judgement, when no probe of this process saw it) to the moment the route " +
            "manager owns no route through it any more.",
            new HistogramConfiguration { Buckets = [0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120, 300] });
        Probes = f.CreateCounter("romana_health_probes_total",
            "Health probes of forwarders by result: answered, missed (no answer within romana.health.probe-timeout).", "result");
        JournalWrite = f.CreateHistogram("romana_journal_write_seconds",
            "Journal writes by writer (node, subnet, routes, health): from the persist call to its handler, a batch as one write.",
            new HistogramConfiguration
            {
                LabelNames = ["writer"],
                Buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
            });
        JournalFailures = f.CreateCounter("romana_journal_write_failures_total",
            "Journal writes that failed or were rejected, by writer; the writer stops and recovers from the journal.", "writer");
        Events = f.CreateCounter("romana_events_total", "Events written to the journal by the actors of this process, by type.", "type");
        PolicyApplies = f.CreateCounter("romana_policy_applies_total",
            "NetworkPolicy applies of this node's agent by result (ok, failed: tried again with backoff).", "result");
        PolicyApplySeconds = f.CreateHistogram("romana_policy_apply_seconds",
            "From the start of an apply (compile and kernel transaction) to its end, for applies that succeeded.",
            new HistogramConfiguration { Buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        Policies = f.CreateGauge("romana_policy_policies", "NetworkPolicies in the world of this node's last apply.");
        PolicyPods = f.CreateGauge("romana_policy_pods",
            "Pods in the world of this node's last apply: of the cluster (scope cluster), hosted here (scope local).", "scope");
        PolicyDroppedPackets = f.CreateCounter("romana_policy_dropped_packets_total",
            "Packets NetworkPolicy dropped, per local pod (namespace/name) and direction (ingress, egress).", "pod", "direction");
        PolicyDroppedBytes = f.CreateCounter("romana_policy_dropped_bytes_total",
            "Bytes NetworkPolicy dropped, per local pod (namespace/name) and direction (ingress, egress).", "pod", "direction");
    }

    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    public Counter Allocations { get; }
    public Counter Releases { get; }
    public Gauge NodeHeld { get; }
    public Gauge NodeFree { get; }
    public Gauge NodeBlocks { get; }
    public Gauge SubnetHeld { get; }
    public Gauge SubnetFree { get; }
    public Gauge SubnetBlocks { get; }
    public Gauge SubnetBlockCapacity { get; }
    public Counter Ec2Calls { get; }
    public Counter Ec2Throttles { get; }
    public Gauge Routes { get; }
    public Gauge RouteBudget { get; }
    public Counter Failovers { get; }
    public Histogram RepairSeconds { get; }
    public Counter Probes { get; }
    public Histogram JournalWrite { get; }
    public Counter JournalFailures { get; }
    public Counter Events { get; }
    public Counter PolicyApplies { get; }
    public Histogram PolicyApplySeconds { get; }
    public Gauge Policies { get; }
    public Gauge PolicyPods { get; }
    public Counter PolicyDroppedPackets { get; }
    public Counter PolicyDroppedBytes { get; }

    /// <summary>The Prometheus text format (version 0.0.4) of every collector.</summary>
    public async Task<string> ExportAsync(CancellationToken cancellation = default)
    {
        using var stream = new MemoryStream();
        await Registry.CollectAndExportAsTextAsync(stream, cancellation);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    // ---- probes: when a node began to miss ----------------------------------------------------------------------------

    public void ProbeAnswered(NodeName node)
    {
        Probes.WithLabels("answered").Inc();
        _firstMiss.TryRemove(node, out _);
    }

    public void ProbeMissed(NodeName node, DateTimeOffset at)
    {
        Probes.WithLabels("missed").Inc();
        _firstMiss.TryAdd(node, at);
    }

    /// <summary>The first miss of the node's current run of missed probes, if a probe of this process saw it.</summary>
    public DateTimeOffset? FirstMissOf(NodeName node) => _firstMiss.TryGetValue(node, out var at) ? at : null;

    // ---- the journal's last write, for /readyz -------------------------------------------------------------------------

    public void JournalWritten(string writer, DateTimeOffset at)
    {
        lock (_gate) _lastWrite = (true, at, writer, "");
    }

    public void JournalWriteFailed(string writer, string cause, DateTimeOffset at)
    {
        JournalFailures.WithLabels(writer).Inc();
        lock (_gate) _lastWrite = (false, at, writer, cause);
    }

    /// <summary>Why the journal is not known writable (null: the last write this process made was stored, or none was made).</summary>
    public string? JournalNotWritable()
    {
        lock (_gate)
            return _lastWrite is { Ok: false } failed
                ? $"journal: the last write ({failed.Writer}, at {failed.At:O}) failed: {failed.Cause}"
                : null;
    }
}
