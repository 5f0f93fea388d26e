using Romana.Actors.Addressing;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Support;
using Romana.Contracts.Cni;
using Romana.Host.Composition;
using Romana.Host.Dataplane;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Dataplane;

/// <summary>
/// The daemon's admin API (CLUSTER, NODE-REMOVE): what it refuses before the IPAM is asked, and, on a daemon that runs
/// alone, its answers from a real IPAM on a SQLite journal.
/// </summary>
public class DaemonAdminRequestsTests
{
    private static readonly NodeName Self = new("n1");

    private static ClusterView View(params ClusterMember[] members) =>
        new("n1", true, "akka.tcp://romana@10.0.0.11:4053", members, "n1");

    private static ClusterMember Member(string? node, string status = "Up", bool reachable = true, int port = 4053) =>
        new(node, "subnet-a", $"akka.tcp://romana@10.0.0.{(node?.Length ?? 0) + 10}:{port}", status, reachable);

    [Theory]
    [InlineData(null, "node null is missing")]
    [InlineData("", "node '' is empty")]
    [InlineData("n 2", "node 'n 2' holds a space or a control character")]
    [InlineData("n2\nromana.daemon: forged", "node 'n2\\nromana.daemon: forged' holds a space or a control character")]
    [InlineData("n\u00002", "node 'n\\02' holds a space or a control character")]
    public void A_missing_or_bad_node_name_is_invalid_and_quoted_escaped(string? node, string error)
    {
        var refused = DaemonAdminRequests.Refusal(node, Self, View());
        Assert.Equal(("invalid", error), (refused?.Code, refused?.Error?[..error.Length]));
        Assert.DoesNotMatch("[\\x00-\\x1f\\x7f]", refused!.Error!);
    }

    [Fact]
    public void A_name_longer_than_a_kubernetes_node_name_is_invalid_in_a_short_error()
    {
        Assert.Null(DaemonAdminRequests.Refusal(new string('a', 253), Self, View()));
        var refused = DaemonAdminRequests.Refusal(new string('a', 254), Self, View());
        Assert.Equal("invalid", refused?.Code);
        Assert.EndsWith("(254 characters) is longer than 253 characters", refused!.Error);
        Assert.InRange(refused.Error!.Length, 1, 200);
    }

    [Fact]
    public void This_daemons_own_node_is_invalid()
    {
        var refused = DaemonAdminRequests.Refusal("n1", Self, View(Member("n1")));
        Assert.Equal("invalid", refused?.Code);
        Assert.StartsWith("node n1 is this daemon's own node", refused!.Error);
    }

    [Fact]
    public void An_up_and_reachable_member_is_a_conflict_naming_the_node_and_its_address()
    {
        var refused = DaemonAdminRequests.Refusal("n2", Self, View(Member("n1"), Member("n2", port: 4100)));
        Assert.Equal("conflict", refused?.Code);
        Assert.Equal("node n2 is an Up and reachable member of the cluster at akka.tcp://romana@10.0.0.12:4100: stop its daemon first",
            refused!.Error);
    }

    [Theory]
    [InlineData("Up", false)]
    [InlineData("Leaving", true)]
    [InlineData("Exiting", true)]
    [InlineData("Down", true)]
    [InlineData("Joining", true)]
    [InlineData("WeaklyUp", true)]
    public void A_member_that_is_not_up_or_not_reachable_is_left_to_the_ipam(string status, bool reachable) =>
        Assert.Null(DaemonAdminRequests.Refusal("n2", Self, View(Member("n1"), Member("n2", status, reachable))));

    [Fact]
    public void Only_the_members_name_role_names_its_node()
    {
        // A member without a name role (a daemon of an older build) is never taken for the node.
        Assert.Null(DaemonAdminRequests.Refusal("n2", Self, View(Member("n1"), Member(null))));
        Assert.Null(DaemonAdminRequests.Refusal("n2", Self, View(Member("n1"), Member("n22"))));
        Assert.Equal("name:n2", ClusterHosting.NameRole(new NodeName("n2")));
        Assert.Equal(new NodeName("n2:x"), ClusterHosting.NodeOfRole("name:n2:x"));
        Assert.Null(ClusterHosting.NodeOfRole("subnet:n2"));
        Assert.Null(ClusterHosting.NodeOfRole("node"));
    }

    // ---- a daemon that runs alone (romana.cluster.enabled = off), on a real IPAM -----------------------------------------

    private static async Task<(StartedIpam Ipam, DaemonAdminRequests Admin, CapturingLog Log)> AloneAsync(TempJournal journal)
    {
        var ipam = await journal.StartAsync(Topologies.OneSubnet("100.64.0.0/24", 28));
        foreach (var (node, ip) in new[] { ("n1", "10.1.0.1"), ("n2", "10.1.0.2") })
            Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new NodeName(node), new SubnetId("s1"), ip)));
        var log = new CapturingLog();
        var self = new NodeIdentity(Self, new SubnetId("s1"), Ipv4.Parse("10.1.0.1"));
        return (ipam, new DaemonAdminRequests(ipam.Client, self, null, log), log);
    }

    [Fact]
    public async Task Alone_CLUSTER_answers_its_own_node_and_no_members()
    {
        using var journal = new TempJournal();
        var (ipam, admin, _) = await AloneAsync(journal);
        await using var running = ipam;
        var reply = await admin.HandleAsync(new DaemonRequest(DaemonProtocol.Cluster, "", ""));
        Assert.True(reply.Ok);
        Assert.Equal(("n1", false, null, 0, null), (reply.Cluster!.Self, reply.Cluster.Enabled, reply.Cluster.SelfAddress,
            reply.Cluster.Members.Length, reply.Cluster.RouteManager));
    }

    [Fact]
    public async Task NODE_REMOVE_releases_the_nodes_addresses_with_the_reason_and_answers_how_many()
    {
        using var journal = new TempJournal();
        var (ipam, admin, log) = await AloneAsync(journal);
        await using var running = ipam;
        for (var i = 0; i < 3; i++) Assert.IsType<AddressAssigned>(await ipam.AskAsync(new Allocate(new("n2"), new($"c{i}/eth0"))));
        var kept = Assert.IsType<AddressAssigned>(await ipam.AskAsync(new Allocate(new("n1"), new("c9/eth0"))));

        var reply = await admin.HandleAsync(new DaemonRequest(DaemonProtocol.NodeRemove, "", "", Node: "n2"));

        Assert.Equal((true, "n2", "s1", 3), (reply.Ok, reply.Node, reply.Subnet, reply.Released));
        await using var audit = await RomanaHost.StartAuditAsync(journal.Settings);
        var events = await audit.Audit.ByPersistenceIdAsync("node-n2");
        var released = Assert.Single(events.OfType<NodeMessages.AddressesReleased>());
        Assert.Equal(("removed by romana node remove", 3), (released.Reason, released.Addresses.Length));
        Assert.All(released.Addresses, a => Assert.Equal("removed by romana node remove", a.Reason));
        Assert.NotEmpty(events.OfType<NodeMessages.BlockReturned>());
        Assert.All(events.OfType<NodeMessages.BlockReturned>(), b => Assert.Equal("removed by romana node remove", b.Reason));
        Assert.Equal(kept.Address, Assert.IsType<AddressAssigned>(await ipam.AskAsync(new GetAddress(new("c9/eth0")))).Address);
        Assert.Contains(log.Lines, l => l.Contains("NODE-REMOVE n2: removed from subnet s1; 3 addresses released"));
        // Gone: a second removal finds nothing, and the IPAM's answer is passed on.
        var again = await admin.HandleAsync(new DaemonRequest(DaemonProtocol.NodeRemove, "", "", Node: "n2"));
        Assert.Equal("not-found", again.Code);
    }

    [Fact]
    public async Task NODE_REMOVE_of_its_own_node_or_of_a_node_the_ipam_does_not_know_changes_nothing()
    {
        using var journal = new TempJournal();
        var (ipam, admin, _) = await AloneAsync(journal);
        await using var running = ipam;
        Assert.IsType<AddressAssigned>(await ipam.AskAsync(new Allocate(new("n1"), new("c1/eth0"))));

        var own = await admin.HandleAsync(new DaemonRequest(DaemonProtocol.NodeRemove, "", "", Node: "n1"));
        var unknown = await admin.HandleAsync(new DaemonRequest(DaemonProtocol.NodeRemove, "", "", Node: "n7"));
        var missing = await admin.HandleAsync(new DaemonRequest(DaemonProtocol.NodeRemove, "", ""));

        Assert.Equal(("invalid", "not-found", "invalid"), (own.Code, unknown.Code, missing.Code));
        Assert.Contains("n7", unknown.Error);
        Assert.Equal(0, journal.CountEvents("AddressesReleased"));
        Assert.Equal(2, ((SubnetView)await ipam.AskAsync(new GetSubnet(new SubnetId("s1")))).Subnet.Members.Length);
    }
}
