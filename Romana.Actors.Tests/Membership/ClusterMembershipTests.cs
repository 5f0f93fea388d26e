using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Aws;
using Romana.Host.Composition;
using Romana.Host.Dataplane;
using Romana.Host.Ec2;
using ClusterSettings = Romana.Host.Composition.ClusterSettings;

namespace Romana.Actors.Tests.Membership;

/// <summary>
/// Daemons as cluster members: settings read with errors naming the setting and value, several actor systems in this
/// process joining through seed nodes with their roles and the split-brain resolver, TLS that keeps out a member without
/// the cluster's certificate, and the IMDSv2 identity.
/// </summary>
public class ClusterMembershipTests
{
    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static ClusterSettings Settings(string hocon) =>
        ClusterSettings.From(ConfigurationFactory.ParseString(hocon).WithFallback(RomanaConfig.Reference));

    private static string ErrorOf(string hocon) => Assert.Throws<ConfigurationError>(() => Settings(hocon)).Message;

    [Fact]
    public void Settings_default_to_keep_majority_and_errors_name_the_setting_and_the_value()
    {
        var defaults = ClusterSettings.Default;
        Assert.False(defaults.Enabled);
        Assert.Equal(SplitBrainStrategy.KeepMajority, defaults.Strategy);
        Assert.Equal(TimeSpan.FromSeconds(7), defaults.StableAfter);
        Assert.Equal(4053, defaults.Port);
        Assert.False(defaults.Tls.Enabled);

        var seeds = Settings("romana.cluster.seed-nodes = [\"akka.tcp://romana@10.0.1.11:4053\"]");
        Assert.Equal(["akka.tcp://romana@10.0.1.11:4053"], seeds.SeedNodes.ToArray());

        Assert.Equal("romana.cluster.seed-nodes: '10.0.1.11:4053' is not an address such as akka.tcp://romana@10.0.1.11:4053",
            ErrorOf("romana.cluster.seed-nodes = [\"10.0.1.11:4053\"]"));
        Assert.Equal("romana.cluster.seed-nodes: 'akka.tcp://other@10.0.1.11:4053' names the actor system 'other'; " +
            "Romana's is always 'romana'", ErrorOf("romana.cluster.seed-nodes = [\"akka.tcp://other@10.0.1.11:4053\"]"));
        Assert.Equal("romana.cluster.split-brain-resolver.active-strategy: 'keep-minority' is not one of keep-majority, " +
            "keep-oldest, static-quorum, down-all", ErrorOf("romana.cluster.split-brain-resolver.active-strategy = keep-minority"));
        Assert.Equal("romana.cluster.port: 70000 is not a TCP port (0 to 65535; 0: any free port)", ErrorOf("romana.cluster.port = 70000"));
        Assert.Equal("romana.cluster.enabled: 'perhaps' is neither on nor off", ErrorOf("romana.cluster.enabled = perhaps"));
        Assert.Equal("romana.cluster.tls.certificate-path: empty while tls.enabled = on; name a PKCS#12 (.pfx) file",
            ErrorOf("romana.cluster.tls.enabled = on"));
        Assert.Equal("romana.cluster.split-brain-resolver.stable-after: 'soon' is not a duration such as 500ms, 30s or 2m",
            ErrorOf("romana.cluster.split-brain-resolver.stable-after = soon"));
        Assert.Equal("romana.aws.endpoint: 'localhost:9607' is not an http(s) URL", Assert.Throws<ConfigurationError>(() =>
            AwsSettings.From(ConfigurationFactory.ParseString("romana.aws.endpoint = \"localhost:9607\"")
                .WithFallback(RomanaConfig.Reference))).Message);
    }

    [Fact]
    public async Task A_cluster_member_on_a_sqlite_journal_is_refused_with_one_line_and_exit_2()
    {
        using var folder = new TempFolder();
        var config = folder.Write("member.conf", $$"""
            romana {
              topology { pod-cidr = "100.64.0.0/16", block-prefix-length = 26, zones = [{ name = "z", subnets = [{ id = "s1" }] }] }
              node { name = "n1", subnet = "s1", ip = "127.0.0.1", instance-id = "i-1", eni = "eni-1" }
              cluster { enabled = on, port = 0 }
              persistence { journal = sqlite, sqlite.path = "{{folder.Path}}/romana.db" }
              cni.socket = "{{folder.Path}}/cni.sock"
            }
            """);
        var (exit, output, error) = await Processes.RunAsync("dotnet", [DaemonProcess.RomanaDll, "daemon", "--config", config]);
        Assert.Equal(2, exit);
        Assert.Equal("", output);
        Assert.Equal($"romana: {config}: romana.persistence.journal: sqlite with romana.cluster.enabled = on; a cluster shares " +
            "one PostgreSQL journal (set journal = postgresql)", error.Trim());
        Assert.False(File.Exists(Path.Combine(folder.Path, "romana.db")), "the refused member touched the journal");
    }

    /// <summary>An actor system composed with AddRomanaCluster only, as the daemon composes it.</summary>
    private static Task<RomanaHost> MemberAsync(ClusterSettings settings, string subnet, string? extra = null) =>
        RomanaHost.StartAsync(ConfigurationFactory.ParseString(extra ?? "").WithFallback(TempJournal.Quiet),
            akka => akka.AddRomanaCluster(settings, [ClusterHosting.NodeRole, ClusterHosting.SubnetRole(new SubnetId(subnet))]),
            name: ClusterSettings.SystemName);

    private static ClusterSettings Seeded(int port, int seedPort, ClusterTlsSettings? tls = null) =>
        ClusterSettings.Default with
        {
            Enabled = true,
            Port = port,
            SeedNodes = [$"akka.tcp://romana@127.0.0.1:{seedPort}"],
            Tls = tls ?? ClusterTlsSettings.Off,
        };

    internal static async Task AwaitUpAsync(TimeSpan within, int count, params ActorSystem[] members)
    {
        var deadline = DateTime.UtcNow + within;
        while (members.Any(m => Akka.Cluster.Cluster.Get(m).State.Members.Count(x => x.Status == MemberStatus.Up) < count))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the cluster did not reach {count} members up");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Members_join_through_the_seed_nodes_with_their_roles_and_keep_majority_downing()
    {
        var seedPort = FreePort();
        await using var first = await MemberAsync(Seeded(seedPort, seedPort), "s1");
        await using var second = await MemberAsync(Seeded(0, seedPort), "s2");
        await AwaitUpAsync(TimeSpan.FromSeconds(30), 2, first.System, second.System);

        var members = Akka.Cluster.Cluster.Get(first.System).State.Members;
        Assert.Contains(members, m => m.Address.Port == seedPort && m.HasRole("node") && m.HasRole("subnet:s1"));
        Assert.Contains(members, m => m.Address.Port != seedPort && m.HasRole("node") && m.HasRole("subnet:s2"));
        Assert.All(members, m => Assert.Equal("romana", m.Address.System));
        var settings = first.System.Settings.Config;
        Assert.Contains("SplitBrainResolverProvider", settings.GetString("akka.cluster.downing-provider-class"));
        Assert.Equal("keep-majority", settings.GetString("akka.cluster.split-brain-resolver.active-strategy"));
        Assert.Equal(TimeSpan.FromSeconds(7), settings.GetTimeSpan("akka.cluster.split-brain-resolver.stable-after"));
    }

    /// <summary>A throwaway self-signed certificate with its key, as a PKCS#12 file in <paramref name="folder"/>.</summary>
    private static string Certificate(TempFolder folder, string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var path = Path.Combine(folder.Path, $"{name}.pfx");
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pfx, "secret"));
        return path;
    }

    [Fact]
    public async Task With_tls_a_member_with_the_cluster_certificate_joins_and_one_without_it_cannot()
    {
        using var folder = new TempFolder();
        var cluster = new ClusterTlsSettings(true, Certificate(folder, "romana-cluster"), "secret");
        var stranger = new ClusterTlsSettings(true, Certificate(folder, "stranger"), "secret");
        var seedPort = FreePort();
        const string quickGiveUp = "akka.cluster.retry-unsuccessful-join-after = 1s";
        await using var first = await MemberAsync(Seeded(seedPort, seedPort, cluster), "s1");
        await using var second = await MemberAsync(Seeded(0, seedPort, cluster), "s1");
        await AwaitUpAsync(TimeSpan.FromSeconds(30), 2, first.System, second.System);

        await using var otherCertificate = await MemberAsync(Seeded(0, seedPort, stranger), "s2", quickGiveUp);
        await using var plain = await MemberAsync(Seeded(0, seedPort), "s2", quickGiveUp);
        await Task.Delay(TimeSpan.FromSeconds(8));
        var members = Akka.Cluster.Cluster.Get(first.System).State.Members;
        Assert.Equal(2, members.Count);
        Assert.DoesNotContain(members, m => m.Address == Akka.Cluster.Cluster.Get(otherCertificate.System).SelfAddress);
        Assert.DoesNotContain(members, m => m.Address == Akka.Cluster.Cluster.Get(plain.System).SelfAddress);
        Assert.DoesNotContain(Akka.Cluster.Cluster.Get(plain.System).State.Members, m => m.Status == MemberStatus.Up);
        Assert.DoesNotContain(Akka.Cluster.Cluster.Get(otherCertificate.System).State.Members, m => m.Status == MemberStatus.Up);
        Assert.Equal("romana.cluster.tls.certificate-path: " + Path.Combine(folder.Path, "romana-cluster.pfx") + " is not a PKCS#12 " +
            "certificate with its key that certificate-password opens",
            Assert.Throws<ConfigurationError>(() => ClusterHosting.LoadCertificate(cluster with { CertificatePassword = "wrong" }))
                .Message.Split(" (")[0]);
    }

    [Fact]
    public async Task The_node_identity_comes_from_imdsv2_which_requires_its_token_and_romana_node_settings_win()
    {
        await using var imds = ImdsLabServer.Start();
        imds.Default = new InstanceMetadataRecord("i-0abc", "0a:00:00:00:00:01", "eni-0abc", "s2", "10.0.16.7");

        // Without a session token the service answers 401, as EC2's does with IMDSv1 off.
        using (var http = new HttpClient())
        {
            var bare = await http.GetAsync($"{imds.Url}/latest/meta-data/instance-id");
            Assert.Equal(HttpStatusCode.Unauthorized, bare.StatusCode);
            using var wrong = new HttpRequestMessage(HttpMethod.Get, $"{imds.Url}/latest/meta-data/instance-id");
            wrong.Headers.Add(ImdsLabServer.TokenHeader, "made-up");
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(wrong)).StatusCode);
        }
        Assert.Equal(0, imds.TokenRequests);

        var identity = await new InstanceMetadata(imds.Url, TimeSpan.FromSeconds(5)).ReadAsync();
        Assert.Equal(new Ec2InstanceIdentity("i-0abc", "eni-0abc", "s2", "10.0.16.7"), identity);
        Assert.Equal(1, imds.TokenRequests);

        var topology = Topologies.TwoZones();
        Config Node(string node) => ConfigurationFactory.ParseString($$"""
            romana.node { name = "n7", {{node}} }
            romana.node.imds.endpoint = "{{imds.Url}}"
            """).WithFallback(RomanaConfig.Reference);
        var fromImds = await NodeIdentity.ResolveInClusterAsync(Node(""), topology, InstanceMetadata.From(Node("")));
        Assert.Equal((new NodeName("n7"), new SubnetId("s2"), Ipv4.Parse("10.0.16.7"), "i-0abc", "eni-0abc"),
            (fromImds.Name, fromImds.Subnet, fromImds.Ip, fromImds.InstanceId, fromImds.Eni));

        var lab = Node("subnet = \"s1\", ip = \"10.0.0.9\", instance-id = \"i-lab\", eni = \"eni-lab\"");
        var before = imds.TokenRequests;
        var overridden = await NodeIdentity.ResolveInClusterAsync(lab, topology, InstanceMetadata.From(lab));
        Assert.Equal((new SubnetId("s1"), Ipv4.Parse("10.0.0.9"), "i-lab", "eni-lab"),
            (overridden.Subnet, overridden.Ip, overridden.InstanceId, overridden.Eni));
        Assert.Equal(before, imds.TokenRequests); // everything given: the service is not asked

        var gone = Node("").WithFallback(ConfigurationFactory.ParseString(""));
        var nowhere = new InstanceMetadata($"http://127.0.0.1:{FreePort()}", TimeSpan.FromSeconds(2));
        var error = await Assert.ThrowsAsync<DaemonStartException>(() => NodeIdentity.ResolveInClusterAsync(gone, topology, nowhere));
        Assert.StartsWith($"romana.node.imds.endpoint: 'http://127.0.0.1:", error.Message);
        Assert.Contains("set romana.node.subnet, ip, instance-id and eni instead", error.Message);
    }
}
