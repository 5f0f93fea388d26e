using Romana.Actors.Addressing;
using Romana.Actors.Routing;

namespace Romana.Host.Ec2;

/// <summary>
/// The EC2 port over an <see cref="Ec2Lab"/> in the same process: the calls AwsEc2RouteTables would send, with the same
/// parameters, straight to the model. For the simulation, benchmarks and actor tests; errors come back as the model's
/// <see cref="Ec2Error"/>.
/// </summary>
public sealed class Ec2LabRouteTables(Ec2Lab lab) : IEc2RouteTables
{
    public Ec2Lab Lab { get; } = lab;

    public async Task<IReadOnlyList<Ec2RouteTable>> DescribeAsync(RouteTableSelector selector, CancellationToken cancellation = default)
    {
        // Ids and the tag select tables between them (either is enough), while EC2 combines ids and filters with AND: two calls.
        var found = new Dictionary<string, Ec2RouteTable>(StringComparer.Ordinal);
        if (!selector.Ids.IsEmpty)
            await DescribeAsync(found, cancellation, [.. selector.Ids.Select((id, i) => ($"RouteTableId.{i + 1}", id))]);
        if (selector.TagKey is not null)
            await DescribeAsync(found, cancellation, selector.TagValue is null
                ? [("Filter.1.Name", "tag-key"), ("Filter.1.Value.1", selector.TagKey)]
                : [("Filter.1.Name", $"tag:{selector.TagKey}"), ("Filter.1.Value.1", selector.TagValue)]);
        return [.. found.Values.OrderBy(t => t.Id, StringComparer.Ordinal)];
    }

    // Without MaxResults EC2 answers every table on one page.
    private async Task DescribeAsync(Dictionary<string, Ec2RouteTable> found, CancellationToken cancellation, (string, string)[] parameters)
    {
        var answer = (Ec2Answer.RouteTables)await Lab.CallAsync(Ec2Call.Of("DescribeRouteTables", parameters), cancellation);
        foreach (var table in answer.Tables)
            found[table.Id] = new Ec2RouteTable(table.Id, [.. table.Associations.Select(a => a.SubnetId)],
                [.. table.Routes.Select(r => new Ec2Route(r.Destination, r.Target))]);
    }

    public Task CreateRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
        Lab.CallAsync(Ec2Call.Of("CreateRoute",
            ("RouteTableId", table), ("DestinationCidrBlock", destination.ToString()), ("NetworkInterfaceId", eni)), cancellation);

    public Task ReplaceRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
        Lab.CallAsync(Ec2Call.Of("ReplaceRoute",
            ("RouteTableId", table), ("DestinationCidrBlock", destination.ToString()), ("NetworkInterfaceId", eni)), cancellation);

    public Task DeleteRouteAsync(string table, Ipv4Cidr destination, CancellationToken cancellation = default) =>
        Lab.CallAsync(Ec2Call.Of("DeleteRoute", ("RouteTableId", table), ("DestinationCidrBlock", destination.ToString())), cancellation);

    public Task DisableSourceDestCheckAsync(string eni, CancellationToken cancellation = default) =>
        Lab.CallAsync(Ec2Call.Of("ModifyNetworkInterfaceAttribute",
            ("NetworkInterfaceId", eni), ("SourceDestCheck.Value", "false")), cancellation);
}
