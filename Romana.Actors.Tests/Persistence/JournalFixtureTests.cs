using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Routing;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;
using Romana.Host.Cli;
using Romana.Host.Composition;
using Romana.Host.Ec2;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.IpamMessages;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Tests.Persistence;

/// <summary>
/// A journal written by the build before issue 10 (Fixtures/journal-2282ad0) is read by this build: recovered by the
/// actors, replayed by the audit, every event and snapshot deserialized. A copy is used; the fixture is never written.
/// </summary>
public sealed class JournalFixtureTests : IDisposable
{
    private static readonly string Fixture = Path.Combine(Paths.RepositoryRoot, "Romana.Actors.Tests", "Fixtures", "journal-2282ad0");
    private static readonly ClusterTopology Topology = TopologyCarver.Carve(new TopologySpec("100.64.0.0/24", 28,
    [
        new ZoneSpec("z1",
            [new SubnetSpec("s1", VpcCidr: "10.0.1.0/24", RouteTable: "rtb-1"),
                new SubnetSpec("s2", VpcCidr: "10.0.2.0/24", RouteTable: "rtb-1")]),
        new ZoneSpec("z2", [new SubnetSpec("s3", VpcCidr: "10.0.3.0/24", RouteTable: "rtb-2")]),
    ]));

    private readonly TempFolder _folder = new();
    private readonly JsonObject _expected = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture, "expected.json")))!.AsObject();
    private readonly JournalSettings _journal;

    public JournalFixtureTests()
    {
        foreach (var file in new[] { "journal.db", "journal.snapshots.db" })
            File.Copy(Path.Combine(Fixture, file), Path.Combine(_folder.Path, file));
        _journal = JournalSettings.Sqlite(Path.Combine(_folder.Path, "journal.db"));
    }

    [Fact]
    public async Task The_ipam_recovers_every_node_block_address_and_reservation()
    {
        await using var romana = await RomanaHost.StartIpamAsync(Topology, _journal, TempJournal.Quiet);
        var state = (IpamStateView)await romana.Ipam.AskAsync(new GetIpamState());
        var nodes = state.Subnets.SelectMany(s => s.Members.Select(m => (Subnet: s.Subnet, Member: m)))
            .ToDictionary(x => x.Member.Node.Value);
        var expectedNodes = _expected["nodes"]!.AsArray();
        Assert.Equal(expectedNodes.Select(n => n!["name"]!.GetValue<string>()).Order(), nodes.Keys.Order());
        foreach (var expected in expectedNodes)
        {
            var name = expected!["name"]!.GetValue<string>();
            var (subnet, member) = nodes[name];
            Assert.Equal(expected["subnet"]!.GetValue<string>(), subnet.Value);
            Assert.Equal(expected["ip"]!.GetValue<string>(), member.Ip.ToString());
            Assert.Equal(expected["eni"]!.GetValue<string>(), member.Eni);
            var node = state.Nodes.Single(n => n.Node.Value == name);
            Assert.Equal(expected["blocks"]!.AsArray().Select(b => b!.GetValue<string>()), node.Blocks.Select(b => b.ToString()));
            Assert.Equal(expected["addresses"]!.AsArray()
                .Select(a => (a!["key"]!.GetValue<string>(), a["address"]!.GetValue<string>(), a["pod"]?.GetValue<string>())),
                node.Allocations.OrderBy(a => a.Address).Select(a => (a.Key.Value, a.Address.ToString(), a.Pod)));
        }
        Assert.Equal(_expected["reservations"]!.AsArray().Select(r => r!.GetValue<string>()),
            state.Subnets.SelectMany(s => s.Reservations).Select(r => r.ToString()));

        // And it goes on from there: the next address of a recovered node is the lowest free one.
        var next = Assert.IsType<AddressAssigned>(await romana.Ipam.AskAsync(new Allocate(new NodeName("b1"),
            new AllocationKey("after-upgrade/eth0"))));
        Assert.Equal("100.64.0.76", next.Address.ToString());
    }

    [Fact]
    public async Task The_route_manager_recovers_the_routes_it_owned()
    {
        var lab = new Ec2Lab();
        await using var romana = await RomanaHost.StartAsync(TempJournal.Quiet, akka => akka
            .AddRomanaPersistence(_journal).AddRomanaIpam(Topology).AddRomanaRoutes(Topology), services => services
            .AddSingleton<IEc2RouteTables>(new Ec2LabRouteTables(lab))
            .AddSingleton(RouteSettings.Default with { Tables = new RouteTableSelector([], "romana.io/cluster", "nowhere") }));
        var view = await romana.Registry.Get<VpcRouteActor>().Ask<RouteManagerView>(new GetRouteState(), TimeSpan.FromSeconds(10));
        Assert.Equal(["rtb-1", "rtb-2"], view.Tables);
        Assert.Equal(
            _expected["routes"]!.AsArray()
                .Select(r => (r!["table"]!.GetValue<string>(), r["cidr"]!.GetValue<string>(), r["target"]!.GetValue<string>(),
                    r["eni"]!.GetValue<string>(), r["confirmed"]!.GetValue<bool>())),
            view.Routes.OrderBy(r => r.Table).ThenBy(r => r.Route.Cidr)
                .Select(r => (r.Table, r.Route.Cidr.ToString(), r.Route.Target.Value, r.Route.Eni, r.Route.Confirmed)));
    }

    [Fact]
    public async Task The_audit_replays_it_to_the_same_document_and_reads_every_event()
    {
        await using var romana = await RomanaHost.StartAuditAsync(_journal);
        var replay = await AuditQueries.ReplayAsync(romana.Audit, null);
        Assert.Equal(_expected["eventCounts"]!.AsObject().Sum(c => c.Value!.GetValue<long>()), replay.Applied);
        var document = JsonNode.Parse(AuditCommands.ReplayDocument(replay).ToJson())!.AsObject();
        var expected = _expected["replay"]!.DeepClone().AsObject();
        // The forwarded share is the one figure whose meaning changed since (issue 13: every table's pods count, its own
        // subnet's included, over the pods the table routes); it is checked against the expected routes and addresses below.
        var forwarded = document["forwardedFraction"]!.GetValue<double>();
        expected.Remove("forwardedFraction");
        document.Remove("forwardedFraction");
        Assert.True(JsonNode.DeepEquals(expected, document), $"replay differs:\n{document}");
        Assert.Equal(ForwardedShare(expected["routeTables"]!.AsArray(), _expected["nodes"]!.AsArray()), forwarded, 6);

        var holdings = await AuditQueries.AddressAsync(romana.Audit, Ipv4.Parse("100.64.0.32"));
        Assert.NotEmpty(holdings);
        Assert.All(holdings, h => Assert.Equal("a2", h.Node.Value));
    }

    /// <summary>
    /// Of the pods each table routes (its longest matching route, if any), the share whose route leads to another node than
    /// the owner of the pod's block, over every table: computed here from the fixture's own routes and addresses.
    /// </summary>
    private static double ForwardedShare(JsonArray tables, JsonArray nodes)
    {
        var blocks = (from n in nodes
                      from b in n!["blocks"]!.AsArray()
                      let block = Ipv4Cidr.Parse(b!.GetValue<string>())
                      let held = n["addresses"]!.AsArray().Count(a => block.Contains(Ipv4.Parse(a!["address"]!.GetValue<string>())))
                      select (Block: block, Owner: n["name"]!.GetValue<string>(), Pods: held)).ToList();
        long pods = 0, forwarded = 0;
        foreach (var table in tables)
        {
            var routes = table!["routes"]!.AsArray().Select(r => (Cidr: Ipv4Cidr.Parse(r!["cidr"]!.GetValue<string>()),
                Target: r["target"]!.GetValue<string>())).ToList();
            foreach (var (block, owner, count) in blocks)
            {
                var route = routes.Where(r => r.Cidr.Contains(block)).OrderByDescending(r => r.Cidr.PrefixLength).Select(r => r.Target)
                    .FirstOrDefault();
                if (route is null) continue;
                pods += count;
                if (route != owner) forwarded += count;
            }
        }
        return pods == 0 ? 0 : Math.Round((double)forwarded / pods, 6);
    }

    [Fact]
    public void Every_event_and_snapshot_deserializes_with_this_build()
    {
        var serializer = new Romana.Actors.Persistence.RomanaSerializer(null!);
        foreach (var (file, table, column) in new[] { ("journal.db", "journal", "message"),
            ("journal.snapshots.db", "snapshot", "snapshot") })
        {
            using var connection = new SqliteConnection($"Data Source={Path.Combine(_folder.Path, file)};Mode=ReadOnly");
            connection.Open();
            using var query = connection.CreateCommand();
            query.CommandText = $"SELECT manifest, {column} FROM {table}";
            using var reader = query.ExecuteReader();
            var read = 0;
            while (reader.Read())
            {
                var value = serializer.FromBinary((byte[])reader[1], reader.GetString(0));
                Assert.True(value is IRomanaEvent or Romana.Actors.Persistence.IRomanaSnapshot,
                    $"{reader.GetString(0)} read as {value.GetType()}");
                read++;
            }
            Assert.True(read > 0, $"{file} holds no rows");
        }
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _folder.Dispose();
    }
}
