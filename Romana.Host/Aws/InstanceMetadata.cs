using System.Net.Http.Headers;
using Akka.Configuration;
using Romana.Actors;
using Romana.Actors.Configuration;

namespace Romana.Host.Aws;

/// <summary>Who this instance is, as the instance metadata service says.</summary>
public sealed record Ec2InstanceIdentity(string InstanceId, string Eni, string SubnetId, string LocalIpv4);

/// <summary>
/// The EC2 instance metadata service, IMDSv2: a session token first (PUT /latest/api/token), then each GET carries it.
/// Where it is (romana.node.imds.endpoint) can be changed for labs and tests.
/// </summary>
public sealed class InstanceMetadata(string endpoint, TimeSpan timeout)
{
    public const string EndpointSetting = "romana.node.imds.endpoint";

    public static InstanceMetadata From(Config config) =>
        new(ConfigValues.Text(config, EndpointSetting), ConfigValues.Duration(config, "romana.node.imds.timeout"));

    public string Endpoint { get; } = endpoint.TrimEnd('/');

    /// <summary>Instance id, the primary interface's ENI and subnet, and the local IPv4 address; one line naming what failed.</summary>
    public async Task<Ec2InstanceIdentity> ReadAsync(CancellationToken cancellation = default)
    {
        using var http = new HttpClient { Timeout = timeout };
        try
        {
            using var put = new HttpRequestMessage(HttpMethod.Put, $"{Endpoint}/latest/api/token");
            put.Headers.Add("X-aws-ec2-metadata-token-ttl-seconds", "21600");
            using var answer = await http.SendAsync(put, cancellation);
            if (!answer.IsSuccessStatusCode)
                throw Failed($"PUT /latest/api/token answered {(int)answer.StatusCode}");
            var token = (await answer.Content.ReadAsStringAsync(cancellation)).Trim();

            async Task<string> Get(string path)
            {
                using var get = new HttpRequestMessage(HttpMethod.Get, $"{Endpoint}/latest/meta-data/{path}");
                get.Headers.Add("X-aws-ec2-metadata-token", token);
                get.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/plain"));
                using var reply = await http.SendAsync(get, cancellation);
                if (!reply.IsSuccessStatusCode) throw Failed($"GET {path} answered {(int)reply.StatusCode}");
                var text = (await reply.Content.ReadAsStringAsync(cancellation)).Trim();
                return text.Length > 0 ? text : throw Failed($"GET {path} answered nothing");
            }

            var instance = await Get("instance-id");
            var mac = await Get("mac");
            var eni = await Get($"network/interfaces/macs/{mac}/interface-id");
            var subnet = await Get($"network/interfaces/macs/{mac}/subnet-id");
            var ip = await Get("local-ipv4");
            return new Ec2InstanceIdentity(instance, eni, subnet, ip);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            throw Failed(e is TaskCanceledException ? $"no answer within {timeout.TotalSeconds:0.#} s" : e.Message);
        }
    }

    private Dataplane.DaemonStartException Failed(string why) =>
        new($"{EndpointSetting}: {Quoting.Quote(Endpoint)}: the instance metadata service (IMDSv2) did not say who this instance is: " +
            $"{why}; set romana.node.subnet, ip, instance-id and eni instead");
}
