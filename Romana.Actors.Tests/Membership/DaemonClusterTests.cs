using Akka.Cluster;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Dataplane;
using Romana.Actors.Tests.Support;
using Romana.Host.Dataplane;
using Romana.Host.Ec2;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Membership;

/// <summary>
/// `romana daemon` with romana.cluster.enabled = on, in this process, on PostgreSQL: it learns who it is from the lab's
/// IMDSv2, joins the cluster, turns the source/destination check off on its ENI and runs the route manager singleton against
/// `romana ec2 serve`'s Query API server through AWSSDK.EC2, with credentials from the SDK's default chain.
/// </summary>
[Collection(ClusterCollection.Name)]
public class DaemonClusterTests(PostgreSqlServer server)
{
    [SkippableFact]
    public async Task A_member_daemon_takes_its_identity_from_imds_turns_the_source_dest_check_off_and_runs_the_route_singleton()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        await using var journal = await server.CreateJournalAsync();
        using var folder = new TempFolder();
        var ec2 = new Ec2Lab();
        foreach (var (table, subnet) in new[] { ("rtb-a", "subnet-a"), ("rtb-b", "subnet-b") })
        {
            ec2.AddRouteTable(table, subnetIds: [subnet], tags: [new("romana.io/cluster", "lab")], vpcCidr: "10.0.0.0/16");
            ec2.PutRoute(table, "0.0.0.0/0", "igw-lab"); // someone else's: never touched
        }
        await using var endpoint = Ec2QueryApiServer.Start(ec2);
        await using var imds = ImdsLabServer.Start();
        imds.Default = new InstanceMetadataRecord("i-0001", "0a:00:00:00:00:01", "eni-0001", "subnet-a", "10.0.0.11");
        // The SDK's default credential chain: here, its environment variables.
        Environment.SetEnvironmentVariable("AWS_ACCESS_KEY_ID", "lab");
        Environment.SetEnvironmentVariable("AWS_SECRET_ACCESS_KEY", "lab");
        var port = ClusterMembershipTests.FreePort();
        var config = RomanaConfig.Load(folder.Write("member.conf", $$"""
            romana {
              topology {
                pod-cidr = "100.64.0.0/16", block-prefix-length = 26
                zones = [{ name = "z", subnets = [{ id = "subnet-a", route-table = "rtb-a" }, { id = "subnet-b", route-table = "rtb-b" }] }]
              }
              node { name = "n1", imds.endpoint = "{{imds.Url}}" }
              cluster { enabled = on, port = {{port}}, seed-nodes = ["akka.tcp://romana@127.0.0.1:{{port}}"] }
              aws { region = "eu-west-1", endpoint = "{{endpoint.Url}}" }
              routes.tables { tag-key = "romana.io/cluster", tag-value = "lab" }
              health.probe-port = {{ClusterMembershipTests.FreePort()}}
              http.port = 0
              persistence { journal = postgresql, postgresql.connection-string = "{{journal.Settings.PostgreSqlConnectionString}}" }
              cni.socket = "{{folder.Path}}/cni.sock"
            }
            akka.loglevel = WARNING
            akka.actor.serialize-messages = on
            {{InProcessOnlySerializer.Hocon}}
            """));
        await using var daemon = await RomanaDaemon.StartAsync(config, hostNetwork: new InMemoryHostNetwork());

        Assert.Equal((new NodeName("n1"), new SubnetId("subnet-a"), Ipv4.Parse("10.0.0.11"), "i-0001", "eni-0001"),
            (daemon.Node.Name, daemon.Node.Subnet, daemon.Node.Ip, daemon.Node.InstanceId, daemon.Node.Eni));
        var self = Akka.Cluster.Cluster.Get(daemon.System).SelfMember;
        Assert.Equal(("romana", port), (self.Address.System, self.Address.Port));
        Assert.True(self.HasRole("node") && self.HasRole("subnet:subnet-a"), string.Join(", ", self.Roles));
        Assert.False(ec2.SourceDestCheck("eni-0001"));
        Assert.Contains(ec2.Calls, c => c.Action == "ModifyNetworkInterfaceAttribute" && c.Parameters["NetworkInterfaceId"] == "eni-0001");

        // A pod on n1: its block must be reached from subnet-b's table, through n1's ENI.
        var allocated = await daemon.Ipam.AskAsync(new Allocate(new NodeName("n1"), new AllocationKey("pod-1")));
        Assert.True(allocated is AddressAssigned, allocated.ToString());
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!ec2.RoutesOf("rtb-b").Any(r => r.Target == "eni-0001"))
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"no route to eni-0001 in rtb-b: {string.Join(", ", ec2.RoutesOf("rtb-b"))}");
            await Task.Delay(200);
        }
        Assert.Contains(("0.0.0.0/0", "igw-lab"), ec2.RoutesOf("rtb-b"));
        Assert.Contains(("0.0.0.0/0", "igw-lab"), ec2.RoutesOf("rtb-a"));
        Assert.Equal(MemberStatus.Up, Akka.Cluster.Cluster.Get(daemon.System).SelfMember.Status);
    }
}
