using System.Collections.Immutable;
using System.Net;
using System.Text;
using Amazon.EC2;
using Amazon.EC2.Model;
using Amazon.Runtime;
using Romana.Actors.Routing;
using Romana.Host.Aws;
using Romana.Host.Ec2;
using static Romana.Fuzz.FuzzFinding;

namespace Romana.Fuzz;

/// <summary>
/// EC2 both ways. <see cref="Query"/>: requests as the lab's EC2 Query API server parses them, answered by the lab, written as
/// EC2's XML and read back by AWSSDK.EC2. <see cref="Response"/>: what Romana does with whatever an endpoint answers to
/// DescribeRouteTables, through AWSSDK.EC2's unmarshalling and Romana's adapter (<see cref="AwsEc2RouteTables"/>).
/// </summary>
public static class Ec2FuzzTargets
{
    private const int MaxCalls = 64;
    private const int MaxPages = 100;
    private const string RequestId = "fuzz-request";

    /// <summary>
    /// Each line is one request's form-encoded parameters (Action=CreateRoute&amp;RouteTableId=rtb-a&amp;...), parsed as
    /// <see cref="Ec2QueryApiServer"/> parses a request and called on one lab, in order: the lab answers or refuses with
    /// <see cref="Ec2Error"/>, its answer is written as the server writes it, and AWSSDK.EC2 must read back the same tables
    /// (or, for a refusal, the same code and status through Romana's adapter).
    /// </summary>
    public static FuzzTarget Query { get; } = new("ec2-query",
        "Query API requests (one form-encoded request a line) parsed by the lab's server, answered by the lab, its XML read back by "
        + "AWSSDK.EC2 (Ec2QueryApiServer, Ec2QueryParameters, Ec2Lab)", RunQuery);

    /// <summary>
    /// The body of EC2's answer to DescribeRouteTables (XML), after an optional first line "NNN" giving the HTTP status (200
    /// without it), served to every page Romana asks for: Romana's adapter returns the tables or throws <see cref="Ec2Error"/>.
    /// </summary>
    public static FuzzTarget Response { get; } = new("ec2-response",
        "EC2's answer to DescribeRouteTables (an optional status line, then XML) read by AWSSDK.EC2 and Romana's adapter "
        + "(AwsEc2RouteTables)", RunResponse);

    private static readonly CannedEndpoint Endpoint = new();

    private static void RunQuery(byte[] input)
    {
        var lab = new Ec2Lab();
        lab.AddRouteTable("rtb-a", subnetIds: ["subnet-a1", "subnet-a2"],
            tags: [new("romana", "cluster-1"), new("Name", "zone a")], vpcCidr: "10.0.0.0/16");
        lab.PutRoute("rtb-a", "100.64.0.0/26", "eni-0a1");
        lab.PutRoute("rtb-a", "0.0.0.0/0", "igw-1");
        lab.AddRouteTable("rtb-b", routeLimit: 2, subnetIds: ["subnet-b1"], tags: [new("romana", "cluster-1")], vpcCidr: "10.0.0.0/16");
        lab.AddRouteTable("rtb-c", "vpc-other");

        // Each code once per input: a refusal through the SDK costs a few exceptions, and a long input repeats them.
        var refusalsRead = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in Encoding.UTF8.GetString(input).Split('\n').Take(MaxCalls))
        {
            var call = Ec2QueryApiServer.CallOf("", line);
            Ec2Answer answer;
            try
            {
                answer = lab.CallAsync(call).GetAwaiter().GetResult();
            }
            catch (Ec2Error error)
            {
                Require(error.StatusCode is 400 or 503 && error.Code.Length > 0 && error.Detail.Length > 0,
                    $"the lab refused {call.Action} with status {error.StatusCode} and code '{error.Code}'");
                var refusal = Ec2QueryApiServer.Bytes(Ec2QueryApiServer.ErrorBody(error.Code, error.Detail, RequestId));
                if (refusalsRead.Add(error.Code)) ErrorReadsBack(error, refusal);
                continue;
            }
            var body = Ec2QueryApiServer.Bytes(Ec2QueryApiServer.AnswerXml(call.Action, answer, RequestId));
            if (answer is Ec2Answer.RouteTables page) TablesReadBack(page, body);
        }
    }

    /// <summary>The answer as AWSSDK.EC2 reads it: every table, route, association and tag, and the next page's token.</summary>
    private static void TablesReadBack(Ec2Answer.RouteTables page, byte[] body)
    {
        var response = Endpoint.Answer(200, body, () => Endpoint.Client.DescribeRouteTablesAsync(new DescribeRouteTablesRequest()));
        var tables = response.RouteTables ?? [];
        Require(tables.Count == page.Tables.Length, $"the SDK reads {tables.Count} tables where the lab answered {page.Tables.Length}");
        foreach (var (read, sent) in tables.Zip(page.Tables))
        {
            Require(read.RouteTableId == sent.Id && read.VpcId == sent.VpcId && read.OwnerId == Ec2Lab.AccountId,
                $"the SDK reads table {read.RouteTableId} of {read.VpcId} where the lab answered {sent.Id} of {sent.VpcId}");
            var routes = (read.Routes ?? []).Select(r => (r.DestinationCidrBlock, Target: TargetOf(r), Origin: r.Origin?.Value));
            Require(routes.SequenceEqual(sent.Routes.Select(r => (r.Destination, (string?)r.Target, (string?)r.Origin))),
                $"the SDK reads other routes in {sent.Id} than the lab answered: " +
                $"{string.Join(", ", routes)} for {string.Join(", ", sent.Routes)}");
            var associations = (read.Associations ?? []).Select(a => (a.RouteTableAssociationId, a.SubnetId));
            Require(associations.SequenceEqual(sent.Associations.Select(a => (a.Id, a.SubnetId))),
                $"the SDK reads other associations in {sent.Id} than the lab answered");
            var tags = (read.Tags ?? []).Select(t => (t.Key, t.Value));
            Require(tags.SequenceEqual(sent.Tags.Select(t => (t.Key, t.Value))),
                $"the SDK reads other tags in {sent.Id} than the lab answered");
        }
        Require(response.NextToken == page.NextToken,
            $"the SDK reads the token {response.NextToken} where the lab answered {page.NextToken}");
    }

    /// <summary>A refusal as the server writes it, through AWSSDK.EC2 and Romana's adapter: the same code and status.</summary>
    private static void ErrorReadsBack(Ec2Error error, byte[] body)
    {
        try
        {
            Endpoint.Answer(error.StatusCode, body,
                () => new AwsEc2RouteTables(Endpoint.Client).DescribeAsync(new RouteTableSelector(["rtb-a"])));
        }
        catch (Ec2Error read)
        {
            Require(read.Code == error.Code && read.StatusCode == error.StatusCode,
                $"the adapter reads the refusal {error.StatusCode} {error.Code} as {read.StatusCode} {read.Code}");
            return;
        }
        throw new FuzzFinding($"the adapter read the refusal {error.StatusCode} {error.Code} as an answer");
    }

    private static string? TargetOf(Route r) =>
        r.NetworkInterfaceId ?? r.InstanceId ?? r.GatewayId ?? r.NatGatewayId ?? r.TransitGatewayId ?? r.VpcPeeringConnectionId;

    private static void RunResponse(byte[] input)
    {
        var status = 200;
        var body = input;
        var newline = Array.IndexOf(input, (byte)'\n');
        if (newline is 3 && int.TryParse(input.AsSpan(0, 3), out var given) && given is >= 100 and <= 599)
            (status, body) = (given, input[4..]);
        IReadOnlyList<Ec2RouteTable> tables;
        try
        {
            tables = Endpoint.Answer(status, body,
                () => new AwsEc2RouteTables(Endpoint.Client).DescribeAsync(new RouteTableSelector(["rtb-a"], "romana")));
        }
        catch (Ec2Error error)
        {
            Require(error.Code.Length > 0 && error.StatusCode is >= 100 and <= 599,
                $"the adapter refused with code '{error.Code}' and status {error.StatusCode}");
            return;
        }
        Require(tables.All(t => t.Id is not null && t.SubnetIds.All(s => s is not null)
            && t.Routes.All(r => r.Destination is not null && r.Target is not null)), "the adapter returned a table with a null field");
        Require(tables.Select(t => t.Id).Distinct().Count() == tables.Count, "the adapter returned a table twice");
    }

    /// <summary>
    /// An AWSSDK.EC2 client whose HTTP handler answers every request with one canned status and body, and counts the requests:
    /// the SDK's whole pipeline (signing, unmarshalling, error handling) without a network.
    /// </summary>
    private sealed class CannedEndpoint
    {
        private static readonly byte[] LastPage = Encoding.UTF8.GetBytes(
            $"<DescribeRouteTablesResponse xmlns=\"{Ec2QueryApiServer.XmlNamespace}\"><routeTableSet/></DescribeRouteTablesResponse>");

        private int _status;
        private byte[] _body = [];
        private int _requests;

        public CannedEndpoint()
        {
            var config = new AmazonEC2Config
            {
                ServiceURL = "http://127.0.0.1:1/", AuthenticationRegion = "us-east-1", MaxErrorRetry = 0,
                Timeout = TimeSpan.FromSeconds(5), HttpClientFactory = new Factory(this),
            };
            Client = new AmazonEC2Client(new BasicAWSCredentials("fuzz", "fuzz"), config);
        }

        public AmazonEC2Client Client { get; }

        /// <summary>What <paramref name="call"/> makes of the canned answer; a finding when it asks for page after page.</summary>
        public T Answer<T>(int status, byte[] body, Func<Task<T>> call)
        {
            (_status, _body, _requests) = (status, body, 0);
            var result = call().GetAwaiter().GetResult();
            Require(_requests <= MaxPages, $"more than {MaxPages} requests for one answer repeated: pagination that does not end");
            return result;
        }

        private HttpResponseMessage Respond()
        {
            // Past the bound, an empty last page ends the loop, and Answer reports it.
            var body = ++_requests > MaxPages ? LastPage : _body;
            var content = new ByteArrayContent(body);
            content.Headers.TryAddWithoutValidation("Content-Type", "text/xml;charset=UTF-8");
            return new HttpResponseMessage((HttpStatusCode)(_requests > MaxPages ? 200 : _status)) { Content = content };
        }

        private sealed class Factory(CannedEndpoint endpoint) : HttpClientFactory
        {
            public override HttpClient CreateHttpClient(IClientConfig clientConfig) => new(new Handler(endpoint));
        }

        private sealed class Handler(CannedEndpoint endpoint) : HttpMessageHandler
        {
            protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
                Task.FromResult(endpoint.Respond());
        }
    }
}
