using Romana.Cni.Plugin;
using Romana.Contracts.Cni;

namespace Romana.Actors.Tests.Cni;

/// <summary>The CNI_* variables: required ones are code 4 naming the variable; CNI_ARGS gives the pod's "namespace/name".</summary>
public class CniEnvironmentTests
{
    private static CniEnvironment With(string? containerId = "c1", string? netns = "/var/run/netns/x", string? ifName = "eth0",
        string? args = null) =>
        new("ADD", containerId, netns, ifName, args, "/opt/cni/bin");

    private static void AssertCode4(string mentions, Action action)
    {
        var error = Assert.Throws<CniException>(action);
        Assert.Equal(CniErrorCode.InvalidEnvironment, error.Code);
        Assert.Contains(mentions, error.Message);
    }

    [Fact]
    public void Set_required_variables_are_returned_as_given()
    {
        var environment = With();
        Assert.Equal("c1", environment.RequireContainerId());
        Assert.Equal("/var/run/netns/x", environment.RequireNetns());
        Assert.Equal("eth0", environment.RequireIfName());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void A_missing_or_empty_required_variable_is_code_4_naming_it(string? value)
    {
        AssertCode4("CNI_CONTAINERID is not set", () => With(containerId: value).RequireContainerId());
        AssertCode4("CNI_NETNS is not set", () => With(netns: value).RequireNetns());
        AssertCode4("CNI_IFNAME is not set", () => With(ifName: value).RequireIfName());
    }

    [Theory]
    [InlineData("eth0")]
    [InlineData("a")]
    [InlineData("net1-longest_15")]
    [InlineData("...")]
    public void A_valid_linux_interface_name_is_accepted(string name) => Assert.Equal(name, With(ifName: name).RequireIfName());

    [Theory]
    [InlineData("sixteen-chars-xx")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("eth/0")]
    [InlineData("eth:0")]
    [InlineData("eth 0")]
    [InlineData("eth\t0")]
    [InlineData("ethé")]
    public void An_invalid_interface_name_is_code_4_naming_it(string name) =>
        AssertCode4($"CNI_IFNAME {Printable.Quote(name)} is not a valid interface name", () => With(ifName: name).RequireIfName());

    [Theory]
    [InlineData("c1")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("Pod_1.sandbox-2")]
    [InlineData("9")]
    public void A_container_id_as_the_spec_defines_it_is_accepted(string id) =>
        Assert.Equal(id, With(containerId: id).RequireContainerId());

    /// <summary>
    /// The spec: an alphanumeric character, then alphanumerics, '_', '.' or '-'. Anything else (a newline that would forge a
    /// line of the daemon's log, a '/' that would make two keys collide) is code 4 naming the variable.
    /// </summary>
    [Theory]
    [InlineData("c1\nromana: forged line")]
    [InlineData("k/a")]
    [InlineData("-c1")]
    [InlineData(".c1")]
    [InlineData("_c1")]
    [InlineData("c 1")]
    [InlineData("c:1")]
    [InlineData("c1%d")]
    [InlineData("cé")]
    [InlineData("c\u00001")]
    public void A_container_id_outside_the_spec_is_code_4_naming_the_variable(string id)
    {
        var error = Assert.Throws<CniException>(() => With(containerId: id).RequireContainerId());
        Assert.Equal(CniErrorCode.InvalidEnvironment, error.Code);
        Assert.StartsWith("CNI_CONTAINERID ", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain('\0', error.Message);
    }

    [Fact]
    public void A_container_id_of_100000_characters_is_code_4_with_a_short_message()
    {
        var error = Assert.Throws<CniException>(() => With(containerId: new string('a', 100_000)).RequireContainerId());
        Assert.Equal(CniErrorCode.InvalidEnvironment, error.Code);
        Assert.StartsWith("CNI_CONTAINERID ", error.Message);
        Assert.InRange(error.Message.Length, 1, 299);
    }

    /// <summary>
    /// Names the kernel would take for something else: '%' makes it pick a number itself ("eth%d" becomes eth0), "all" and
    /// "default" are the per-namespace settings under /proc/sys/net/ipv4/conf, and control characters print as anything.
    /// </summary>
    [Theory]
    [InlineData("%d")]
    [InlineData("eth%d")]
    [InlineData("all")]
    [InlineData("default")]
    [InlineData("eth\u00010")]
    [InlineData("eth\u007f")]
    public void An_interface_name_the_kernel_would_read_otherwise_is_code_4(string name)
    {
        var error = Assert.Throws<CniException>(() => With(ifName: name).RequireIfName());
        Assert.Equal(CniErrorCode.InvalidEnvironment, error.Code);
        Assert.StartsWith("CNI_IFNAME ", error.Message);
        Assert.DoesNotContain('\u0001', error.Message);
    }

    /// <summary>The pod's namespace and name go into the journal and the daemon's log: Kubernetes names, nothing else.</summary>
    [Theory]
    [InlineData("K8S_POD_NAMESPACE=web;K8S_POD_NAME=api\nromana: forged", "K8S_POD_NAME")]
    [InlineData("K8S_POD_NAMESPACE=we/b;K8S_POD_NAME=api", "K8S_POD_NAMESPACE")]
    [InlineData("K8S_POD_NAMESPACE=web;K8S_POD_NAME=a b", "K8S_POD_NAME")]
    [InlineData("K8S_POD_NAMESPACE=a;K8S_POD_NAME=b=c", "K8S_POD_NAME")]
    public void A_pod_name_that_is_no_kubernetes_name_is_code_4_naming_the_argument(string args, string argument)
    {
        var error = Assert.Throws<CniException>(() => With(args: args).PodName());
        Assert.Equal(CniErrorCode.InvalidEnvironment, error.Code);
        Assert.Contains(argument, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void A_pod_name_longer_than_kubernetes_allows_is_code_4_with_a_short_message()
    {
        var error = Assert.Throws<CniException>(() => With(args: "K8S_POD_NAME=" + new string('a', 100_000)).PodName());
        Assert.Equal(CniErrorCode.InvalidEnvironment, error.Code);
        Assert.InRange(error.Message.Length, 1, 299);
    }

    [Theory]
    [InlineData("K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1", "kube-system/coredns-1")]
    [InlineData("IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=api-7f9;K8S_POD_INFRA_CONTAINER_ID=abc", "web/api-7f9")]
    [InlineData("K8S_POD_NAME=api;K8S_POD_NAMESPACE=web", "web/api")]
    [InlineData("K8S_POD_NAME=solo", "default/solo")]
    [InlineData("K8S_POD_NAMESPACE=;K8S_POD_NAME=solo", "default/solo")]
    [InlineData(";;K8S_POD_NAMESPACE=a;;K8S_POD_NAME=b;", "a/b")]
    public void CNI_ARGS_give_the_pod_as_namespace_slash_name(string args, string expected) =>
        Assert.Equal(expected, With(args: args).PodName());

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("IgnoreUnknown=1")]
    [InlineData("K8S_POD_NAMESPACE=web")]
    [InlineData("K8S_POD_NAMESPACE=web;K8S_POD_NAME=")]
    [InlineData("k8s_pod_name=lowercase-is-another-key")]
    public void Without_a_pod_name_in_CNI_ARGS_there_is_no_pod(string? args) => Assert.Null(With(args: args).PodName());

    /// <summary>The pod's uid goes into the journal with the address; the Pod watch releases it once that uid is gone.</summary>
    [Theory]
    [InlineData("K8S_POD_NAMESPACE=web;K8S_POD_NAME=api;K8S_POD_UID=0f5d2c4e-8a1b-4c3d-9e2f-1a2b3c4d5e6f",
        "0f5d2c4e-8a1b-4c3d-9e2f-1a2b3c4d5e6f")]
    [InlineData("K8S_POD_UID=abc;K8S_POD_NAME=api", "abc")]
    [InlineData("K8S_POD_NAME=api", null)]
    [InlineData("K8S_POD_NAME=api;K8S_POD_UID=", null)]
    [InlineData(null, null)]
    public void CNI_ARGS_give_the_pods_uid(string? args, string? uid) => Assert.Equal(uid, With(args: args).PodUid());

    [Theory]
    [InlineData("K8S_POD_UID=a b")]
    [InlineData("K8S_POD_UID=abc\nromana: forged")]
    [InlineData("K8S_POD_UID=uid/../x")]
    public void A_uid_that_is_no_kubernetes_uid_is_code_4_naming_the_argument(string args)
    {
        var error = Assert.Throws<CniException>(() => With(args: args).PodUid());
        Assert.Equal(CniErrorCode.InvalidEnvironment, error.Code);
        Assert.StartsWith("CNI_ARGS K8S_POD_UID ", error.Message);
        Assert.EndsWith("is not a Kubernetes uid (1-64 of ASCII letters, digits and '-')", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Theory]
    [InlineData("K8S_POD_NAME")]
    [InlineData("K8S_POD_NAME=a;broken")]
    [InlineData("=value")]
    public void A_CNI_ARGS_pair_without_a_key_and_equals_sign_is_code_4_naming_the_pair(string args)
    {
        var pair = args.Split(';').Last();
        AssertCode4($"CNI_ARGS: '{pair}' is not KEY=VALUE", () => With(args: args).PodName());
    }
}
