using System.Net.Sockets;
using Romana.Actors.Addressing;
using Romana.Actors.Health;

namespace Romana.Host.Health;

/// <summary>A node is alive when its Romana daemon accepts a TCP connection on the health port within the timeout.</summary>
public sealed class TcpHealthProbe(int port) : IHealthProbe
{
    public async Task<bool> ProbeAsync(NodeName node, Ipv4 ip, TimeSpan timeout, CancellationToken cancellation = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        deadline.CancelAfter(timeout);
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(ip.ToIPAddress(), port, deadline.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
