using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Amazon.EC2.Model;
using Amazon.Runtime;
using Romana.Actors.Tests.Conformance;
using Romana.Actors.Tests.Support;
using Romana.Host.Aws;

namespace Romana.Actors.Tests.Cli;

/// <summary>`romana ec2 serve` as a user runs it: a process that AWSSDK.EC2 talks to, stopped by SIGTERM.</summary>
public class Ec2ServeCommandTests
{
    private static readonly string Romana = Path.Combine(AppContext.BaseDirectory, "romana.dll");

    private static Task<(int Exit, string Output, string Error)> RomanaAsync(params string[] arguments) =>
        Processes.RunAsync("dotnet", [Romana, .. arguments], Paths.RepositoryRoot);

    [Fact]
    public async Task Help_explains_the_command_its_options_and_the_url_to_use()
    {
        var (exit, output, _) = await RomanaAsync("ec2", "serve", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("Usage:", output);
        Assert.Contains("--listen", output);
        Assert.Contains("--config", output);
        Assert.Contains("ServiceURL", output);
        Assert.Contains("romana.ec2-lab", output);
        Assert.Equal(0, (await RomanaAsync("ec2", "--help")).Exit);
    }

    [Fact]
    public async Task A_malformed_listen_exits_2_with_one_line_naming_the_option_and_the_value()
    {
        var (exit, output, error) = await RomanaAsync("ec2", "serve", "--listen", "127.0.0.1:99999");
        Assert.Equal(2, exit);
        Assert.Equal("romana: --listen: '127.0.0.1:99999' is not ADDR:PORT (for example 127.0.0.1:9607, or [::1]:9607)", error.Trim());
        Assert.Empty(output);
    }

    [Fact]
    public async Task A_bad_config_field_exits_2_naming_the_file_and_the_field()
    {
        using var folder = new TempFolder();
        var config = folder.Write("lab.conf", "romana.ec2-lab.tables = [{ id = rtb-a, route-limit = -1 }]");
        var (exit, _, error) = await RomanaAsync("ec2", "serve", "--config", config, "--listen", "127.0.0.1:0");
        Assert.Equal(2, exit);
        Assert.Equal($"romana: {config}: romana.ec2-lab.tables[0].route-limit: -1 must be at least 0", error.Trim());
    }

    [Fact]
    public async Task It_serves_the_configured_tables_to_awssdk_ec2_and_stops_on_sigterm()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        using var server = Process.Start(Processes.Describe("dotnet", [Romana, "ec2", "serve", "--listen", $"127.0.0.1:{port}"]))!;
        var errors = server.StandardError.ReadToEndAsync();
        try
        {
            var url = await ServiceUrlAsync(server, TimeSpan.FromSeconds(60));
            Assert.Equal($"http://127.0.0.1:{port}/", url);
            using var ec2 = AwsEc2RouteTables.CreateClient("us-east-1", url, TimeSpan.FromSeconds(10), new BasicAWSCredentials("a", "b"));

            var before = await ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest
            {
                Filters = [new Filter("tag:romana.io/cluster", ["lab"])],
            });
            var table = Assert.Single(before.RouteTables);
            Assert.Equal("rtb-lab", table.RouteTableId);
            Assert.Equal("local", table.Routes.Single(r => r.DestinationCidrBlock == "10.0.0.0/16").GatewayId);

            await ec2.CreateRouteAsync(new CreateRouteRequest
            {
                RouteTableId = "rtb-lab", DestinationCidrBlock = "100.64.0.0/24", NetworkInterfaceId = "eni-1",
            });
            var after = await ec2.DescribeRouteTablesAsync(new DescribeRouteTablesRequest { RouteTableIds = ["rtb-lab"] });
            Assert.Equal("eni-1", after.RouteTables[0].Routes.Single(r => r.DestinationCidrBlock == "100.64.0.0/24").NetworkInterfaceId);
            var again = await Assert.ThrowsAsync<Amazon.EC2.AmazonEC2Exception>(() => ec2.CreateRouteAsync(new CreateRouteRequest
            {
                RouteTableId = "rtb-lab", DestinationCidrBlock = "100.64.0.0/24", NetworkInterfaceId = "eni-2",
            }));
            Assert.Equal("RouteAlreadyExists", again.ErrorCode);

            Processes.Run("kill", ["-TERM", server.Id.ToString()]);
            Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)), "ec2 serve stops on SIGTERM");
            Assert.Equal(0, server.ExitCode);
            Assert.Equal("", (await errors).Trim());
        }
        finally
        {
            if (!server.HasExited) server.Kill(true);
        }
    }

    /// <summary>Reads the server's output until it prints the URL to use.</summary>
    private static async Task<string> ServiceUrlAsync(Process server, TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        while (await server.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            if (line.StartsWith("ServiceURL: ", StringComparison.Ordinal)) return line["ServiceURL: ".Length..];
        throw new InvalidOperationException($"ec2 serve ended without printing its URL (exit {server.ExitCode})");
    }
}
