using System.Net;
using System.Net.Sockets;

namespace Romana.Host.Ec2;

/// <summary>The HTTP listener the lab's servers (the EC2 Query API, IMDS) share: binding, and the loop that accepts requests.</summary>
internal static class LabHttpListener
{
    /// <summary>
    /// A started listener on <paramref name="listen"/>, and the endpoint it has. HttpListener cannot bind port 0: a free port
    /// is probed for, and another tried if someone takes it first. Throws <see cref="HttpListenerException"/> when the
    /// address cannot be bound.
    /// </summary>
    public static (HttpListener Listener, IPEndPoint EndPoint) Start(IPEndPoint listen)
    {
        for (var attempt = 1; ; attempt++)
        {
            var endPoint = listen.Port == 0 ? new IPEndPoint(listen.Address, FreePort(listen.Address)) : listen;
            var listener = new HttpListener();
            foreach (var prefix in Prefixes(endPoint)) listener.Prefixes.Add(prefix);
            try
            {
                listener.Start();
                return (listener, endPoint);
            }
            catch (HttpListenerException) when (listen.Port == 0 && attempt < 10)
            {
                listener.Close();
            }
            catch
            {
                listener.Close();
                throw;
            }
        }
    }

    /// <summary>Hands each request to <paramref name="serve"/> on the thread pool until the listener is closed.</summary>
    public static async Task AcceptAsync(HttpListener listener, Func<HttpListenerContext, Task> serve)
    {
        while (true)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // closed
            }
            _ = Task.Run(() => serve(context));
        }
    }

    // The listener answers only requests whose Host header matches a prefix: "+" takes any host (and binds every address);
    // on loopback, http://localhost:PORT/ is as good a URL as the address.
    private static IEnumerable<string> Prefixes(IPEndPoint endPoint)
    {
        if (endPoint.Address.Equals(IPAddress.Any) || endPoint.Address.Equals(IPAddress.IPv6Any)) return [$"http://+:{endPoint.Port}/"];
        return IPAddress.IsLoopback(endPoint.Address)
            ? [$"http://{endPoint}/", $"http://localhost:{endPoint.Port}/"]
            : [$"http://{endPoint}/"];
    }

    private static int FreePort(IPAddress address)
    {
        using var probe = new TcpListener(address, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
