using System.Diagnostics;
using System.Net;
using Amazon.EC2;
using Amazon.EC2.Model;
using Amazon.Runtime;
using Romana.Host.Ec2;

namespace Romana.Actors.Tests.Ec2;

/// <summary>The EC2 model through its Query API server, driven by the real AWSSDK.EC2 client.</summary>
public sealed class Ec2QueryApiServerTests : IAsyncLifetime
{
    private const string Vpc = "vpc-1";
    // The token bucket runs on this clock: a burst is judged by the tokens it finds, however slowly the machine serves it.
    private readonly ManualClock _clock = new();
    private readonly Ec2Lab _lab;
    private readonly Ec2QueryApiServer _server;
    private AmazonEC2Client _ec2 = null!;

    public Ec2QueryApiServerTests()
    {
        _lab = new Ec2Lab(_clock);
        _server = Ec2QueryApiServer.Start(_lab);
    }

    public Task InitializeAsync()
    {
        _ec2 = ClientFor(_server);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _ec2.Dispose();
        await _server.DisposeAsync();
    }

    private static AmazonEC2Client ClientFor(Ec2QueryApiServer server, int maxErrorRetry = 0) =>
        new(new BasicAWSCredentials("test", "test"), new AmazonEC2Config
        {
            ServiceURL = server.Url,
            AuthenticationRegion = "us-east-1",
            MaxErrorRetry = maxErrorRetry,
            Timeout = TimeSpan.FromSeconds(10),
        });

    private static async Task<AmazonEC2Exception> ThrowsEc2(string code, HttpStatusCode status, Func<Task> call)
    {
        var error = await Assert.ThrowsAsync<AmazonEC2Exception>(call);
        Assert.Equal(code, error.ErrorCode);
        Assert.Equal(status, error.StatusCode);
        return error;
    }

    private Task<CreateRouteResponse> Create(string table, string cidr, string eni) =>
        _ec2.CreateRouteAsync(new CreateRouteRequest { RouteTableId = table, DestinationCidrBlock = cidr, NetworkInterfaceId = eni });

    private async Task<List<string>> DescribeIds(DescribeRouteTablesRequest request) =>
        (await _ec2.DescribeRouteTablesAsync(request)).RouteTables?.Select(t => t.RouteTableId).ToList() ?? [];

    // ---------------------------------------------------------------- DescribeRouteTables

    [Fact]
    public async Task Describe_by_ids_returns_those_tables_with_full_shape()
    {
        _lab.AddRouteTable("rtb-a", Vpc, subnetIds: ["subnet-1", "subnet-2"],
            tags: new Dictionary<string, string> { ["Name"] = "main", ["romana"] = "managed" });
        _lab.AddRouteTable("rtb-b", Vpc);
        _lab.AddRouteTable("rtb-c", "vpc-2");
        _lab.PutRoute("rtb-a", "10.0.0.0/16", "local");
        _lab.PutRoute("rtb-a", "0.0.0.0/0", "igw-1");
        _lab.PutRoute("rtb-a", "10.1.0.0/24", "eni-1");
        _lab.PutRoute("rtb-a", "10.2.0.0/24", "i-1");

        var response = await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest { RouteTableIds = ["rtb-a", "rtb-c"] });

        Assert.Equal(["rtb-a", "rtb-c"], response.RouteTables.Select(t => t.RouteTableId));
        Assert.Null(response.NextToken);
        var table = response.RouteTables[0];
        Assert.Equal(Vpc, table.VpcId);
        Assert.Equal(Ec2Lab.AccountId, table.OwnerId);

        var local = table.Routes.Single(r => r.DestinationCidrBlock == "10.0.0.0/16");
        Assert.Equal("local", local.GatewayId);
        Assert.Equal(RouteOrigin.CreateRouteTable, local.Origin);
        Assert.Equal(RouteState.Active, local.State);
        Assert.Equal("igw-1", table.Routes.Single(r => r.DestinationCidrBlock == "0.0.0.0/0").GatewayId);
        var eniRoute = table.Routes.Single(r => r.DestinationCidrBlock == "10.1.0.0/24");
        Assert.Equal("eni-1", eniRoute.NetworkInterfaceId);
        Assert.Null(eniRoute.GatewayId);
        Assert.Equal(RouteOrigin.CreateRoute, eniRoute.Origin);
        Assert.Equal("i-1", table.Routes.Single(r => r.DestinationCidrBlock == "10.2.0.0/24").InstanceId);

        Assert.Equal(["subnet-1", "subnet-2"], table.Associations.Select(a => a.SubnetId));
        Assert.All(table.Associations, a =>
        {
            Assert.Equal("rtb-a", a.RouteTableId);
            Assert.False(a.Main);
            Assert.StartsWith("rtbassoc-", a.RouteTableAssociationId);
            Assert.Equal(RouteTableAssociationStateCode.Associated, a.AssociationState.State);
        });
        Assert.Equal("managed", table.Tags.Single(t => t.Key == "romana").Value);
        Assert.Equal("main", table.Tags.Single(t => t.Key == "Name").Value);
    }

    [Fact]
    public async Task Describe_unknown_id_is_InvalidRouteTableID_NotFound()
    {
        _lab.AddRouteTable("rtb-a", Vpc);

        var error = await ThrowsEc2("InvalidRouteTableID.NotFound", HttpStatusCode.BadRequest,
            () => _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest { RouteTableIds = ["rtb-a", "rtb-nope"] }));

        Assert.Contains("rtb-nope", error.Message);
    }

    [Fact]
    public async Task Describe_with_tag_filters()
    {
        _lab.AddRouteTable("rtb-a", Vpc, tags: new Dictionary<string, string> { ["romana"] = "managed" });
        _lab.AddRouteTable("rtb-b", Vpc, tags: new Dictionary<string, string> { ["romana"] = "ignored" });
        _lab.AddRouteTable("rtb-c", Vpc, tags: new Dictionary<string, string> { ["other"] = "x" });

        Assert.Equal(["rtb-a"], await DescribeIds(new() { Filters = [new Filter("tag:romana", ["managed"])] }));
        Assert.Equal(["rtb-a", "rtb-b"], await DescribeIds(new() { Filters = [new Filter("tag-key", ["romana"])] }));
        Assert.Equal(["rtb-a", "rtb-b"], await DescribeIds(new() { Filters = [new Filter("tag:romana", ["managed", "ignored"])] }));
        Assert.Equal(["rtb-a"], await DescribeIds(new() { Filters = [new Filter("tag:romana", ["man*"])] }));
    }

    [Fact]
    public async Task Describe_with_subnet_association_and_vpc_filters()
    {
        _lab.AddRouteTable("rtb-a", Vpc, subnetIds: ["subnet-1"]);
        _lab.AddRouteTable("rtb-b", Vpc, subnetIds: ["subnet-2", "subnet-3"]);
        _lab.AddRouteTable("rtb-c", "vpc-2", subnetIds: ["subnet-3"]);

        Assert.Equal(["rtb-b", "rtb-c"], await DescribeIds(new() { Filters = [new Filter("association.subnet-id", ["subnet-3"])] }));
        Assert.Equal(["rtb-b"], await DescribeIds(new()
        {
            Filters = [new Filter("association.subnet-id", ["subnet-3"]), new Filter("vpc-id", [Vpc])],
        }));
        Assert.Equal(["rtb-a"], await DescribeIds(new() { Filters = [new Filter("route-table-id", ["rtb-a"])] }));
        Assert.Empty(await DescribeIds(new() { Filters = [new Filter("association.subnet-id", ["subnet-9"])] }));
    }

    [Fact]
    public async Task Describe_with_unknown_filter_is_InvalidParameterValue()
    {
        await ThrowsEc2("InvalidParameterValue", HttpStatusCode.BadRequest,
            () => _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest { Filters = [new Filter("bogus", ["x"])] }));
    }

    [Fact]
    public async Task Describe_paginates_with_MaxResults_and_NextToken()
    {
        for (var i = 1; i <= 7; i++)
            _lab.AddRouteTable($"rtb-{i}", Vpc);

        var first = await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest { MaxResults = 5 });
        var second = await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest { MaxResults = 5, NextToken = first.NextToken });

        Assert.Equal(5, first.RouteTables.Count);
        Assert.NotNull(first.NextToken);
        Assert.Equal(["rtb-6", "rtb-7"], second.RouteTables.Select(t => t.RouteTableId));
        Assert.Null(second.NextToken);
        Assert.Equal("5", _lab.Calls[0].Parameters["MaxResults"]);
        Assert.Equal(first.NextToken, _lab.Calls[1].Parameters["NextToken"]);
    }

    [Fact]
    public async Task Describe_paginator_walks_all_pages()
    {
        for (var i = 1; i <= 7; i++)
            _lab.AddRouteTable($"rtb-{i}", Vpc);

        var ids = new List<string>();
        await foreach (var table in _ec2.Paginators.DescribeRouteTables(new DescribeRouteTablesRequest { MaxResults = 5 }).RouteTables)
            ids.Add(table.RouteTableId);

        Assert.Equal(Enumerable.Range(1, 7).Select(i => $"rtb-{i}"), ids);
        Assert.Equal(2, _lab.CountOf("DescribeRouteTables"));
    }

    [Fact]
    public async Task Describe_without_MaxResults_returns_everything()
    {
        for (var i = 1; i <= 7; i++)
            _lab.AddRouteTable($"rtb-{i}", Vpc);

        var response = await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest());

        Assert.Equal(7, response.RouteTables.Count);
        Assert.Null(response.NextToken);
    }

    // ---------------------------------------------------------------- CreateRoute / ReplaceRoute / DeleteRoute

    [Fact]
    public async Task Create_replace_delete_happy_path()
    {
        _lab.AddRouteTable("rtb-a", Vpc);
        _lab.PutRoute("rtb-a", "10.0.0.0/16", "local");

        var created = await Create("rtb-a", "10.1.0.0/24", "eni-1");
        Assert.True(created.Return);
        Assert.Contains(("10.1.0.0/24", "eni-1"), _lab.RoutesOf("rtb-a"));

        var replaced = await _ec2.ReplaceRouteAsync(new ReplaceRouteRequest
        {
            RouteTableId = "rtb-a", DestinationCidrBlock = "10.1.0.0/24", NetworkInterfaceId = "eni-2",
        });
        Assert.Equal(HttpStatusCode.OK, replaced.HttpStatusCode);
        Assert.Contains(("10.1.0.0/24", "eni-2"), _lab.RoutesOf("rtb-a"));

        var described = await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest { RouteTableIds = ["rtb-a"] });
        Assert.Equal("eni-2", described.RouteTables[0].Routes.Single(r => r.DestinationCidrBlock == "10.1.0.0/24").NetworkInterfaceId);

        await _ec2.DeleteRouteAsync(new DeleteRouteRequest { RouteTableId = "rtb-a", DestinationCidrBlock = "10.1.0.0/24" });
        Assert.Equal([("10.0.0.0/16", "local")], _lab.RoutesOf("rtb-a"));
    }

    [Fact]
    public async Task Create_existing_cidr_is_RouteAlreadyExists()
    {
        _lab.AddRouteTable("rtb-a", Vpc);
        _lab.PutRoute("rtb-a", "10.1.0.0/24", "eni-foreign");

        await ThrowsEc2("RouteAlreadyExists", HttpStatusCode.BadRequest, () => Create("rtb-a", "10.1.0.0/24", "eni-1"));

        Assert.Equal([("10.1.0.0/24", "eni-foreign")], _lab.RoutesOf("rtb-a"));
    }

    [Fact]
    public async Task Replace_and_delete_of_missing_route_are_InvalidRoute_NotFound()
    {
        _lab.AddRouteTable("rtb-a", Vpc);

        var replace = await ThrowsEc2("InvalidRoute.NotFound", HttpStatusCode.BadRequest,
            () => _ec2.ReplaceRouteAsync(new ReplaceRouteRequest
            {
                RouteTableId = "rtb-a", DestinationCidrBlock = "10.9.0.0/24", NetworkInterfaceId = "eni-1",
            }));
        await ThrowsEc2("InvalidRoute.NotFound", HttpStatusCode.BadRequest,
            () => _ec2.DeleteRouteAsync(new DeleteRouteRequest { RouteTableId = "rtb-a", DestinationCidrBlock = "10.9.0.0/24" }));

        Assert.Equal("no route with destination-cidr-block 10.9.0.0/24 in route table rtb-a", replace.Message);
    }

    [Fact]
    public async Task Create_at_the_limit_is_RouteLimitExceeded_counting_foreign_but_not_local_routes()
    {
        _lab.AddRouteTable("rtb-a", Vpc, routeLimit: 3);
        _lab.PutRoute("rtb-a", "10.0.0.0/16", "local");
        _lab.PutRoute("rtb-a", "0.0.0.0/0", "igw-1");
        _lab.PutRoute("rtb-a", "10.5.0.0/24", "eni-foreign");

        await Create("rtb-a", "10.1.0.0/24", "eni-1");
        await ThrowsEc2("RouteLimitExceeded", HttpStatusCode.BadRequest, () => Create("rtb-a", "10.2.0.0/24", "eni-1"));

        _lab.SetRouteLimit("rtb-a", 4);
        await Create("rtb-a", "10.2.0.0/24", "eni-1");
        Assert.Equal(5, _lab.RoutesOf("rtb-a").Count);
    }

    [Fact]
    public async Task Mutations_on_unknown_table_are_InvalidRouteTableID_NotFound()
    {
        await ThrowsEc2("InvalidRouteTableID.NotFound", HttpStatusCode.BadRequest, () => Create("rtb-nope", "10.1.0.0/24", "eni-1"));
        await ThrowsEc2("InvalidRouteTableID.NotFound", HttpStatusCode.BadRequest,
            () => _ec2.DeleteRouteAsync(new DeleteRouteRequest { RouteTableId = "rtb-nope", DestinationCidrBlock = "10.1.0.0/24" }));
    }

    [Fact]
    public async Task Create_with_malformed_cidr_is_InvalidParameterValue()
    {
        _lab.AddRouteTable("rtb-a", Vpc);

        await ThrowsEc2("InvalidParameterValue", HttpStatusCode.BadRequest, () => Create("rtb-a", "10.1.0.300/24", "eni-1"));
        await ThrowsEc2("InvalidParameterValue", HttpStatusCode.BadRequest, () => Create("rtb-a", "10.1.0.0/33", "eni-1"));
        Assert.Empty(_lab.RoutesOf("rtb-a"));
    }

    // ---------------------------------------------------------------- ModifyNetworkInterfaceAttribute

    [Fact]
    public async Task Modify_network_interface_sets_source_dest_check()
    {
        Assert.Null(_lab.SourceDestCheck("eni-1"));

        var response = await _ec2.ModifyNetworkInterfaceAttributeAsync(new ModifyNetworkInterfaceAttributeRequest
        {
            NetworkInterfaceId = "eni-1", SourceDestCheck = false,
        });

        Assert.Equal(HttpStatusCode.OK, response.HttpStatusCode);
        Assert.False(_lab.SourceDestCheck("eni-1"));
        Assert.Equal("false", _lab.Calls.Single().Parameters["SourceDestCheck.Value"]);
        Assert.Null(_lab.SourceDestCheck("eni-2"));
    }

    // ---------------------------------------------------------------- fault injection

    [Fact]
    public async Task Throttle_gives_burst_successes_then_RequestLimitExceeded_on_first_try_then_refills()
    {
        _lab.AddRouteTable("rtb-a", Vpc);
        _lab.Throttle = new Ec2Throttle(Burst: 3, RefillPerSecond: 1);

        for (var i = 1; i <= 3; i++)
            await Create("rtb-a", $"10.{i}.0.0/24", "eni-1");
        var error = await ThrowsEc2("RequestLimitExceeded", HttpStatusCode.ServiceUnavailable,
            () => Create("rtb-a", "10.4.0.0/24", "eni-1"));
        Assert.Equal("Request limit exceeded.", error.Message);
        Assert.Equal(4, _lab.CountOf("CreateRoute")); // MaxErrorRetry = 0: no hidden SDK retry

        await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest()); // reads are never throttled

        _clock.Advance(TimeSpan.FromSeconds(1.1));
        await Create("rtb-a", "10.4.0.0/24", "eni-1");
        Assert.Equal(4, _lab.RoutesOf("rtb-a").Count);
    }

    [Fact]
    public async Task Concurrent_burst_is_served_and_throttled_consistently()
    {
        _lab.AddRouteTable("rtb-a", Vpc, routeLimit: 100);
        _lab.Throttle = Ec2Throttle.Ec2Default;

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 60).Select(async i =>
        {
            try
            {
                await Create("rtb-a", $"10.{i}.0.0/24", "eni-1");
                return "ok";
            }
            catch (AmazonEC2Exception e) when (e.ErrorCode == "RequestLimitExceeded")
            {
                return "throttled";
            }
        }));

        var succeeded = outcomes.Count(o => o == "ok");
        Assert.Equal(50, succeeded); // the clock stands still: no token refills while the burst is in flight
        Assert.Equal(succeeded, _lab.RoutesOf("rtb-a").Count);
        Assert.Equal(60, _lab.CountOf("CreateRoute"));
    }

    [Fact]
    public async Task Throttle_can_be_disabled_again()
    {
        _lab.AddRouteTable("rtb-a", Vpc);
        _lab.Throttle = new Ec2Throttle(Burst: 1, RefillPerSecond: 0);
        await Create("rtb-a", "10.1.0.0/24", "eni-1");
        await ThrowsEc2("RequestLimitExceeded", HttpStatusCode.ServiceUnavailable, () => Create("rtb-a", "10.2.0.0/24", "eni-1"));

        _lab.Throttle = null;

        await Create("rtb-a", "10.2.0.0/24", "eni-1");
    }

    [Fact]
    public async Task Error_rate_one_fails_every_call_with_503_Unavailable()
    {
        _lab.ErrorRate = 1.0;

        await ThrowsEc2("Unavailable", HttpStatusCode.ServiceUnavailable,
            () => _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest()));

        _lab.ErrorRate = 0;
        await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest());
    }

    [Fact]
    public async Task Error_injection_is_repeatable_for_a_given_seed()
    {
        async Task<string> Pattern()
        {
            await using var server = Ec2QueryApiServer.Start(new Ec2Lab(seed: 7) { ErrorRate = 0.5 });
            using var ec2 = ClientFor(server);
            var outcome = "";
            for (var i = 0; i < 12; i++)
            {
                try
                {
                    await ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest());
                    outcome += "+";
                }
                catch (AmazonEC2Exception)
                {
                    outcome += "x";
                }
            }
            return outcome;
        }

        var first = await Pattern();
        Assert.Equal(first, await Pattern());
        Assert.Contains("+", first);
        Assert.Contains("x", first);
    }

    [Fact]
    public async Task Sdk_retries_are_visible_in_the_call_log_when_enabled()
    {
        using var retrying = ClientFor(_server, maxErrorRetry: 1); // the SDK backs off up to ~1 s before the retry
        _lab.ErrorRate = 1.0;

        await ThrowsEc2("Unavailable", HttpStatusCode.ServiceUnavailable,
            () => retrying.DescribeRouteTablesAsync(new DescribeRouteTablesRequest()));

        Assert.Equal(2, _lab.CountOf("DescribeRouteTables"));
    }

    [Fact]
    public async Task Latency_delays_each_answer()
    {
        await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest()); // warm up the connection
        _lab.Latency = TimeSpan.FromMilliseconds(300);

        var clock = Stopwatch.StartNew();
        await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest());

        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(290), $"took {clock.Elapsed}");
    }

    // ---------------------------------------------------------------- protocol & call log

    [Fact]
    public async Task Call_log_records_actions_in_order_with_parameters_and_counts()
    {
        _lab.AddRouteTable("rtb-a", Vpc);

        await _ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest { RouteTableIds = ["rtb-a"] });
        await Create("rtb-a", "10.1.0.0/24", "eni-1");
        await _ec2.ReplaceRouteAsync(new ReplaceRouteRequest
        {
            RouteTableId = "rtb-a", DestinationCidrBlock = "10.1.0.0/24", NetworkInterfaceId = "eni-2"
        });
        await ThrowsEc2("RouteAlreadyExists", HttpStatusCode.BadRequest, () => Create("rtb-a", "10.1.0.0/24", "eni-1"));
        await _ec2.DeleteRouteAsync(new DeleteRouteRequest { RouteTableId = "rtb-a", DestinationCidrBlock = "10.1.0.0/24" });
        await _ec2.ModifyNetworkInterfaceAttributeAsync(new ModifyNetworkInterfaceAttributeRequest
        {
            NetworkInterfaceId = "eni-1", SourceDestCheck = false
        });

        Assert.Equal(
            ["DescribeRouteTables", "CreateRoute", "ReplaceRoute", "CreateRoute", "DeleteRoute", "ModifyNetworkInterfaceAttribute"],
            _lab.Calls.Select(c => c.Action));
        var create = _lab.Calls[1].Parameters;
        Assert.Equal("2016-11-15", create["Version"]);
        Assert.Equal("rtb-a", create["RouteTableId"]);
        Assert.Equal("10.1.0.0/24", create["DestinationCidrBlock"]);
        Assert.Equal("eni-1", create["NetworkInterfaceId"]);
        Assert.Equal("rtb-a", _lab.Calls[0].Parameters["RouteTableId.1"]);
        Assert.Equal(2, _lab.CallCounts["CreateRoute"]);
        Assert.Equal(1, _lab.CountOf("DeleteRoute"));

        _lab.ClearCalls();
        Assert.Empty(_lab.Calls);
        Assert.Equal(0, _lab.CountOf("CreateRoute"));
    }

    [Fact]
    public async Task Unknown_action_is_InvalidAction_in_the_ec2_error_shape()
    {
        using var http = new HttpClient();
        var response = await http.PostAsync(_server.Url,
            new FormUrlEncodedContent(new Dictionary<string, string> { ["Action"] = "RunInstances", ["Version"] = "2016-11-15" }));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>InvalidAction</Code>", body);
        Assert.Contains("<RequestID>", body);
        Assert.Equal("RunInstances", _lab.Calls.Single().Action);
    }

    [Fact]
    public async Task Success_responses_carry_the_ec2_namespace()
    {
        _lab.AddRouteTable("rtb-a", Vpc);
        using var http = new HttpClient();
        var response = await http.PostAsync(_server.Url, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["Action"] = "CreateRoute", ["Version"] = "2016-11-15",
            ["RouteTableId"] = "rtb-a", ["DestinationCidrBlock"] = "10.1.0.0/24", ["NetworkInterfaceId"] = "eni-1",
        }));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Matches("^<\\?xml version=\"1.0\" encoding=\"UTF-8\"\\?>" +
            "<CreateRouteResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">" +
            "<requestId>[0-9a-f-]{36}</requestId><return>true</return></CreateRouteResponse>$", body);
    }

    [Fact]
    public async Task Dispose_stops_listening()
    {
        var server = Ec2QueryApiServer.Start(new Ec2Lab());
        var url = server.Url;
        await server.DisposeAsync();
        server.Dispose(); // idempotent

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => http.GetAsync(url));
    }
}
