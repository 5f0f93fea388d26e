using Akka.Configuration;
using Amazon.EC2;
using Romana.Actors;
using Romana.Actors.Configuration;

namespace Romana.Host.Aws;

/// <summary>
/// The daemon's EC2 client (romana.aws): region and endpoint, each empty for the SDK's defaults; credentials from its chain.
/// </summary>
public sealed record AwsSettings(string Region, string Endpoint, TimeSpan Timeout)
{
    public const string Section = "romana.aws";

    public static AwsSettings From(Config config)
    {
        if (!ReferenceEquals(config, RomanaConfig.Reference)) config = config.WithFallback(RomanaConfig.Reference);
        var settings = new AwsSettings(ConfigValues.Text(config, $"{Section}.region"), ConfigValues.Text(config, $"{Section}.endpoint"),
            ConfigValues.Duration(config, $"{Section}.timeout"));
        if (settings.Endpoint.Length > 0 && (!Uri.TryCreate(settings.Endpoint, UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https")))
            throw ConfigValues.Error(config, $"{Section}.endpoint", $"{Quoting.Quote(settings.Endpoint)} is not an http(s) URL");
        if (settings.Timeout <= TimeSpan.Zero)
            throw ConfigValues.Error(config, $"{Section}.timeout", $"{ConfigValues.Text(config, $"{Section}.timeout")} must be positive");
        return settings;
    }

    /// <summary>
    /// AWSSDK.EC2 with the SDK's default credential chain; the region from the setting or the SDK's own resolution; the
    /// endpoint overridden when set (the region then only signs requests, us-east-1 when none is given).
    /// </summary>
    public AmazonEC2Client CreateClient()
    {
        if (Endpoint.Length > 0) return AwsEc2RouteTables.CreateClient(Region.Length > 0 ? Region : "us-east-1", Endpoint, Timeout);
        var config = new AmazonEC2Config { MaxErrorRetry = 0, Timeout = Timeout };
        if (Region.Length > 0) config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(Region);
        return new AmazonEC2Client(config);
    }
}
