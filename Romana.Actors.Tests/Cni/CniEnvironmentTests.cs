using Romana.Cni.Plugin;

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
        AssertCode4($"CNI_IFNAME '{name}' is not a valid interface name", () => With(ifName: name).RequireIfName());

    [Theory]
    [InlineData("K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1", "kube-system/coredns-1")]
    [InlineData("IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=api-7f9;K8S_POD_INFRA_CONTAINER_ID=abc", "web/api-7f9")]
    [InlineData("K8S_POD_NAME=api;K8S_POD_NAMESPACE=web", "web/api")]
    [InlineData("K8S_POD_NAME=solo", "default/solo")]
    [InlineData("K8S_POD_NAMESPACE=;K8S_POD_NAME=solo", "default/solo")]
    [InlineData(";;K8S_POD_NAMESPACE=a;;K8S_POD_NAME=b;", "a/b")]
    [InlineData("K8S_POD_NAMESPACE=a;K8S_POD_NAME=b=c", "a/b=c")]
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
