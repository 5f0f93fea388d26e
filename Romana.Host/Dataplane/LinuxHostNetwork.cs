using System.Buffers.Binary;
using System.Net;
using System.Text;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Dataplane;
using Romana.Netlink;

namespace Romana.Host.Dataplane;

/// <summary>
/// The host network port on Linux, over rtnetlink: routes in Romana's table marked with <see cref="RomanaRoutes.Protocol"/>,
/// one policy rule for the pod CIDR, and the forwarding sysctls through /proc/sys. With <paramref name="netns"/> (a name
/// under /var/run/netns, or a path) every operation runs inside that network namespace: a node of the namespace lab, or an
/// agent in a container that manages its host's namespace. Netlink calls block, so no operation runs on the caller's
/// (an actor's) thread.
/// </summary>
public sealed class LinuxHostNetwork(HostAgentSettings settings, string? netns = null) : IHostNetwork
{
    /// <summary>Forwarding on; reverse-path filtering loose (2): the kernel applies the larger of "all" and the interface's value, so
    /// "all" = 2 accepts a pod packet that arrives on one interface while its source is routed through another.</summary>
    private static readonly (string Key, string Value)[] Sysctls =
        [("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "2"), ("net.ipv4.conf.default.rp_filter", "2")];

    private uint Table => (uint)settings.RouteTable;

    /// <summary>The namespace every operation runs in (a name under /var/run/netns, or a path); null: the process's own.</summary>
    public string? Netns => netns;

    public Task PrepareAsync(Ipv4Cidr podCidr, CancellationToken cancel = default) => RunAsync(() =>
    {
        foreach (var (key, value) in Sysctls) WriteSysctl(key, value);
        using var socket = NetlinkSocket.Open();
        var kernel = new RouteNetlink(socket);
        var rule = new LookupRule(podCidr.Network.ToIPAddress(), podCidr.PrefixLength, Table, (uint)settings.RulePriority);
        if (!kernel.ListIPv4Rules("listing rules").Contains(rule))
            kernel.AddRule(rule, $"adding rule to {podCidr} lookup {Table} priority {settings.RulePriority}");
        return true;
    }, cancel);

    public Task<IReadOnlyDictionary<Ipv4Cidr, Ipv4>> ReadRoutesAsync(CancellationToken cancel = default) =>
        RunAsync<IReadOnlyDictionary<Ipv4Cidr, Ipv4>>(() =>
        {
            using var socket = NetlinkSocket.Open();
            var routes = new Dictionary<Ipv4Cidr, Ipv4>();
            foreach (var route in new RouteNetlink(socket).ListIPv4Routes(Table, $"listing routes of table {Table}"))
                if (route.Protocol == RomanaRoutes.Protocol && route.Gateway is { } gateway)
                    routes[BlockOf(route)] = ToIpv4(gateway);
            return routes;
        }, cancel);

    /// <summary>
    /// Puts, then removes, one route at a time. A destination that already has a route of someone else's in the table is
    /// left alone (replacing it would take it over) and reported once the other changes are made.
    /// </summary>
    public async Task ApplyAsync(HostRouteChanges changes, CancellationToken cancel = default)
    {
        if (changes.IsEmpty) return;
        var refused = await RunAsync(() => Apply(changes), cancel);
        if (refused.Count > 0) throw new HostNetworkException($"not adding {string.Join("; ", refused)}{Where}");
    }

    /// <summary>The destinations not put because of someone else's route, each with the reason.</summary>
    private List<string> Apply(HostRouteChanges changes)
    {
        using var socket = NetlinkSocket.Open();
        var kernel = new RouteNetlink(socket);
        var foreign = kernel.ListIPv4Routes(Table, $"listing routes of table {Table}")
            .Where(route => route.Protocol != RomanaRoutes.Protocol)
            .ToLookup(BlockOf);
        var refused = new List<string>();
        foreach (var route in changes.Put)
        {
            if (foreign[route.Block].FirstOrDefault() is { } other)
            {
                refused.Add($"route {route} in table {Table}: the table has a route to {route.Block} of protocol {other.Protocol}, "
                    + $"not Romana's ({RomanaRoutes.Protocol})");
                continue;
            }
            var spec = new RouteSpec(route.Block.Network.ToIPAddress(), route.Block.PrefixLength, route.Via.ToIPAddress(),
                OutputInterface: 0, RomanaRoutes.Protocol, Table);
            kernel.ReplaceRoute(spec, $"adding route {route.Block} via {route.Via} in table {Table}");
        }
        // A route already gone is what removing it wanted, so the kernel's "no such route" is not an error.
        foreach (var block in changes.Remove)
            kernel.DeleteRoute(block.Network.ToIPAddress(), block.PrefixLength, Table, RomanaRoutes.Protocol,
                $"deleting route {block} from table {Table}");
        return refused;
    }

    public Task<IReadOnlyList<string?>> FindPodAddressUsesAsync(IReadOnlyList<PodAddressProbe> probes,
        CancellationToken cancel = default) =>
        probes.Count == 0
            ? Task.FromResult<IReadOnlyList<string?>>([])
            : RunAsync<IReadOnlyList<string?>>(() =>
            {
                using var socket = NetlinkSocket.Open();
                var kernel = new RouteNetlink(socket);
                return [.. probes.Select(probe => UseOf(kernel, probe))];
            }, cancel);

    /// <summary>
    /// The route the kernel would use for the address, if it is a /32 (a pod's route, or the host's own address in the local
    /// table; a wider route, such as the default, is no one's use of this address); then the veth, by name.
    /// </summary>
    private static string? UseOf(RouteNetlink kernel, PodAddressProbe probe)
    {
        var address = probe.Address.ToIPAddress();
        if (kernel.MatchRoute(address, $"looking up the route to {probe.Address}") is { DestinationLength: 32 } route)
        {
            var link = route.OutputInterface == 0 ? null
                : kernel.ListLinks("listing links").FirstOrDefault(l => l.Index == route.OutputInterface);
            var device = route.OutputInterface == 0 ? "" : $" dev {link?.Name ?? $"#{route.OutputInterface}"}";
            return $"route {probe.Address}/32{device} (table {route.Table}, proto {route.Protocol})";
        }
        return probe.HostVeth is { } veth && kernel.FindLink(veth, $"looking up veth {veth}") is not null ? $"veth {veth}" : null;
    }

    private static Ipv4Cidr BlockOf(RouteInfo route) =>
        new(ToIpv4(route.Destination ?? IPAddress.Any), route.DestinationLength);

    private static Ipv4 ToIpv4(IPAddress address) => new(BinaryPrimitives.ReadUInt32BigEndian(address.GetAddressBytes()));

    /// <summary>
    /// Sets net.ipv4.X through /proc/sys/net/ipv4/X, which shows the network namespace of the thread that opens it (so
    /// inside <see cref="RunAsync{T}"/> that of <c>netns</c>). A value already right is not written again, which also
    /// lets the agent run where /proc/sys is read-only but already set up.
    /// </summary>
    private static void WriteSysctl(string key, string value)
    {
        var path = $"/proc/sys/{key.Replace('.', '/')}";
        try
        {
            if (File.ReadAllText(path).Trim() == value) return;
            using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Write);
            RandomAccess.Write(file, Encoding.ASCII.GetBytes(value), 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"setting {key} to {value} ({path}): {e.Message}", e);
        }
    }

    /// <summary>
    /// Runs a blocking operation on a pool thread, or with <c>netns</c> on a thread of its own inside that namespace, and
    /// turns the kernel's refusals into <see cref="HostNetworkException"/>s that name the operation and the reason.
    /// </summary>
    private async Task<T> RunAsync<T>(Func<T> operation, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        try
        {
            if (netns is null) return await Task.Run(operation, cancel);
            using var space = NetworkNamespace.Open(netns.StartsWith('/') ? netns : $"/var/run/netns/{netns}");
            return await space.RunAsync(operation);
        }
        catch (Exception e) when (e is NetlinkException or NetworkNamespaceException or IOException or UnauthorizedAccessException)
        {
            throw new HostNetworkException($"{e.Message}{Where}", e);
        }
    }

    private string Where => netns is null ? "" : $" (netns {netns})";
}

public sealed class HostNetworkException(string message, Exception? cause = null) : Exception(message, cause);
