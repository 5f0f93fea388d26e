using System.Net;
using System.Net.Sockets;
using System.Xml.Linq;
using Romana.Netlink;

namespace Romana.Host.Lab;

public sealed record LabRoute(string Cidr, string Target)
{
    /// <summary>A route of Romana's: to a node's ENI (the others are the VPC's local route and the internet gateway's).</summary>
    public bool ToEni => Target.StartsWith("eni-", StringComparison.Ordinal);

    /// <summary>The route of Romana's that a table sends <paramref name="ip"/> by: the most specific that holds it.</summary>
    public static LabRoute? For(IEnumerable<LabRoute> routes, string ip)
    {
        var address = Romana.Actors.Addressing.Ipv4.Parse(ip);
        return routes.Where(r => r.ToEni && Romana.Actors.Addressing.Ipv4Cidr.Parse(r.Cidr).Contains(address))
            .MaxBy(r => Romana.Actors.Addressing.Ipv4Cidr.Parse(r.Cidr).PrefixLength);
    }
}

public sealed record LabTableView(string Id, IReadOnlyList<string> Subnets, IReadOnlyList<LabRoute> Routes);

/// <summary>
/// The lab's EC2 endpoint as seen from outside the router namespace: the EC2 Query API over HTTP, on sockets made inside
/// the router's namespace (the host's own namespace has no route to the lab, and gains none). Unsigned requests: the
/// lab's EC2 checks no credentials.
/// </summary>
public sealed class LabEc2Client : IDisposable
{
    private readonly NetworkNamespace _router;
    private readonly HttpClient _http;
    private readonly string _endpoint;

    public LabEc2Client(string routerNetns, string endpoint)
    {
        _router = NetworkNamespace.Open($"/var/run/netns/{routerNetns}");
        _endpoint = endpoint;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellation) =>
            {
                var socket = await _router.RunAsync(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, cancellation);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        _http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
    }

    public async Task<XElement> CallAsync(string action, params (string Name, string Value)[] parameters)
    {
        var form = new FormUrlEncodedContent([new("Action", action), new("Version", "2016-11-15"),
            .. parameters.Select(p => new KeyValuePair<string, string>(p.Name, p.Value))]);
        // EC2's token bucket answers 503 when a large lab calls faster than 5 per second: wait and ask again, as a client does.
        for (var attempt = 1; ; attempt++)
        {
            using var answer = await _http.PostAsync(_endpoint, form);
            var body = XElement.Parse(await answer.Content.ReadAsStringAsync());
            if (answer.StatusCode == HttpStatusCode.ServiceUnavailable && attempt < 60)
            {
                await Task.Delay(500);
                continue;
            }
            return Checked(action, answer.StatusCode, body);
        }
    }

    private static XElement Checked(string action, HttpStatusCode status, XElement body)
    {
        if (status != HttpStatusCode.OK)
            throw new LabException($"EC2 {action}: {(int)status} "
                + $"{body.Descendants().FirstOrDefault(e => e.Name.LocalName == "Code")?.Value}: "
                + $"{body.Descendants().FirstOrDefault(e => e.Name.LocalName == "Message")?.Value}");
        return body;
    }

    public async Task<IReadOnlyList<LabTableView>> DescribeRouteTablesAsync()
    {
        var body = await CallAsync("DescribeRouteTables");
        var set = Child(body, "routeTableSet");
        return [.. Children(set, "item").Select(table => new LabTableView(
            Child(table, "routeTableId").Value,
            [.. Children(Child(table, "associationSet"), "item").Select(a => Child(a, "subnetId").Value)],
            [.. Children(Child(table, "routeSet"), "item").Select(r => new LabRoute(Child(r, "destinationCidrBlock").Value,
                r.Elements().First(e => e.Name.LocalName.EndsWith("Id", StringComparison.Ordinal)
                    && e.Name.LocalName != "instanceOwnerId").Value))]))];
    }

    public Task SetSourceDestCheckAsync(string eni, bool on) =>
        CallAsync("ModifyNetworkInterfaceAttribute", ("NetworkInterfaceId", eni), ("SourceDestCheck.Value", on ? "true" : "false"));

    private static XElement Child(XElement parent, string name) =>
        parent.Elements().FirstOrDefault(e => e.Name.LocalName == name) ?? throw new LabException($"EC2's answer has no {name}");

    private static IEnumerable<XElement> Children(XElement parent, string name) => parent.Elements().Where(e => e.Name.LocalName == name);

    public void Dispose()
    {
        _http.Dispose();
        _router.Dispose();
    }
}
