using System.Net;
using Akka.Configuration;
using Romana.Actors.Configuration;
using Romana.Host.Ec2;

namespace Romana.Actors.Tests.Ec2;

/// <summary>romana.ec2-lab: what `romana ec2 serve` starts with, and errors that name the field and the value.</summary>
public class Ec2LabSettingsTests
{
    private static Ec2LabSettings Read(string hocon) =>
        Ec2LabSettings.From(ConfigurationFactory.ParseString(hocon).WithFallback(RomanaConfig.Reference));

    private static string Refused(string hocon) => Assert.Throws<ConfigurationError>(() => Read(hocon)).Message;

    [Fact]
    public void The_defaults_listen_on_loopback_with_ec2s_throttle_and_one_tagged_table()
    {
        var settings = Ec2LabSettings.Default;
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 9607), settings.Listen);
        Assert.Equal(Ec2Throttle.Ec2Default, settings.Throttle);
        Assert.Equal((TimeSpan.Zero, 0.0), (settings.Latency, settings.ErrorRate));

        var lab = settings.CreateLab(SystemClock.Instance);
        var table = Assert.Single(lab.RouteTables);
        Assert.Equal(("rtb-lab", "vpc-lab", 50), (table.Id, table.VpcId, table.RouteLimit));
        Assert.Equal(["subnet-lab"], table.Associations.Select(a => a.SubnetId));
        Assert.Equal("lab", table.Tags["romana.io/cluster"]);
        Assert.Equal([("10.0.0.0/16", "local"), ("0.0.0.0/0", "igw-lab")], lab.RoutesOf("rtb-lab"));
        Assert.Equal(Ec2Throttle.Ec2Default, lab.Throttle);
    }

    [Fact]
    public void A_file_sets_the_tables_and_the_faults()
    {
        var settings = Read("""
            romana.ec2-lab {
              listen = "[::1]:0"
              vpc { id = vpc-x, cidr = "172.16.0.0/16" }
              route-limit = 500
              tables = [
                { id = rtb-a, subnets = [subnet-a], tags = ["romana.io/cluster=x", "Name=a=b"] }
                { id = rtb-b, route-limit = 3, routes = [{ destination = "192.168.0.0/24", target = pcx-1 }] }
              ]
              throttle.enabled = off
              latency = 20ms
              error-rate = 0.1
              error-seed = 7
            }
            """);
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 0), settings.Listen);
        Assert.Null(settings.Throttle);
        Assert.Equal((TimeSpan.FromMilliseconds(20), 0.1, 7), (settings.Latency, settings.ErrorRate, settings.ErrorSeed));
        var lab = settings.CreateLab(SystemClock.Instance);
        Assert.Equal([("rtb-a", 500), ("rtb-b", 3)], lab.RouteTables.Select(t => (t.Id, t.RouteLimit)));
        Assert.Equal("a=b", lab.RouteTable("rtb-a").Tags["Name"]);
        Assert.Equal([("172.16.0.0/16", "local"), ("192.168.0.0/24", "pcx-1")], lab.RoutesOf("rtb-b"));
        Assert.Equal(0.1, lab.ErrorRate);
    }

    [Theory]
    [InlineData("romana.ec2-lab.tables = [{ id = rtb-a, route-limit = many }]",
        "romana.ec2-lab.tables[0].route-limit: 'many' is not a whole number")]
    [InlineData("romana.ec2-lab.tables = [{ subnets = [s] }]", "romana.ec2-lab.tables[0].id: missing")]
    [InlineData("romana.ec2-lab.tables = [{ id = a }, { id = a }]", "romana.ec2-lab.tables[1].id: 'a' names a table twice")]
    [InlineData("romana.ec2-lab.tables = [{ id = a, tags = [solo] }]", "romana.ec2-lab.tables[0].tags[0]: 'solo' is not KEY=VALUE")]
    [InlineData("romana.ec2-lab.tables = [{ id = a, routes = [{ destination = \"10.0.0.1/8\", target = igw-1 }] }]",
        "romana.ec2-lab.tables[0].routes[0].destination: '10.0.0.1/8' is not an IPv4 CIDR such as 10.0.0.0/16")]
    [InlineData("romana.ec2-lab.tables = [rtb-a]", "romana.ec2-lab.tables[0]: expected an object { ... }")]
    [InlineData("romana.ec2-lab.listen = \"localhost:80\"",
        "romana.ec2-lab.listen: 'localhost:80' is not ADDR:PORT (for example 127.0.0.1:9607, or [::1]:9607)")]
    [InlineData("romana.ec2-lab.error-rate = 2", "romana.ec2-lab.error-rate: 2 must lie between 0 and 1")]
    [InlineData("romana.ec2-lab.latency = soon", "romana.ec2-lab.latency: 'soon' is not a duration such as 20ms or 1s")]
    [InlineData("romana.ec2-lab.throttle.enabled = maybe", "romana.ec2-lab.throttle.enabled: 'maybe' is neither on nor off")]
    [InlineData("romana.ec2-lab.throttle.burst = 0", "romana.ec2-lab.throttle.burst: 0 must be at least 1")]
    [InlineData("romana.ec2-lab.vpc.cidr = \"10.0.0.0/33\"",
        "romana.ec2-lab.vpc.cidr: '10.0.0.0/33' is not an IPv4 CIDR such as 10.0.0.0/16")]
    public void A_bad_field_is_refused_naming_it_and_its_value(string hocon, string error) => Assert.Equal(error, Refused(hocon));

    [Theory]
    [InlineData("127.0.0.1:9607", "127.0.0.1", 9607)]
    [InlineData("0.0.0.0:0", "0.0.0.0", 0)]
    [InlineData("[::1]:80", "::1", 80)]
    public void Listen_is_an_address_and_a_port(string text, string address, int port) =>
        Assert.Equal(new IPEndPoint(IPAddress.Parse(address), port), Ec2LabSettings.ParseListen(text, "--listen"));

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:")]
    [InlineData("127.0.0.1:65536")]
    [InlineData("127.0.0.1:-1")]
    [InlineData(":9607")]
    [InlineData("::1:9607")]
    [InlineData("localhost:9607")]
    [InlineData("10.0.0.300:1")]
    public void A_malformed_listen_is_refused_naming_the_option_and_the_value(string text) =>
        Assert.Equal($"--listen: '{text}' is not ADDR:PORT (for example 127.0.0.1:9607, or [::1]:9607)",
            Assert.Throws<ConfigurationError>(() => Ec2LabSettings.ParseListen(text, "--listen")).Message);
}
