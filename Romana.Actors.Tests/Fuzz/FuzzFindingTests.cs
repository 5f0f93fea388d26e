using System.Collections.Immutable;
using System.Net;
using System.Text;
using Amazon.EC2;
using Amazon.Runtime;
using Romana.Actors.Routing;
using Romana.Cni.Plugin;
using Romana.Host.Aws;
using Romana.Host.Documents;
using Romana.Host.Ec2;
using Romana.Host.Ipam;
using Romana.Host.Routing;

namespace Romana.Actors.Tests.Fuzz;

/// <summary>
/// What the fuzzers found (README, "Fuzzing"), each as the behaviour that replaced it. The inputs themselves are in the corpus
/// as crash-* files and replayed by <see cref="FuzzCorpusTests"/>.
/// </summary>
public class FuzzFindingTests
{
    [Fact]
    public void Plugin_stdin_that_is_not_utf8_is_code_6_not_an_internal_error()
    {
        var stdin = Encoding.UTF8.GetBytes("""{"cniVersion":"1.0.0","name":"X"}""");
        stdin[^3] = 0xEE;
        Assert.Equal(CniErrorCode.DecodingFailure, Assert.Throws<CniException>(() => NetworkConfig.ParseObject(stdin)).Code);
    }

    [Fact]
    public void Plugin_stdin_with_a_name_given_twice_is_code_6_not_an_internal_error()
    {
        var stdin = """{"cniVersion":"1.0.0","name":"a","name":"b"}"""u8.ToArray();
        var error = Assert.Throws<CniException>(() => NetworkConfig.ParseObject(stdin));
        Assert.Equal(CniErrorCode.DecodingFailure, error.Code);
        Assert.Contains("line 1", error.Message);
    }

    [Fact]
    public void A_document_error_stays_one_line_when_a_property_name_holds_a_newline()
    {
        var error = Assert.Throws<ClusterFileException>(() => ClusterFileReader.Parse("{\"pod\\nCidr\": 1}", "c.json"));
        Assert.DoesNotContain('\n', error.Message);
        Assert.StartsWith("c.json: $['pod\\nCidr'] = 1: unknown field", error.Message);
    }

    [Fact]
    public void A_name_given_twice_inside_a_vector_s_expect_is_a_vector_format_error()
    {
        const string vector = """
            {"name": "v",
             "topology": {"podCidr": "10.0.0.0/24", "blockPrefixLength": 26, "zones": [{"name": "z", "subnets": [{"id": "s"}]}]},
             "steps": [{"op": "blocks", "node": "n", "expect": {"a": 1, "a": 2}}]}
            """;
        var error = Assert.Throws<VectorFormatException>(() => ConformanceVectorReader.Parse(vector, "v.json"));
        Assert.Equal("v.json: $.steps[0].expect.a = 1: appears twice in its object", error.Message);
    }

    [Fact]
    public async Task The_ec2_lab_reads_a_list_member_numbered_with_a_leading_zero()
    {
        var lab = new Ec2Lab();
        lab.AddRouteTable("rtb-a");
        lab.AddRouteTable("rtb-b");
        var answer = await lab.CallAsync(Ec2Call.Of("DescribeRouteTables", ("RouteTableId.1", "rtb-a"), ("RouteTableId.02", "rtb-b")));
        Assert.Equal(["rtb-a", "rtb-b"], Assert.IsType<Ec2Answer.RouteTables>(answer).Tables.Select(t => t.Id).Order().ToArray());
    }

    [Fact]
    public async Task The_ec2_lab_refuses_a_route_target_that_is_no_id()
    {
        var lab = new Ec2Lab();
        lab.AddRouteTable("rtb-a");
        foreach (var target in new[] { "", "eni-\u0001", "eni 1", "eni-é" })
        {
            var error = await Assert.ThrowsAsync<Ec2Error>(() => lab.CallAsync(Ec2Call.Of("CreateRoute",
                ("RouteTableId", "rtb-a"), ("DestinationCidrBlock", "100.64.0.0/26"), ("NetworkInterfaceId", target))));
            Assert.Equal(("InvalidParameterValue", 400), (error.Code, error.StatusCode));
        }
        Assert.Empty(lab.RoutesOf("rtb-a"));
    }

    [Fact]
    public async Task The_ec2_query_api_server_answers_a_request_whose_values_xml_cannot_carry()
    {
        // Before, the error message quoting the value could not be written and the request was never answered.
        await using var server = Ec2QueryApiServer.Start(new Ec2Lab());
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var response = await http.PostAsync(server.Url,
            new StringContent("Action=DescribeRouteTables&RouteTableId.1=rtb-%01%00", Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("<Code>InvalidRouteTableID.NotFound</Code>", body);
        Assert.Contains("'rtb-\uFFFD\uFFFD'", body);
    }

    [Fact]
    public async Task The_aws_adapter_refuses_a_page_token_answered_twice_instead_of_asking_forever()
    {
        var (port, requests) = Canned(200, """
            <DescribeRouteTablesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
              <routeTableSet/><nextToken>again</nextToken>
            </DescribeRouteTablesResponse>
            """);
        var error = await Assert.ThrowsAsync<Ec2Error>(() => port.DescribeAsync(new RouteTableSelector([], "romana")));
        Assert.Equal(("PaginationLoop", 502, true), (error.Code, error.StatusCode, error.IsRetryable));
        Assert.Equal(2, requests());
    }

    [Theory]
    [InlineData(200, "not xml")]
    [InlineData(200, "<DescribeRouteTablesResponse><routeTableSet><item>")]
    [InlineData(200, NoTableId)]
    public async Task The_aws_adapter_reports_an_answer_it_cannot_read_as_an_ec2_error(int status, string body)
    {
        var (port, _) = Canned(status, body);
        var error = await Assert.ThrowsAsync<Ec2Error>(() => port.DescribeAsync(new RouteTableSelector(["rtb-a"])));
        Assert.Equal(("MalformedResponse", 502), (error.Code, error.StatusCode));
    }

    [Fact]
    public async Task The_aws_adapter_names_an_error_without_a_code_unknown()
    {
        var (port, _) = Canned(400, "<Response><Errors><Error><Code></Code><Message>m</Message></Error></Errors></Response>");
        var error = await Assert.ThrowsAsync<Ec2Error>(() => port.DescribeAsync(new RouteTableSelector(["rtb-a"])));
        Assert.Equal(("Unknown", 400), (error.Code, error.StatusCode));
    }

    private const string NoTableId =
        "<DescribeRouteTablesResponse><routeTableSet><item><vpcId>v</vpcId></item></routeTableSet></DescribeRouteTablesResponse>";

    /// <summary>The adapter over AWSSDK.EC2 whose every request is answered with one status and body, and how many came.</summary>
    private static (AwsEc2RouteTables Port, Func<int> Requests) Canned(int status, string body)
    {
        var handler = new CannedHandler(status, body);
        var client = new AmazonEC2Client(new BasicAWSCredentials("test", "test"), new AmazonEC2Config
        {
            ServiceURL = "http://127.0.0.1:1/", AuthenticationRegion = "us-east-1", MaxErrorRetry = 0,
            HttpClientFactory = new CannedFactory(handler),
        });
        return (new AwsEc2RouteTables(client), () => handler.Requests);
    }

    private sealed class CannedFactory(HttpMessageHandler handler) : HttpClientFactory
    {
        public override HttpClient CreateHttpClient(IClientConfig clientConfig) => new(handler, disposeHandler: false);
    }

    private sealed class CannedHandler(int status, string body) : HttpMessageHandler
    {
        public int Requests { get; private set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests++;
            return Task.FromResult(new HttpResponseMessage((HttpStatusCode)status)
            {
                Content = new StringContent(body, Encoding.UTF8, "text/xml"),
            });
        }
    }
}
