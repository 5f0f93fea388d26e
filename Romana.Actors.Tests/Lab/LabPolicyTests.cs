using System.Diagnostics;
using Romana.Actors.Tests.Support;
using Romana.Host.Lab;
using Xunit.Abstractions;

namespace Romana.Actors.Tests.Lab;

/// <summary>
/// NetworkPolicy across zones with real packets: the lab's daemons read the policy folder (<c>romana.policy.source = files</c>,
/// <see cref="LabDaemonConfig.PolicyFolder"/>), the pods' addresses and nodes from the IPAM (the CNI ADD names them lab/POD),
/// and each enforces the policies for its own pods in its node's namespace (nft table inet romana_policy). One lab for the class.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class LabPolicyTests(LabFixture lab, ITestOutputHelper output) : IClassFixture<LabFixture>
{
    private const int Port = 7171;
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(20);

    private static string Zone(LabFixture lab, string node) =>
        lab.Status["nodes"]!.AsArray().First(n => n!["name"]!.GetValue<string>() == node)!["zone"]!.GetValue<string>();

    private static bool Pings(string fromNetns, string ip) =>
        LabShell.Run("ip", ["netns", "exec", fromNetns, "ping", "-c", "1", "-W", "1", ip]).Exit == 0;

    private static void WritePolicy(string name, string json)
    {
        Directory.CreateDirectory(LabDaemonConfig.PolicyFolder);
        var temp = Path.Combine(LabDaemonConfig.PolicyFolder, $".{name}.tmp");
        File.WriteAllText(temp, json);
        File.Move(temp, Path.Combine(LabDaemonConfig.PolicyFolder, name), true);
    }

    private static string Pod(string name, string labels) =>
        "{\"kind\": \"Pod\", \"metadata\": {\"namespace\": \"lab\", \"name\": \"" + name + "\", \"labels\": {" + labels + "}}}";

    /// <summary>Waits until <paramref name="reached"/> holds; null, or why not.</summary>
    private string? Until(string what, Func<bool> reached)
    {
        var clock = Stopwatch.StartNew();
        while (!reached())
        {
            if (clock.Elapsed > Within) return $"not within {Within.TotalSeconds} s: {what}";
            Thread.Sleep(200);
        }
        output.WriteLine($"{what}: after {clock.Elapsed.TotalSeconds:0.0} s");
        return null;
    }

    [SkippableFact]
    public void A_policy_denies_then_allows_ping_and_tcp_between_pods_of_two_zones()
    {
        Skip.If(lab.WhyNot is not null, lab.WhyNot);
        Assert.True(lab.Up.Ok, $"romana lab up failed: {lab.Up.Output}{lab.Up.Error}");
        var pods = lab.Pods;
        var server = pods.First(p => Zone(lab, p.Node) == "lab-b");
        var client = pods.First(p => Zone(lab, p.Node) == "lab-a");
        var stranger = pods.First(p => Zone(lab, p.Node) == "lab-a" && p != client);
        var bystander = pods.First(p => Zone(lab, p.Node) == "lab-b" && p.Node != server.Node);
        output.WriteLine($"server {server.Name} ({server.Ip} on {server.Node}), client {client.Name} ({client.Ip} on {client.Node}), " +
            $"stranger {stranger.Name}, bystander {bystander.Name}");
        var listeners = new[] { server, bystander }.Select(p => NamespaceTcp.Listen(p.Netns, p.Ip, Port, p.Name)).ToList();
        try
        {
            // Before any policy: open.
            Assert.True(Pings(client.Netns, server.Ip), "before any policy, client does not ping server");
            Assert.Equal($"{server.Name} {client.Ip}", NamespaceTcp.Ask(client.Netns, server.Ip, Port));

            // Deny: every ingress to the server pod (a policy selecting it with no ingress rule).
            WritePolicy("pods.json", $"[{Pod(server.Name, "\"app\": \"server\"")}, {Pod(client.Name, "\"role\": \"client\"")}]");
            WritePolicy("server.json", """
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "server", "namespace": "lab"},
                 "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"]}}
                """);
            Assert.Null(Until("ping client -> server denied", () => !Pings(client.Netns, server.Ip)));
            Assert.Null(NamespaceTcp.Ask(client.Netns, server.Ip, Port));
            Assert.False(Pings(stranger.Netns, server.Ip), "the stranger pings the server under deny-all");
            // The policy selects the server only: its zone's other pod is still open to the client.
            Assert.True(Pings(client.Netns, bystander.Ip), "the bystander, selected by no policy, is not reachable");
            Assert.Equal($"{bystander.Name} {client.Ip}", NamespaceTcp.Ask(client.Netns, bystander.Ip, Port));

            // Allow: the server's ingress from pods labelled role=client, with no ports (every protocol: ICMP is none a
            // NetworkPolicy port can name, so ping passes only through a rule without ports).
            WritePolicy("server.json", """
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "server", "namespace": "lab"},
                 "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}}
                """);
            Assert.Null(Until("ping client -> server allowed", () => Pings(client.Netns, server.Ip)));
            Assert.Equal($"{server.Name} {client.Ip}", NamespaceTcp.Ask(client.Netns, server.Ip, Port));
            // ...and only from the client: the stranger (no role) is still dropped, by TCP too.
            Assert.False(Pings(stranger.Netns, server.Ip), "the stranger pings the server though only role=client is allowed");
            Assert.Null(NamespaceTcp.Ask(stranger.Netns, server.Ip, Port));

            // The server's node enforces in its own table; the host's namespace has no such table.
            var table = LabShell.Run("ip", ["netns", "exec", $"rlab-{server.Node}", "nft", "list", "table", "inet", "romana_policy"]);
            Assert.True(table.Exit == 0, $"no table inet romana_policy on {server.Node}: {table.Error}");
            output.WriteLine(table.Output);
            Assert.DoesNotContain("romana_policy", LabShell.Run("nft", ["list", "tables"]).Output);

            // The policy removed: open again.
            File.Delete(Path.Combine(LabDaemonConfig.PolicyFolder, "server.json"));
            Assert.Null(Until("ping stranger -> server open again", () => Pings(stranger.Netns, server.Ip)));
            Assert.Equal($"{server.Name} {stranger.Ip}", NamespaceTcp.Ask(stranger.Netns, server.Ip, Port));
        }
        finally
        {
            foreach (var listener in listeners) listener.Dispose();
            if (Directory.Exists(LabDaemonConfig.PolicyFolder)) Directory.Delete(LabDaemonConfig.PolicyFolder, true);
        }
    }
}
