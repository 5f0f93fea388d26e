using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Health;
using Romana.Actors.Routing;

namespace Romana.Host.Observability;

/// <summary>The EC2 port, each call counted by action and result as it comes back (a throttling answer also as a throttle).</summary>
public sealed class MeteredEc2RouteTables(IEc2RouteTables inner, RomanaMetrics metrics) : IEc2RouteTables
{
    public IEc2RouteTables Inner { get; } = inner;

    public Task<IReadOnlyList<Ec2RouteTable>> DescribeAsync(RouteTableSelector selector, CancellationToken cancellation = default) =>
        Count("DescribeRouteTables", Inner.DescribeAsync(selector, cancellation));

    public Task CreateRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
        Count("CreateRoute", Inner.CreateRouteAsync(table, destination, eni, cancellation));

    public Task ReplaceRouteAsync(string table, Ipv4Cidr destination, string eni, CancellationToken cancellation = default) =>
        Count("ReplaceRoute", Inner.ReplaceRouteAsync(table, destination, eni, cancellation));

    public Task DeleteRouteAsync(string table, Ipv4Cidr destination, CancellationToken cancellation = default) =>
        Count("DeleteRoute", Inner.DeleteRouteAsync(table, destination, cancellation));

    public Task DisableSourceDestCheckAsync(string eni, CancellationToken cancellation = default) =>
        Count("ModifyNetworkInterfaceAttribute", Inner.DisableSourceDestCheckAsync(eni, cancellation));

    private async Task<T> Count<T>(string action, Task<T> call)
    {
        try
        {
            var answer = await call;
            metrics.Ec2Calls.WithLabels(action, "ok").Inc();
            return answer;
        }
        catch (Exception e)
        {
            Failed(action, e);
            throw;
        }
    }

    private async Task Count(string action, Task call)
    {
        try
        {
            await call;
            metrics.Ec2Calls.WithLabels(action, "ok").Inc();
        }
        catch (Exception e)
        {
            Failed(action, e);
            throw;
        }
    }

    private void Failed(string action, Exception e)
    {
        var code = e switch
        {
            Ec2Error error => error.Code,
            OperationCanceledException => "canceled",
            _ => "error",
        };
        metrics.Ec2Calls.WithLabels(action, code).Inc();
        if (e is Ec2Error { IsThrottling: true }) metrics.Ec2Throttles.WithLabels(action).Inc();
    }
}

/// <summary>The health probe, each result counted; a run of misses remembers its first, for the failover's repair time.</summary>
public sealed class MeteredHealthProbe(IHealthProbe inner, RomanaMetrics metrics, IClock clock) : IHealthProbe
{
    public async Task<bool> ProbeAsync(NodeName node, Ipv4 ip, TimeSpan timeout, CancellationToken cancellation = default)
    {
        var at = clock.Now;
        bool answered;
        try
        {
            answered = await inner.ProbeAsync(node, ip, timeout, cancellation);
        }
        catch
        {
            metrics.ProbeMissed(node, at);
            throw;
        }
        if (answered) metrics.ProbeAnswered(node);
        else metrics.ProbeMissed(node, at);
        return answered;
    }
}
