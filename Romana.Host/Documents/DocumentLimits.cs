namespace Romana.Host.Documents;

/// <summary>
/// The bounds of what a document may ask for, beyond what its topology can hold: every count is checked when the document
/// is read, before any work starts, so that a typing mistake (a pod count of 2^31 - 1) is an error line and not hours of
/// work and gigabytes of memory. README, "Limits and hardening", says why each is what it is.
/// </summary>
public static class DocumentLimits
{
    /// <summary>A document file is read whole; the largest example is 20 KB and a cluster of 100,000 nodes about 15 MB.</summary>
    public const long LargestDocumentBytes = 64L * 1024 * 1024;

    /// <summary>Names and ids: Kubernetes allows a node name of at most 253 characters (a DNS subdomain).</summary>
    public const int LongestName = 253;

    /// <summary>The addresses of the largest block Romana supports (/16).</summary>
    public const int MostPodsPerNode = 65_536;

    /// <summary>Pods of a cluster file (or held at once by a simulation): about a minute of durable allocations here.</summary>
    public const int MostPods = 1_000_000;

    /// <summary>Nodes of a cluster file: twenty times the 5,000 nodes Kubernetes supports.</summary>
    public const int MostNodes = 100_000;

    /// <summary>
    /// Nodes of a simulation at once: every node is probed every probe interval, in virtual time; 20,160 nodes take about
    /// a few minutes and GBs here (README, Performance).
    /// </summary>
    public const int MostSimulatedNodes = 25_000;

    /// <summary>Subnets of a topology: AWS allows 200 per VPC by default.</summary>
    public const int MostSubnets = Romana.Actors.Topology.TopologyCarver.MostSubnets;

    /// <summary>An EC2 route table holds at most 1,000 routes (the adjustable quota's maximum).</summary>
    public const int MostRoutes = 1_000;

    /// <summary>Virtual time of a simulation: minutes of cluster life are what failover is judged on.</summary>
    public static readonly TimeSpan LongestSimulation = TimeSpan.FromHours(1);

    /// <summary>Events of a scenario.</summary>
    public const int MostEvents = 10_000;

    /// <summary>The probe interval of a simulation, in milliseconds: from its step (50 ms) to a minute.</summary>
    public const int ShortestProbeIntervalMs = 50;

    public const int LongestProbeIntervalMs = 60_000;

    /// <summary>Probes in a row that judge a node failed or recovered.</summary>
    public const int MostProbeThreshold = 100;

    /// <summary>Steps of a conformance vector.</summary>
    public const int MostVectorSteps = 100_000;
}
