using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Management.Cluster.Bootstrap;
using Akka.Management.Dsl;
using Akka.Remote.Hosting;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Host.Kubernetes;

namespace Romana.Host.Composition;

/// <summary>Membership of `romana daemon` in an Akka.Cluster, composed at the composition root next to the other subsystems.</summary>
public static class ClusterHosting
{
    /// <summary>Every daemon's role.</summary>
    public const string NodeRole = "node";

    /// <summary>The role of every daemon of a subnet: a subnet's forwarder supervisor is kept off the members that have it.</summary>
    public static string SubnetRole(SubnetId subnet) => $"subnet:{subnet.Value}";

    /// <summary>The subnet a role names, or null when it is not a subnet role.</summary>
    public static SubnetId? SubnetOfRole(string role) =>
        role.StartsWith("subnet:", StringComparison.Ordinal) ? new SubnetId(role["subnet:".Length..]) : null;

    /// <summary>The role that names a daemon's Romana node: any member maps a member to its node by it.</summary>
    public static string NameRole(NodeName node) => $"{NameRolePrefix}{node.Value}";

    /// <summary>The node a role names, or null when it is not a name role.</summary>
    public static NodeName? NodeOfRole(string role) =>
        role.StartsWith(NameRolePrefix, StringComparison.Ordinal) ? new NodeName(role[NameRolePrefix.Length..]) : null;

    /// <summary>Whether the node's daemon is an Up member that this member reaches now.</summary>
    public static bool IsLiveMember(ActorSystem system, NodeName node)
    {
        var state = Akka.Cluster.Cluster.Get(system).State;
        var role = NameRole(node);
        return state.Members.Any(m => m.Status == MemberStatus.Up && m.HasRole(role) && !state.Unreachable.Contains(m));
    }

    /// <summary>The Romana node of a member (from its <see cref="NameRole"/>), or null for a member that has none.</summary>
    public static NodeName? NodeOf(Member member) => member.Roles.Select(NodeOfRole).FirstOrDefault(n => n is not null);

    /// <summary>
    /// The member that hosts the route manager singleton, as the ClusterSingletonManager picks it: the oldest member that is
    /// Up and has the role node (reachable or not: the singleton stays until its member is downed). Null when there is none.
    /// </summary>
    public static Member? RouteManagerHost(IEnumerable<Member> members) =>
        members.Where(m => m.Status == MemberStatus.Up && m.HasRole(NodeRole)).OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();

    private const string NameRolePrefix = "name:";

    /// <summary>
    /// Remoting on <see cref="ClusterSettings.Hostname"/>:<see cref="ClusterSettings.Port"/> (TLS when asked), the cluster
    /// with its seed nodes and <paramref name="roles"/>, the split-brain resolver as the downing provider, and with discovery
    /// = kubernetes the cluster bootstrap (<see cref="AddRomanaKubernetesBootstrap"/>).
    /// </summary>
    public static AkkaConfigurationBuilder AddRomanaCluster(this AkkaConfigurationBuilder akka, ClusterSettings settings,
        IEnumerable<string> roles)
    {
        var remote = new RemoteOptions { HostName = settings.Hostname, Port = settings.Port };
        if (settings.Tls.Enabled)
        {
            var certificate = LoadCertificate(settings.Tls);
            remote.EnableSsl = true;
            remote.Ssl = new SslOptions
            {
                X509Certificate = certificate,
                RequireMutualAuthentication = true,
                ValidateCertificateHostname = false,
                SuppressValidation = false,
                // Members trust exactly the cluster's certificate: a peer must present the same one (pinned by its SHA-256
                // hash), whoever signed it. A self-signed certificate therefore works, and no other certificate, however
                // trusted by the machine, lets a stranger join.
                CustomValidator = (peer, _, _, _, _) => peer is not null && SamePublicCertificate(peer, certificate),
            };
        }
        akka.WithRemoting(remote);
        // Roles and seed nodes are written quoted here (a role such as subnet:s1 holds a colon, which Akka.Cluster.Hosting
        // would write unquoted).
        akka.WithClustering(new ClusterOptions
        {
            SplitBrainResolver = settings.Strategy switch
            {
                SplitBrainStrategy.KeepMajority => new KeepMajorityOption(),
                SplitBrainStrategy.KeepOldest => new KeepOldestOption { DownIfAlone = true },
                SplitBrainStrategy.StaticQuorum => new StaticQuorumOption { QuorumSize = settings.QuorumSize },
                _ => SplitBrainResolverOption.Default,
            },
        });
        var downAll = settings.Strategy == SplitBrainStrategy.DownAll
            ? "akka.cluster.split-brain-resolver.active-strategy = down-all\n"
            : "";
        var seeds = settings.SeedNodes.Select(seed => Quoted(WithProtocol(seed, settings.Tls.Enabled)));
        if (settings.Discovery == ClusterDiscovery.Kubernetes) akka.AddRomanaKubernetesBootstrap(settings);
        return akka.AddHocon(ConfigurationFactory.ParseString($"""
            {downAll}akka.cluster.split-brain-resolver.stable-after = {(long)settings.StableAfter.TotalMilliseconds}ms
            akka.cluster.roles = [{string.Join(", ", roles.Select(Quoted))}]
            akka.cluster.seed-nodes = [{string.Join(", ", seeds)}]
            """), HoconAddMode.Prepend);
    }

    /// <summary>
    /// Cluster bootstrap (Akka.Management's ClusterBootstrap), started with the actor system: the daemon pods come from
    /// <see cref="KubernetesPodDiscovery"/> (by label selector, with the container port named management-port-name), and
    /// each is asked at its <see cref="BootstrapContactPoint"/> (this member's listens on <see cref="ClusterSettings.Hostname"/>
    /// at the management port). A pod found that is in a cluster is joined; with none in one, the pod with the lowest address
    /// forms it once required-contact-points pods answered and the pods found were stable for stable-margin. Seed nodes, when
    /// there are some (a downed member's rejoin lists the members it last saw), win: bootstrap then steps aside and the
    /// member joins them.
    /// </summary>
    public static AkkaConfigurationBuilder AddRomanaKubernetesBootstrap(this AkkaConfigurationBuilder akka, ClusterSettings settings)
    {
        var bootstrap = settings.Bootstrap;
        // Not started by Akka.Management (autoStart): its HTTP endpoint cannot start here (BootstrapContactPoint says why).
        akka.WithClusterBootstrap(options =>
        {
            options.NewClusterEnabled = true;
            options.ContactPointDiscovery.ServiceName = ClusterSettings.SystemName;
            options.ContactPointDiscovery.PortName = bootstrap.ManagementPortName;
            options.ContactPointDiscovery.DiscoveryMethod = KubernetesPodDiscovery.Method;
            options.ContactPointDiscovery.RequiredContactPointsNr = bootstrap.RequiredContactPoints;
            options.ContactPointDiscovery.StableMargin = bootstrap.StableMargin;
            options.ContactPointDiscovery.Interval = bootstrap.Interval;
            options.ContactPointDiscovery.ContactWithAllContactPoints = true;
            options.ContactPoint.FallbackPort = bootstrap.ManagementPort;
        }, autoStart: false);
        akka.AddStartup((system, registry) =>
        {
            var contactPoint = BootstrapContactPoint.Start(system, settings.Hostname, bootstrap.ManagementPort);
            CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseServiceUnbind, "romana-bootstrap-contact-point", () =>
            {
                contactPoint.Dispose();
                return Task.FromResult(Akka.Done.Instance);
            });
            system.WhenTerminated.ContinueWith(_ => contactPoint.Dispose(), TaskScheduler.Default);
            var clusterBootstrap = ClusterBootstrap.Get(system);
            // What Akka.Management does when it binds its routes: tell bootstrap this member's own contact point.
            clusterBootstrap.Routes(ManagementRouteProviderSettings.Create(contactPoint.BaseUri, readOnly: true));
            _ = clusterBootstrap.Start();
        });
        return akka.AddHocon(ConfigurationFactory.ParseString($$"""
            akka.discovery.{{KubernetesPodDiscovery.Method}} {
              class = {{Quoted(typeof(KubernetesPodDiscovery).AssemblyQualifiedName!)}}
              pod-label-selector = {{Quoted(bootstrap.PodLabelSelector)}}
              pod-namespace = {{Quoted(bootstrap.PodNamespace)}}
              api-server = {{Quoted(bootstrap.ApiServer)}}
              api-token-path = {{Quoted(bootstrap.ApiTokenPath)}}
              api-ca-path = {{Quoted(bootstrap.ApiCaPath)}}
            }
            """), HoconAddMode.Prepend);
    }

    /// <summary>A seed node's address in the protocol this member speaks: akka.ssl.tcp with TLS, akka.tcp without.</summary>
    public static string WithProtocol(string seed, bool tls)
    {
        var rest = seed[(seed.IndexOf("://", StringComparison.Ordinal) + 3)..];
        return $"{(tls ? "akka.ssl.tcp" : "akka.tcp")}://{rest}";
    }

    private static string Quoted(string text) => System.Text.Json.JsonSerializer.Serialize(text);

    private static bool SamePublicCertificate(X509Certificate peer, X509Certificate2 own) =>
        CryptographicOperations.FixedTimeEquals(peer.GetCertHash(HashAlgorithmName.SHA256), own.GetCertHash(HashAlgorithmName.SHA256));

    /// <summary>The certificate with its private key, from a PKCS#12 file; a file that is not one is the setting's error.</summary>
    public static X509Certificate2 LoadCertificate(ClusterTlsSettings tls)
    {
        try
        {
            var certificate = X509CertificateLoader.LoadPkcs12FromFile(tls.CertificatePath,
                string.IsNullOrEmpty(tls.CertificatePassword) ? null : tls.CertificatePassword);
            if (!certificate.HasPrivateKey)
                throw new ConfigurationError($"{ClusterSettings.Section}.tls.certificate-path: {tls.CertificatePath} holds no private key");
            return certificate;
        }
        catch (CryptographicException e)
        {
            throw new ConfigurationError($"{ClusterSettings.Section}.tls.certificate-path: {tls.CertificatePath} is not a PKCS#12 " +
                $"certificate with its key that certificate-password opens ({e.Message})");
        }
        catch (IOException e)
        {
            throw new ConfigurationError(
                $"{ClusterSettings.Section}.tls.certificate-path: cannot read {tls.CertificatePath} ({e.Message})");
        }
    }
}
