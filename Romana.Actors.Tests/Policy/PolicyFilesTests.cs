using Akka.Actor;
using Akka.TestKit.Xunit2;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;

namespace Romana.Actors.Tests.Policy;

/// <summary>The files source: its format, pods' addresses and nodes from the IPAM, and a folder's changes reaching an agent.</summary>
public sealed class PolicyFilesTests : TestKit, IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("romana-policy-files-").FullName;
    private readonly RecordingPolicyDataplane _dataplane = new();
    private volatile IReadOnlyList<IpamPod> _ipam = [];

    private const string Namespaces = """
        {"kind": "List", "items": [
          {"kind": "Namespace", "metadata": {"name": "lab", "labels": {"zone": "a"}}},
          {"kind": "Pod", "metadata": {"namespace": "lab", "name": "web", "labels": {"app": "web"}},
           "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9}]}]}},
          {"kind": "Pod", "metadata": {"namespace": "lab", "name": "elsewhere", "labels": {"app": "x"}},
           "spec": {"nodeName": "n9"}, "status": {"podIP": "100.64.9.9", "hostIP": "10.0.9.11"}},
          {"kind": "ConfigMap", "metadata": {"name": "ignored"}}
        ]}
        """;

    private const string DenyWeb = """
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-web", "namespace": "lab"},
         "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}}
        """;

    public new void Dispose()
    {
        Directory.Delete(_folder, true);
        base.Dispose();
    }

    private void Write(string name, string text)
    {
        var temp = Path.Combine(_folder, $".{name}.tmp");
        File.WriteAllText(temp, text);
        File.Move(temp, Path.Combine(_folder, name), true);
    }

    [Fact]
    public void The_format_reads_namespaces_pods_with_named_ports_and_policies_and_names_a_bad_field()
    {
        var content = PolicyFiles.Parse(Namespaces, "lab.json");
        var ns = Assert.Single(content.Namespaces);
        Assert.Equal(("lab", "a", "lab"), (ns.Name, ns.Labels["zone"], ns.Labels[PolicyNamespace.NameLabel]));
        Assert.Equal(["lab/web", "lab/elsewhere"], content.Pods.Select(p => p.Key));
        Assert.Equal(new NamedPort("http", 8080, PolicyProtocol.Tcp), Assert.Single(content.Pods[0].NamedPorts));
        Assert.Equal((Ipv4.Parse("100.64.9.9"), "n9"), (content.Pods[1].Address!.Value, content.Pods[1].Node));
        Assert.Equal("lab/deny-web", Assert.Single(PolicyFiles.Parse($"[{DenyWeb}]", "p.json").Policies).Key);

        var bad = Assert.Throws<PolicyFormatException>(() => PolicyFiles.Parse(
            """{"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"ports": [{"name": "x", "containerPort": 70000}]}]}}""",
            "pods.json"));
        Assert.Equal("pods.json.spec.containers[0].ports[0].containerPort: expected a port number 1-65535", bad.Message);
        Assert.Equal("p.json.spec.policyTypes[0]", Assert.Throws<PolicyFormatException>(() => PolicyFiles.Parse(
            DenyWeb.Replace("\"Ingress\"", "\"Inbound\""), "p.json")).Field);
        Assert.Equal("x.json", Assert.Throws<PolicyFormatException>(() => PolicyFiles.Parse("{", "x.json")).Field);
    }

    [Fact]
    public void Pods_take_their_address_and_node_from_the_ipam_and_their_labels_from_the_files()
    {
        var view = PolicyFiles.View([PolicyFiles.Parse(Namespaces, "lab.json")],
        [
            new IpamPod("lab/web", Ipv4.Parse("100.64.0.2"), "n1", Ipv4.Parse("10.0.1.11")),
            new IpamPod("other/db", Ipv4.Parse("100.64.0.66"), "n2", Ipv4.Parse("10.0.1.12")),
        ]);
        Assert.Equal(["lab/elsewhere", "lab/web", "other/db"], view.Pods.Keys);
        var web = view.Pods["lab/web"];
        Assert.Equal(("n1", Ipv4.Parse("100.64.0.2"), Ipv4.Parse("10.0.1.11"), "web"),
            (web.Node, web.Pod.Address, web.Pod.NodeAddress!.Value, web.Pod.Labels["app"]));
        Assert.Empty(view.Pods["other/db"].Pod.Labels); // held by the IPAM, described by no file: no labels
        Assert.Equal(["lab", "other"], view.Namespaces.Keys); // other: implied by its pod, labelled with its name only
        Assert.Equal("other", view.Namespaces["other"].Labels[PolicyNamespace.NameLabel]);
    }

    [Fact]
    public void A_folders_changes_reach_the_agent_and_a_bad_file_keeps_its_last_good_content()
    {
        Write("lab.json", Namespaces);
        _ipam = [new IpamPod("lab/web", Ipv4.Parse("100.64.0.2"), "n1", Ipv4.Parse("10.0.1.11"))];
        var source = Sys.ActorOf(PolicyFilesActor.Props(_folder, _ => Task.FromResult(_ipam), TimeSpan.FromMilliseconds(100)));
        var agent = Sys.ActorOf(PolicyAgentActor.Props("n1", _dataplane, source,
            new PolicyAgentSettings(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1),
                TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500))));
        PolicyAgentMessages.Status Status() =>
            agent.Ask<PolicyAgentMessages.Status>(new PolicyAgentMessages.GetStatus(), TimeSpan.FromSeconds(5)).Result;
        void Until(string what, Func<bool> done) => AwaitCondition(done, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50), what);

        Until("the pods", () => Status().View.Pods.Count == 2);
        Until("web local", () => _dataplane.Calls.LastOrDefault()?.Local.SetEquals(["lab/web"]) == true);
        Write("deny.json", DenyWeb);
        Until("the policy", () => _dataplane.Calls.LastOrDefault()?.World.Policies.Length == 1);
        var toWeb = new PolicyProbe(Ipv4.Parse("100.64.9.9"), Ipv4.Parse("100.64.0.2"), 8080, PolicyProtocol.Tcp);
        Assert.False(PolicyEvaluator.Allows(_dataplane.Calls.Last().World, toWeb));

        // Half written: the policy stays; then fixed with another selector: web is open again.
        Write("deny.json", DenyWeb[..40]);
        Thread.Sleep(500);
        Assert.True(Status().View.Policies.ContainsKey("lab/deny-web"));
        Write("deny.json", DenyWeb.Replace("\"app\": \"web\"", "\"app\": \"none\""));
        Until("the fixed policy", () => PolicyEvaluator.Allows(_dataplane.Calls.Last().World, toWeb));

        // A new pod in the IPAM joins the view (no file change): its address and node.
        _ipam = [.. _ipam, new IpamPod("lab/late", Ipv4.Parse("100.64.0.3"), "n1", Ipv4.Parse("10.0.1.11"))];
        Until("the IPAM's new pod", () => _dataplane.Calls.LastOrDefault()?.Local.SetEquals(["lab/web", "lab/late"]) == true);
        File.Delete(Path.Combine(_folder, "deny.json"));
        Until("the policy gone", () => Status().View.Policies.IsEmpty);
    }
}
