using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Support;
using Romana.Actors.Topology;

namespace Romana.Actors.Tests.Topology;

public class TopologyCarverTests
{
    private static ZoneSpec Zone(string name, params string[] subnets) => new(name, [.. subnets.Select(s => new SubnetSpec(s))]);

    [Fact]
    public void Three_zones_take_three_of_four_slots_and_subnets_split_their_zone()
    {
        var topology = TopologyCarver.Carve(new TopologySpec("100.96.0.0/11", 26,
            [Zone("a", "a1", "a2"), Zone("b", "b1"), Zone("c", "c1", "c2", "c3")]));
        var prefixes = topology.Prefixes().ToDictionary(p => p.Name, p => p.Prefix.ToString());
        Assert.Equal("100.96.0.0/13", prefixes["a"]);
        Assert.Equal("100.100.0.0/14", prefixes["a2"]);
        Assert.Equal("100.104.0.0/13", prefixes["b1"]);
        Assert.Equal("100.112.0.0/13", prefixes["c"]);
        Assert.Equal("100.116.0.0/15", prefixes["c3"]);
    }

    [Fact]
    public void Named_prefixes_are_kept_as_given()
    {
        var topology = TopologyCarver.Carve(new TopologySpec("10.0.0.0/16", 26,
            [new ZoneSpec("z1", [new SubnetSpec("s1", "10.0.64.0/18")], "10.0.0.0/17"),
                new ZoneSpec("z2", [new SubnetSpec("s2")], "10.0.128.0/17")]));
        Assert.Equal("10.0.64.0/18", topology.FindSubnet(new("s1"))!.PodPrefix.ToString());
        Assert.Equal("10.0.128.0/17", topology.FindSubnet(new("s2"))!.PodPrefix.ToString());
    }

    [Theory]
    [InlineData("10.0.0.0/33", 26, "pod-cidr: '10.0.0.0/33'")]
    [InlineData("10.0.0.1/8", 26, "pod-cidr: '10.0.0.1/8'")]
    [InlineData("10.0.0.0/8", 33, "block-prefix-length: 33")]
    [InlineData("10.0.0.0/24", 20, "block-prefix-length: /20 is larger than pod-cidr 10.0.0.0/24")]
    [InlineData("10.0.0.0/8", 12, "block-prefix-length: /12 is larger than /16")]
    public void Invalid_network_settings_name_the_field_and_the_value(string podCidr, int block, string expected)
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec(podCidr, block, [Zone("z", "s")]), out _, out var error));
        Assert.Equal(IpamErrorCode.Invalid, error.Code);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_subnet_in_two_zones_is_refused_naming_both()
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec("10.0.0.0/16", 26, [Zone("z1", "s1"), Zone("z2", "s1")]), out _,
            out var error));
        Assert.Contains("zones[1] (z2).subnets[0].id: subnet 's1' is already in zone 'z1'", error.Message);
    }

    [Fact]
    public void Mixing_named_and_carved_siblings_is_refused()
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec("10.0.0.0/16", 26,
            [new ZoneSpec("z1", [new SubnetSpec("s1")], "10.0.0.0/17"), Zone("z2", "s2")]), out _, out var error));
        Assert.Contains("zones[1] (z2).pod-prefix: missing", error.Message);
    }

    [Theory]
    [InlineData("10.1.0.0/17", "is not inside its parent 10.0.0.0/16")]
    [InlineData("10.0.64.0/18", "overlaps its sibling zones[0] (z1)")]
    public void Named_prefixes_must_lie_inside_the_parent_and_apart(string second, string expected)
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec("10.0.0.0/16", 26,
            [new ZoneSpec("z1", [new SubnetSpec("s1")], "10.0.0.0/17"), new ZoneSpec("z2", [new SubnetSpec("s2")], second)]), out _,
                out var error));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_subnet_smaller_than_a_block_is_refused()
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec("10.0.0.0/24", 26, [Zone("z", "s0", "s1", "s2", "s3", "s4")]), out _,
            out var error));
        Assert.Contains("is smaller than one block (/26)", error.Message);
    }

    [Theory]
    // issue 11: pod-cidr = 0.0.0.0/0 was accepted, a pod got 0.0.0.0/32 and the host a rule "from all lookup 100"
    [InlineData("0.0.0.0/0", 16, "pod-cidr: 0.0.0.0/0 is the default route: every address would be a pod's")]
    [InlineData("0.0.0.0/1", 16, "pod-cidr: 0.0.0.0/1 overlaps 0.0.0.0/8 ('this network', no host's address)")]
    [InlineData("127.0.0.0/16", 26, "pod-cidr: 127.0.0.0/16 overlaps 127.0.0.0/8 (loopback, never routed off a host)")]
    [InlineData("169.254.0.0/20", 26, "pod-cidr: 169.254.0.0/20 overlaps 169.254.0.0/16 (link-local: " +
        "the instance metadata service and the VPC's DNS answer there)")]
    [InlineData("224.0.0.0/16", 26, "pod-cidr: 224.0.0.0/16 overlaps 224.0.0.0/4 (multicast, no host's address)")]
    [InlineData("240.0.0.0/16", 26, "pod-cidr: 240.0.0.0/16 overlaps 240.0.0.0/4 (reserved, and the broadcast address)")]
    [InlineData("128.0.0.0/1", 16, "pod-cidr: 128.0.0.0/1 overlaps 169.254.0.0/16 (link-local")]
    public void A_pod_cidr_that_pods_cannot_use_is_refused_saying_why(string podCidr, int block, string expected)
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec(podCidr, block, [Zone("z", "s")]), out _, out var error));
        Assert.Equal(IpamErrorCode.Invalid, error.Code);
        Assert.StartsWith($"topology {expected}", error.Message);
    }

    [Theory]
    [InlineData("10.0.0.0/8", "10.0.0.0/24", "pod-cidr: 10.0.0.0/8 overlaps zones[0] (z).subnets[1] (s2).vpc-cidr 10.0.0.0/24: " +
        "a pod's address would be an address of the VPC")]
    [InlineData("10.0.5.0/24", "10.0.0.0/16", "pod-cidr: 10.0.5.0/24 overlaps zones[0] (z).subnets[1] (s2).vpc-cidr 10.0.0.0/16")]
    public void A_pod_cidr_that_overlaps_a_vpc_cidr_is_refused(string podCidr, string vpcCidr, string expected)
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec(podCidr, 26,
            [new ZoneSpec("z", [new SubnetSpec("s1", VpcCidr: "192.168.0.0/24"), new SubnetSpec("s2", VpcCidr: vpcCidr)])]), out _,
            out var error));
        Assert.StartsWith($"topology {expected}", error.Message);
    }

    [Fact]
    public void Vpc_cidrs_that_overlap_are_refused_naming_both()
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec("100.64.0.0/16", 26,
            [
                new ZoneSpec("a", [new SubnetSpec("s1", VpcCidr: "10.0.0.0/16")]),
                new ZoneSpec("b", [new SubnetSpec("s2", VpcCidr: "10.0.4.0/24")]),
            ]),
            out _, out var error));
        Assert.Equal("topology zones[1] (b).subnets[0] (s2).vpc-cidr: 10.0.4.0/24 overlaps zones[0] (a).subnets[0] (s1)'s 10.0.0.0/16: " +
            "VPC subnets never overlap", error.Message);
    }

    [Fact]
    public void More_subnets_than_a_topology_may_have_are_refused_before_carving()
    {
        var zones = Enumerable.Range(0, 1_001).Select(z => new ZoneSpec($"z{z}", [], $"10.{z / 250}.{z % 250}.0/24")).ToList();
        Assert.False(TopologyCarver.TryCarve(new TopologySpec("10.0.0.0/8", 26, zones), out _, out var error));
        Assert.Equal("topology zones: more than 1,000 subnets (each zone needs one), the most a topology may have", error.Message);
    }

    [Fact]
    public void A_long_value_in_a_topology_is_quoted_shortened()
    {
        Assert.False(TopologyCarver.TryCarve(new TopologySpec(new string('9', 5000), 26, [Zone("z", "s")]), out _, out var error));
        Assert.Equal($"topology pod-cidr: '{new string('9', 100)}… (5,000 characters)' is not an IPv4 CIDR such as 100.64.0.0/10",
            error.Message);
    }

    [Fact]
    public void The_plan_of_a_cluster_whose_pod_cidr_is_the_default_route_exits_2_naming_it()
    {
        var json = """
            {"podCidr": "0.0.0.0/0", "blockPrefixLength": 26,
             "zones": [{"name": "z", "subnets": [{"id": "s", "cidr": "10.0.0.0/24", "routeTable": "r"}]}],
             "nodes": [{"name": "n", "subnet": "s", "ip": "10.0.0.5", "eni": "eni-1", "pods": 1}]}
            """;
        var file = Romana.Host.Routing.ClusterFileReader.Parse(json, "cluster.json");
        var error = Assert.Throws<TopologyException>(() => TopologyCarver.Carve(file.Topology));
        Assert.StartsWith("topology pod-cidr: 0.0.0.0/0 is the default route", error.Message);
    }

    [Fact]
    public void The_example_configuration_loads_with_vpc_cidrs_and_route_tables()
    {
        var topology = RomanaConfig.ReadTopology(RomanaConfig.Load(Path.Combine(Paths.RepositoryRoot, "hocon", "romana.conf")));
        Assert.Equal(3, topology.Zones.Length);
        Assert.Equal(6, topology.Subnets.Count());
        var subnet = topology.FindSubnet(new("subnet-0b2"))!;
        Assert.Equal("10.0.48.0/20", subnet.VpcCidr.ToString());
        Assert.Equal("rtb-0b", subnet.RouteTable);
        Assert.Equal("100.88.0.0/13", subnet.PodPrefix.ToString());
    }

    [Theory]
    [InlineData("romana.topology { pod-cidr = \"10.0.0.0/8\", zones = [] }", "topology field 'block-prefix-length' is missing")]
    [InlineData("romana.topology { pod-cidr = \"10.0.0.0/8\", block-prefix-length = big, zones = [] }",
        "block-prefix-length: 'big' is not a number")]
    [InlineData("romana.topology { pod-cidr = \"10.0.0.0/8\", block-prefix-length = 26, zones = [ \"a\" ] }",
        "romana.topology.zones[0]: expected an object")]
    [InlineData("romana.topology { pod-cidr = \"10.0.0.0/8\", block-prefix-length = 26, " +
        "zones = [ { name = a, subnets = [ { id = s, vpc-cidr = nope } ] } ] }", "vpc-cidr: 'nope' is not an IPv4 CIDR")]
    public void Hocon_errors_name_the_field(string hocon, string expected)
    {
        using var folder = new Conformance.TempFolder();
        var file = folder.Write("bad.conf", hocon);
        var error = Assert.Throws<TopologyException>(() => RomanaConfig.ReadTopology(RomanaConfig.Load(file)));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_missing_configuration_file_is_named()
    {
        var error = Assert.Throws<ConfigurationError>(() => RomanaConfig.Load("/nonexistent/romana.conf"));
        Assert.Equal("/nonexistent/romana.conf: no such configuration file", error.Message);
    }
}
