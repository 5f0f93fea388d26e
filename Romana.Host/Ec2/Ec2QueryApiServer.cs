using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Web;
using System.Xml;
using System.Xml.Linq;
using Romana.Actors.Routing;

namespace Romana.Host.Ec2;

/// <summary>
/// An <see cref="Ec2Lab"/> behind HTTP, speaking the EC2 Query API (version 2016-11-15) that AWSSDK.EC2 uses: form-encoded
/// requests in, EC2's XML answers and error bodies out, with EC2's status codes. Accepts any credentials and checks no
/// signature, so it listens on loopback unless told otherwise. All behaviour is the model's; this is transport only.
/// </summary>
public sealed class Ec2QueryApiServer : IAsyncDisposable, IDisposable
{
    public const string ApiVersion = "2016-11-15";
    public const string XmlNamespace = "http://ec2.amazonaws.com/doc/2016-11-15/";

    private static readonly XNamespace Ns = XmlNamespace;
    private readonly HttpListener _listener;
    private readonly Task _acceptLoop;
    private int _disposed;

    private Ec2QueryApiServer(Ec2Lab lab, HttpListener listener, IPEndPoint endPoint)
    {
        Lab = lab;
        _listener = listener;
        EndPoint = endPoint;
        var host = endPoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
            : endPoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
            : endPoint.Address;
        Url = $"http://{new IPEndPoint(host, endPoint.Port)}/";
        _acceptLoop = LabHttpListener.AcceptAsync(listener, ServeAsync);
    }

    /// <summary>
    /// Serves <paramref name="lab"/> on <paramref name="listen"/> (default 127.0.0.1 on a free port; port 0 picks a free one).
    /// Throws <see cref="HttpListenerException"/> when the address cannot be bound.
    /// </summary>
    public static Ec2QueryApiServer Start(Ec2Lab lab, IPEndPoint? listen = null)
    {
        listen ??= new IPEndPoint(IPAddress.Loopback, 0);
        var (listener, endPoint) = LabHttpListener.Start(listen);
        return new Ec2QueryApiServer(lab, listener, endPoint);
    }

    public Ec2Lab Lab { get; }

    /// <summary>Where it listens.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The URL for AmazonEC2Config.ServiceURL, e.g. http://127.0.0.1:41234/ (loopback when listening on every address).</summary>
    public string Url { get; }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _listener.Close();
        await _acceptLoop.ConfigureAwait(false);
    }

    private async Task ServeAsync(HttpListenerContext context)
    {
        try
        {
            var call = await ReadCallAsync(context.Request).ConfigureAwait(false);
            var requestId = Guid.NewGuid().ToString();
            var (status, body) = await AnswerAsync(call, requestId).ConfigureAwait(false);
            await WriteAsync(context.Response, status, body).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException)
        {
            // The client went away or the server is closing: nobody is left to answer.
        }
    }

    private async Task<(int Status, XElement Body)> AnswerAsync(Ec2Call call, string requestId)
    {
        try
        {
            var answer = await Lab.CallAsync(call).ConfigureAwait(false);
            return (200, AnswerXml(call.Action, answer, requestId));
        }
        catch (Ec2Error error)
        {
            return (error.StatusCode, ErrorBody(error.Code, error.Detail, requestId));
        }
        catch (Exception bug)
        {
            // A bug must still be answered, or the SDK would wait for its timeout.
            return (500, ErrorBody("InternalError", $"{bug.GetType().Name}: {bug.Message}", requestId));
        }
    }

    private static async Task<Ec2Call> ReadCallAsync(HttpListenerRequest request)
    {
        using var reader = new StreamReader(request.InputStream, Encoding.UTF8);
        var body = await reader.ReadToEndAsync().ConfigureAwait(false);
        return CallOf(request.Url?.Query.TrimStart('?') ?? "", body);
    }

    /// <summary>
    /// A request's call: the parameters of the URL's query and of the form-encoded body (the body's value wins where a
    /// name is in both), the action from its Action parameter. The transport's whole parsing, apart for the fuzzer.
    /// </summary>
    internal static Ec2Call CallOf(string query, string body)
    {
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var source in new[] { query, body })
        {
            var parsed = HttpUtility.ParseQueryString(source);
            foreach (var key in parsed.AllKeys.OfType<string>()) parameters[key] = parsed[key] ?? "";
        }
        return new Ec2Call(parameters.GetValueOrDefault("Action", ""), parameters.AsReadOnly());
    }

    private static async Task WriteAsync(HttpListenerResponse response, int status, XElement body)
    {
        var bytes = Bytes(body);
        response.StatusCode = status;
        response.ContentType = "text/xml;charset=UTF-8";
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
        response.Close();
    }

    // ---- EC2's XML -------------------------------------------------------------------------------------------------

    /// <summary>The body of an answer as sent: the XML declaration and the element, unindented, in UTF-8.</summary>
    internal static byte[] Bytes(XElement body) =>
        Encoding.UTF8.GetBytes("<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + body.ToString(SaveOptions.DisableFormatting));

    /// <summary>A successful call's answer, ACTIONResponse, as EC2 writes it.</summary>
    internal static XElement AnswerXml(string action, Ec2Answer answer, string requestId) =>
        new(Ns + action + "Response", El("requestId", requestId), Content(answer));

    private static IEnumerable<XElement> Content(Ec2Answer answer) => answer switch
    {
        Ec2Answer.RouteTables page => page.NextToken is null
            ? [El("routeTableSet", page.Tables.Select(RouteTableXml))]
            : [El("routeTableSet", page.Tables.Select(RouteTableXml)), El("nextToken", page.NextToken)],
        _ => [El("return", "true")],
    };

    // Errors are not namespaced, and say RequestID where successes say requestId: as EC2 writes them.
    internal static XElement ErrorBody(string code, string message, string requestId) =>
        new("Response",
            new XElement("Errors", new XElement("Error", new XElement("Code", XmlText(code)), new XElement("Message", XmlText(message)))),
            new XElement("RequestID", requestId));

    private static XElement RouteTableXml(Ec2LabRouteTable table) =>
        El("item",
            El("routeTableId", table.Id),
            El("vpcId", table.VpcId),
            El("ownerId", Ec2Lab.AccountId),
            El("routeSet", table.Routes.Select(RouteXml)),
            El("associationSet", table.Associations.Select(a => El("item",
                El("routeTableAssociationId", a.Id),
                El("routeTableId", table.Id),
                El("subnetId", a.SubnetId),
                El("main", "false"),
                El("associationState", El("state", "associated"))))),
            El("propagatingVgwSet"),
            El("tagSet", table.Tags.Select(t => El("item", El("key", t.Key), El("value", t.Value)))));

    private static XElement RouteXml(Ec2LabRoute route) =>
        El("item",
            El("destinationCidrBlock", route.Destination),
            TargetXml(route.Target),
            El("state", "active"),
            El("origin", route.Origin));

    // The element is the target's Query parameter in camel case: networkInterfaceId, gatewayId, ...
    private static IEnumerable<XElement> TargetXml(string target)
    {
        var parameter = Ec2Targets.ParameterOf(target);
        var element = El(char.ToLowerInvariant(parameter[0]) + parameter[1..], target);
        return parameter == "InstanceId" ? [element, El("instanceOwnerId", Ec2Lab.AccountId)] : [element];
    }

    private static XElement El(string name, params object?[] content) =>
        new(Ns + name, content.Select(item => item is string text ? XmlText(text) : item));

    /// <summary>
    /// The text with what XML 1.0 cannot carry (most control characters, a lone surrogate) replaced by U+FFFD: an error
    /// message quotes the request's values, and writing such a character would throw instead of answering.
    /// </summary>
    internal static string XmlText(string text)
    {
        StringBuilder? clean = null;
        for (var i = 0; i < text.Length; i++)
        {
            if (i + 1 < text.Length && XmlConvert.IsXmlSurrogatePair(text[i + 1], text[i]))
            {
                clean?.Append(text, i, 2);
                i++;
                continue;
            }
            var carried = XmlConvert.IsXmlChar(text[i]);
            if (!carried) clean ??= new StringBuilder(text, 0, i, text.Length);
            clean?.Append(carried ? text[i] : '\uFFFD');
        }
        return clean?.ToString() ?? text;
    }
}
