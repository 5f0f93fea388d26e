using System.Diagnostics;
using System.Text.Json.Nodes;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;

namespace Romana.Host.Dataplane;

/// <summary>
/// The host network port on Linux, through iproute2: routes in Romana's table marked <c>proto 82</c>, one <c>ip rule</c>
/// for the pod CIDR, and the forwarding sysctls. With <paramref name="netns"/> every command runs inside that named
/// network namespace (a node of the namespace lab, or an agent in a container that manages its host's namespace).
/// </summary>
public sealed class LinuxHostNetwork(HostAgentSettings settings, string? netns = null) : IHostNetwork
{
    /// <summary>rtm_protocol of every route Romana makes (the CNI plugin's pod routes too); unassigned in iproute2's rt_protos.</summary>
    public const int RouteProtocol = 82;

    /// <summary>Forwarding on; reverse-path filtering loose (2): the kernel applies the larger of "all" and the interface's value, so
    /// "all" = 2 accepts a pod packet that arrives on one interface while its source is routed through another.</summary>
    private static readonly (string Key, string Value)[] Sysctls =
        [("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "2"), ("net.ipv4.conf.default.rp_filter", "2")];

    public async Task PrepareAsync(Ipv4Cidr podCidr, CancellationToken cancel = default)
    {
        foreach (var (key, value) in Sysctls) await RunAsync("sysctl", ["-qw", $"{key}={value}"], cancel: cancel);
        var rules = JsonNode.Parse(await RunAsync("ip", ["-j", "rule", "show"], cancel: cancel))?.AsArray() ?? [];
        var present = rules.Any(rule => rule?["priority"]?.GetValue<int>() == settings.RulePriority
            && rule["table"]?.ToString() == settings.RouteTable.ToString()
            && Cidr(rule["dst"]?.ToString(), rule["dstlen"]?.GetValue<int>()) == podCidr);
        if (!present)
            await RunAsync("ip", ["rule", "add", "to", podCidr.ToString(), "lookup", settings.RouteTable.ToString(), "priority", settings.RulePriority.ToString()], cancel: cancel);
    }

    public async Task<IReadOnlyDictionary<Ipv4Cidr, Ipv4>> ReadRoutesAsync(CancellationToken cancel = default)
    {
        var routes = new Dictionary<Ipv4Cidr, Ipv4>();
        string output;
        try
        {
            output = await RunAsync("ip", ["-j", "route", "show", "table", settings.RouteTable.ToString(), "proto", RouteProtocol.ToString()], cancel: cancel);
        }
        catch (HostNetworkException e) when (e.Message.Contains("table does not exist"))
        {
            return routes; // the kernel makes a table with its first route
        }
        foreach (var route in JsonNode.Parse(output)?.AsArray() ?? [])
        {
            var dst = route?["dst"]?.ToString();
            if (dst is null || !Ipv4.TryParse(route!["gateway"]?.ToString(), out var via)) continue;
            if (Cidr(dst, null) is { } block) routes[block] = via;
        }
        return routes;
    }

    public async Task ApplyAsync(HostRouteChanges changes, CancellationToken cancel = default)
    {
        if (changes.IsEmpty) return;
        var table = $"table {settings.RouteTable} proto {RouteProtocol}";
        var batch = changes.Put.Select(r => $"route replace {r.Block} via {r.Via} {table}")
            .Concat(changes.Remove.Select(block => $"route del {block} {table}"));
        await RunAsync("ip", ["-batch", "-"], string.Join('\n', batch) + "\n", cancel);
    }

    private static Ipv4Cidr? Cidr(string? text, int? length)
    {
        if (text is null) return null;
        if (length is { } l) text = $"{text}/{l}";
        else if (!text.Contains('/')) text += "/32";
        return Ipv4Cidr.TryParse(text, out var cidr) ? cidr : null;
    }

    private async Task<string> RunAsync(string program, string[] arguments, string? input = null, CancellationToken cancel = default)
    {
        var start = new ProcessStartInfo(netns is null ? program : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input is not null,
            UseShellExecute = false,
        };
        if (netns is not null) foreach (var arg in (string[])["netns", "exec", netns, program]) start.ArgumentList.Add(arg);
        foreach (var arg in arguments) start.ArgumentList.Add(arg);
        using var process = Process.Start(start) ?? throw new HostNetworkException($"{program}: could not be started");
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
            process.StandardInput.Close();
        }
        var output = process.StandardOutput.ReadToEndAsync(cancel);
        var error = process.StandardError.ReadToEndAsync(cancel);
        await process.WaitForExitAsync(cancel);
        if (process.ExitCode != 0)
            throw new HostNetworkException($"{program} {string.Join(' ', arguments)}{(netns is null ? "" : $" (netns {netns})")}: {(await error).Trim()}");
        return await output;
    }
}

public sealed class HostNetworkException(string message) : Exception(message);
