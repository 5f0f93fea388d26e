using System.Collections.Immutable;
using System.Xml;
using Amazon.EC2;
using Amazon.EC2.Model;
using Amazon.Runtime;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Host.Aws;

/// <summary>The EC2 port over AWSSDK.EC2. The SDK's own retries are off: the route manager owns the retry policy.</summary>
public sealed class AwsEc2RouteTables(IAmazonEC2 ec2) : IEc2RouteTables
{
    /// <summary>
    /// A client for a region, or for a local EC2-compatible endpoint (tests, labs)
    /// when <paramref name="serviceUrl"/> is set.
    /// </summary>
    public static AmazonEC2Client CreateClient(string region, string? serviceUrl, TimeSpan timeout, AWSCredentials? credentials = null)
    {
        var config = new AmazonEC2Config { MaxErrorRetry = 0, Timeout = timeout };
        if (string.IsNullOrEmpty(serviceUrl)) config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(region);
        else
        {
            config.ServiceURL = serviceUrl;
            config.AuthenticationRegion = region;
        }
        return credentials is null ? new AmazonEC2Client(config) : new AmazonEC2Client(credentials, config);
    }

    public async Task<IReadOnlyList<Ec2RouteTable>> DescribeAsync(RouteTableSelector selector, CancellationToken cancellation = default)
    {
        var found = new Dictionary<string, Ec2RouteTable>();
        if (!selector.Ids.IsEmpty)
            await DescribePagesAsync(new DescribeRouteTablesRequest { RouteTableIds = [.. selector.Ids] }, found, cancellation);
        if (selector.TagKey is not null)
            await DescribePagesAsync(new DescribeRouteTablesRequest
            {
                Filters = [selector.TagValue is null
                    ? new Filter("tag-key", [selector.TagKey])
                    : new Filter($"tag:{selector.TagKey}", [selector.TagValue])],
            }, found, cancellation);
        return [.. found.Values.OrderBy(t => t.Id, StringComparer.Ordinal)];
    }

    private async Task DescribePagesAsync(DescribeRouteTablesRequest request, Dictionary<string, Ec2RouteTable> found,
        CancellationToken cancellation)
    {
        // Explicit ids cannot be paginated (EC2 refuses MaxResults with RouteTableIds); filters are read page by page.
        if (request.RouteTableIds is null) request.MaxResults = 100;
        // An endpoint that answers a token it was already given would be asked for the same page forever.
        var tokens = new HashSet<string>(StringComparer.Ordinal);
        do
        {
            if (request.NextToken is { } token && !tokens.Add(token))
                throw new Ec2Error("PaginationLoop", 502,
                    $"DescribeRouteTables answered the page token '{token}' twice; the pages would not end");
            var response = await Call(() => ec2.DescribeRouteTablesAsync(request, cancellation));
            // SDK v4: an empty list comes back as null.
            foreach (var table in response.RouteTables ?? [])
            {
                var id = table.RouteTableId ?? throw Malformed("DescribeRouteTables answered a table with no id");
                found[id] = new Ec2RouteTable(id,
                    [.. (table.Associations ?? []).Where(a => a.SubnetId is not null).Select(a => a.SubnetId)],
                    [.. (table.Routes ?? []).Where(r => r.DestinationCidrBlock is not null)
                        .Select(r => new Ec2Route(r.DestinationCidrBlock, TargetOf(r)))]);
            }
            request.NextToken = response.NextToken;
        } while (!string.IsNullOrEmpty(request.NextToken));
    }

    private static string TargetOf(Route route) =>
        route.NetworkInterfaceId ?? route.InstanceId ?? route.GatewayId ?? route.NatGatewayId ?? route.TransitGatewayId
        ?? route.VpcPeeringConnectionId ?? route.LocalGatewayId ?? route.CarrierGatewayId ?? route.EgressOnlyInternetGatewayId ?? "unknown";

    public Task CreateRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
        Call(() => ec2.CreateRouteAsync(new CreateRouteRequest
        {
            RouteTableId = table, DestinationCidrBlock = destination.ToString(), NetworkInterfaceId = eni,
        }, cancellation));

    public Task ReplaceRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
        Call(() => ec2.ReplaceRouteAsync(new ReplaceRouteRequest
        {
            RouteTableId = table, DestinationCidrBlock = destination.ToString(), NetworkInterfaceId = eni,
        }, cancellation));

    public Task DeleteRouteAsync(string table, Ipv4Cidr destination, CancellationToken cancellation = default) =>
        Call(() => ec2.DeleteRouteAsync(new DeleteRouteRequest { RouteTableId = table, DestinationCidrBlock = destination.ToString() },
            cancellation));

    public Task DisableSourceDestCheckAsync(string eni, CancellationToken cancellation = default) =>
        Call(() => ec2.ModifyNetworkInterfaceAttributeAsync(new ModifyNetworkInterfaceAttributeRequest
        {
            NetworkInterfaceId = eni, SourceDestCheck = false,
        }, cancellation));

    /// <summary>EC2 errors become <see cref="Ec2Error"/> by their code; no answer at all counts as a 503.</summary>
    private static async Task<T> Call<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (AmazonEC2Exception e)
        {
            throw new Ec2Error(string.IsNullOrEmpty(e.ErrorCode) ? "Unknown" : e.ErrorCode, (int)e.StatusCode, e.Message);
        }
        catch (AmazonServiceException e)
        {
            throw new Ec2Error(string.IsNullOrEmpty(e.ErrorCode) ? "Unavailable" : e.ErrorCode, e.StatusCode == 0 ? 503 : (int)e.StatusCode,
                e.Message);
        }
        catch (Exception e) when (e is XmlException or FormatException or OverflowException)
        {
            // The SDK's unmarshallers let a malformed answer (cut short by a proxy, say) through as the parser's own exception.
            throw Malformed(e.Message);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or AmazonClientException)
        {
            throw new Ec2Error("Unavailable", 503, e.Message);
        }
    }

    /// <summary>An answer the adapter cannot use: EC2's side is at fault, and a later call may be answered properly.</summary>
    private static Ec2Error Malformed(string why) => new("MalformedResponse", 502, $"EC2's answer could not be read: {why}");
}
