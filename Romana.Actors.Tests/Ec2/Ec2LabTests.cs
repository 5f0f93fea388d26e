using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using Romana.Host.Ec2;

namespace Romana.Actors.Tests.Ec2;

/// <summary>Time that moves only when the test says so.</summary>
public sealed class ManualClock : IClock
{
    public DateTimeOffset Now { get; private set; } = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public void Advance(TimeSpan by) => Now += by;
}

/// <summary>The EC2 model in-process, through the adapter the simulation and the benchmark use.</summary>
public class Ec2LabTests
{
    private static readonly Ipv4Cidr Pods = Ipv4Cidr.Parse("100.64.1.0/24");
    private static readonly Ipv4Cidr Other = Ipv4Cidr.Parse("100.65.0.0/24");

    private static (Ec2Lab Lab, Ec2LabRouteTables Ec2) Lab(IClock? clock = null)
    {
        var lab = new Ec2Lab(clock);
        lab.AddRouteTable("rtb-a", routeLimit: 100, subnetIds: ["subnet-1"], tags: [new("romana.io/cluster", "lab")],
            vpcCidr: "10.0.0.0/16");
        return (lab, new Ec2LabRouteTables(lab));
    }

    private static async Task<Ec2Error> Fails(string code, int status, Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<Ec2Error>(call);
        Assert.Equal((code, status), (error.Code, error.StatusCode));
        return error;
    }

    [Fact]
    public async Task Ec2s_preset_bucket_allows_a_burst_of_50_then_5_per_second_of_its_clock_and_never_throttles_reads()
    {
        var clock = new ManualClock();
        var (lab, ec2) = Lab(clock);
        lab.Throttle = Ec2Throttle.Ec2Default;

        for (var i = 0; i < 50; i++) await ec2.CreateRouteAsync("rtb-a", Ipv4Cidr.Parse($"100.64.{i}.0/24"), "eni-1");
        var throttled = await Fails("RequestLimitExceeded", 503, () => ec2.CreateRouteAsync("rtb-a", Other, "eni-1"));
        Assert.True(throttled.IsThrottling);
        await ec2.DescribeAsync(new RouteTableSelector(["rtb-a"]));

        clock.Advance(TimeSpan.FromSeconds(1));
        for (var i = 0; i < 5; i++) await ec2.DisableSourceDestCheckAsync($"eni-{i}");
        await Fails("RequestLimitExceeded", 503, () => ec2.DisableSourceDestCheckAsync("eni-5"));
        Assert.Equal(51, lab.RoutesOf("rtb-a").Count); // the local route and the 50 that got a token
        Assert.Null(lab.SourceDestCheck("eni-5"));
    }

    [Fact]
    public async Task Without_a_throttle_nothing_is_throttled_and_an_empty_bucket_throttles_every_mutating_call()
    {
        var (lab, ec2) = Lab();
        Assert.Null(lab.Throttle);
        for (var i = 0; i < 60; i++) await ec2.CreateRouteAsync("rtb-a", Ipv4Cidr.Parse($"100.64.{i}.0/24"), "eni-1");

        lab.Throttle = new Ec2Throttle(0, 0);
        await Fails("RequestLimitExceeded", 503, () => ec2.DeleteRouteAsync("rtb-a", Ipv4Cidr.Parse("100.64.0.0/24")));
        lab.Throttle = null;
        await ec2.DeleteRouteAsync("rtb-a", Ipv4Cidr.Parse("100.64.0.0/24"));
    }

    [Fact]
    public async Task Concurrent_calls_spend_the_bucket_exactly()
    {
        var (lab, ec2) = Lab(new ManualClock());
        lab.Throttle = new Ec2Throttle(50, 5);

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(async () =>
        {
            try
            {
                await ec2.CreateRouteAsync("rtb-a", Ipv4Cidr.Parse($"100.64.{i}.0/24"), "eni-1");
                return true;
            }
            catch (Ec2Error e) when (e.IsThrottling)
            {
                return false;
            }
        })));

        Assert.Equal(50, outcomes.Count(ok => ok));
        Assert.Equal(51, lab.RoutesOf("rtb-a").Count);
        Assert.Equal(100, lab.CountOf("CreateRoute"));
    }

    [Fact]
    public async Task The_adapter_sends_what_the_sdk_would_and_the_call_log_keeps_failed_calls_in_order()
    {
        var (lab, ec2) = Lab();

        await ec2.CreateRouteAsync("rtb-a", Pods, "eni-1");
        await Fails("RouteAlreadyExists", 400, () => ec2.CreateRouteAsync("rtb-a", Pods, "eni-2"));
        await ec2.ReplaceRouteAsync("rtb-a", Pods, "eni-2");
        await ec2.DeleteRouteAsync("rtb-a", Pods);
        await ec2.DisableSourceDestCheckAsync("eni-2");

        Assert.Equal(["CreateRoute", "CreateRoute", "ReplaceRoute", "DeleteRoute", "ModifyNetworkInterfaceAttribute"],
            lab.Calls.Select(c => c.Action));
        Assert.Equal(new Dictionary<string, string>
        {
            ["RouteTableId"] = "rtb-a", ["DestinationCidrBlock"] = "100.64.1.0/24", ["NetworkInterfaceId"] = "eni-2",
        }, lab.Calls[2].Parameters);
        Assert.Equal("false", lab.Calls[4].Parameters["SourceDestCheck.Value"]);
        Assert.False(lab.SourceDestCheck("eni-2"));
        Assert.Equal([("10.0.0.0/16", "local")], lab.RoutesOf("rtb-a"));
    }

    [Fact]
    public async Task Errors_carry_ec2s_codes()
    {
        var (lab, ec2) = Lab();
        lab.SetRouteLimit("rtb-a", 1);
        await ec2.CreateRouteAsync("rtb-a", Pods, "eni-1");

        Assert.True((await Fails("RouteLimitExceeded", 400, () => ec2.CreateRouteAsync("rtb-a", Other, "eni-1"))).IsRouteLimit);
        Assert.True((await Fails("InvalidRoute.NotFound", 400, () => ec2.ReplaceRouteAsync("rtb-a", Other, "eni-1"))).IsRouteNotFound);
        await Fails("InvalidRoute.NotFound", 400, () => ec2.DeleteRouteAsync("rtb-a", Other));
        await Fails("InvalidRouteTableID.NotFound", 400, () => ec2.CreateRouteAsync("rtb-nope", Pods, "eni-1"));
        await Fails("InvalidRouteTableID.NotFound", 400, () => ec2.DescribeAsync(new RouteTableSelector(["rtb-a", "rtb-nope"])));
        await Fails("InvalidParameterValue", 400, () => ec2.DeleteRouteAsync("rtb-a", Ipv4Cidr.Parse("10.0.0.0/16"))); // the local route
        await Fails("InvalidAction", 400, () => lab.CallAsync(Ec2Call.Of("RunInstances")));
        await Fails("MissingParameter", 400, () => lab.CallAsync(Ec2Call.Of("CreateRoute", ("RouteTableId", "rtb-a"))));
        await Fails("InvalidParameterCombination", 400,
            () => lab.CallAsync(Ec2Call.Of("DescribeRouteTables", ("RouteTableId.1", "rtb-a"), ("MaxResults", "5"))));
        await Fails("InvalidParameterValue", 400, () => lab.CallAsync(Ec2Call.Of("DescribeRouteTables", ("MaxResults", "1000"))));
    }

    [Fact]
    public async Task Describe_selects_tables_by_id_or_by_tag_and_answers_them_by_id()
    {
        var (lab, ec2) = Lab();
        lab.AddRouteTable("rtb-c", tags: [new("romana.io/cluster", "lab")]);
        lab.AddRouteTable("rtb-b", subnetIds: ["subnet-2", "subnet-3"]);
        lab.AddRouteTable("rtb-other", tags: [new("romana.io/cluster", "other")]);
        lab.PutRoute("rtb-b", "0.0.0.0/0", "igw-1");

        var tables = await ec2.DescribeAsync(new RouteTableSelector(["rtb-b"], "romana.io/cluster", "lab"));
        Assert.Equal(["rtb-a", "rtb-b", "rtb-c"], tables.Select(t => t.Id));
        Assert.Equal(["subnet-2", "subnet-3"], tables[1].SubnetIds.ToList());
        Assert.Equal([new Ec2Route("0.0.0.0/0", "igw-1")], tables[1].Routes.ToList());
        var anyValue = await ec2.DescribeAsync(new RouteTableSelector([], "romana.io/cluster"));
        Assert.Equal(["rtb-a", "rtb-c", "rtb-other"], anyValue.Select(t => t.Id));
        Assert.Empty(await ec2.DescribeAsync(new RouteTableSelector([])));
    }

    [Fact]
    public async Task RouteChanged_tells_every_change_in_order_and_nothing_about_failed_calls()
    {
        var (lab, ec2) = Lab();
        var changes = new List<Ec2RouteChange>();
        lab.RouteChanged += changes.Add;

        await ec2.CreateRouteAsync("rtb-a", Pods, "eni-1");
        await Assert.ThrowsAsync<Ec2Error>(() => ec2.CreateRouteAsync("rtb-a", Pods, "eni-1"));
        await ec2.ReplaceRouteAsync("rtb-a", Pods, "eni-2");
        await Assert.ThrowsAsync<Ec2Error>(() => ec2.DeleteRouteAsync("rtb-a", Ipv4Cidr.Parse("100.64.9.0/24")));
        await ec2.DeleteRouteAsync("rtb-a", Pods);
        lab.PutRoute("rtb-a", "0.0.0.0/0", "igw-1");
        lab.RemoveRoute("rtb-a", "0.0.0.0/0");

        Assert.Equal(
        [
            new("rtb-a", "100.64.1.0/24", "eni-1"), new("rtb-a", "100.64.1.0/24", "eni-2"), new("rtb-a", "100.64.1.0/24", null),
            new("rtb-a", "0.0.0.0/0", "igw-1"), new("rtb-a", "0.0.0.0/0", null),
        ], changes);
    }

    [Fact]
    public async Task Latency_is_awaited_through_the_injected_delay_before_the_call_is_answered()
    {
        var (lab, ec2) = Lab();
        var due = new TaskCompletionSource();
        var asked = new List<TimeSpan>();
        lab.Latency = TimeSpan.FromMilliseconds(20);
        lab.Delay = latency =>
        {
            asked.Add(latency);
            return due.Task;
        };

        var create = ec2.CreateRouteAsync("rtb-a", Pods, "eni-1");
        Assert.False(create.IsCompleted);
        Assert.Equal(["CreateRoute"], lab.Calls.Select(c => c.Action)); // received, not yet answered
        Assert.DoesNotContain(lab.RoutesOf("rtb-a"), r => r.Destination == "100.64.1.0/24");

        due.SetResult();
        await create;
        Assert.Equal([TimeSpan.FromMilliseconds(20)], asked);
        Assert.Contains(("100.64.1.0/24", "eni-1"), lab.RoutesOf("rtb-a"));
    }

    [Fact]
    public async Task The_same_seed_fails_the_same_calls()
    {
        async Task<string> Pattern(int seed)
        {
            var lab = new Ec2Lab(seed: seed) { ErrorRate = 0.5 };
            var outcome = "";
            for (var i = 0; i < 16; i++)
            {
                try
                {
                    await lab.CallAsync(Ec2Call.Of("DescribeRouteTables"));
                    outcome += "+";
                }
                catch (Ec2Error e) when (e is { Code: "Unavailable", StatusCode: 503, IsRetryable: true })
                {
                    outcome += "x";
                }
            }
            return outcome;
        }

        var first = await Pattern(7);
        Assert.Equal(first, await Pattern(7));
        Assert.Contains("+", first);
        Assert.Contains("x", first);
    }

    [Fact]
    public void A_table_reads_back_as_it_was_made_and_a_replaced_route_keeps_its_origin()
    {
        var lab = new Ec2Lab();
        lab.AddRouteTable("rtb-a", "vpc-9", 7, ["subnet-1"], [new("b", "2"), new("a", "1")], "10.9.0.0/16");
        lab.PutRoute("rtb-a", "10.9.0.0/16", "eni-middlebox"); // the local route, pointed at an appliance
        lab.PutRoute("rtb-a", "0.0.0.0/0", "igw-1");

        var table = lab.RouteTable("rtb-a");
        Assert.Equal(("rtb-a", "vpc-9", 7), (table.Id, table.VpcId, table.RouteLimit));
        Assert.Equal(["subnet-1"], table.Associations.Select(a => a.SubnetId));
        Assert.Equal([KeyValuePair.Create("a", "1"), KeyValuePair.Create("b", "2")], table.Tags); // sorted by key
        Assert.Equal([new("10.9.0.0/16", "eni-middlebox", "CreateRouteTable"), new Ec2LabRoute("0.0.0.0/0", "igw-1", "CreateRoute")],
            table.Routes.ToList());
        Assert.Throws<InvalidOperationException>(() => lab.AddRouteTable("rtb-a"));
        Assert.Throws<ArgumentException>(() => lab.PutRoute("rtb-a", "10.9.0.1/16", "igw-1"));
    }
}
