using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Akka.Configuration;
using Romana.Actors.Configuration;
using Romana.Host.Ec2;
using Romana.Netlink;

namespace Romana.Host.Lab;

/// <summary>An ENI of the lab: the node's address (a route to the ENI is a route via it) and its port on the subnet's bridge.</summary>
public sealed record LabRouterEni(string Id, string Ip, string Port);

/// <summary>
/// romana.lab.router, which <c>romana ec2 serve --router</c> reads: the kernel table of each route table, the ENIs, and
/// where the internet gateway's routes lead.
/// </summary>
public sealed record LabRouterSettings(IReadOnlyDictionary<string, int> KernelTables, IReadOnlyList<LabRouterEni> Enis,
    string InternetGateway, string InternetGatewayVia)
{
    public static LabRouterSettings From(Config config)
    {
        var router = config.GetConfig("romana.lab.router")
            ?? throw new ConfigurationError("romana.lab.router: missing (ec2 serve --router)");
        var tables = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var item in router.GetValue("tables").GetArray())
        {
            var table = new Config(new Akka.Configuration.Hocon.HoconRoot(item));
            tables[table.GetString("id")] = table.GetInt("kernel-table");
        }
        var enis = router.GetValue("enis").GetArray()
            .Select(item => new Config(new Akka.Configuration.Hocon.HoconRoot(item)))
            .Select(e => new LabRouterEni(e.GetString("id"), e.GetString("ip"), e.GetString("port")))
            .ToList();
        return new LabRouterSettings(tables, enis, router.GetString("igw.id"), router.GetString("igw.via"));
    }

    public static string Hocon(LabLayout layout)
    {
        var text = new StringBuilder();
        text.AppendLine("romana.ec2-lab {");
        text.AppendLine($"  listen = \"{LabLayout.ServicesAddress}:{LabLayout.Ec2Port}\"");
        text.AppendLine($"  vpc {{ id = \"vpc-lab\", cidr = \"{LabLayout.VpcCidr}\" }}");
        text.AppendLine($"  route-limit = {layout.Options.RouteLimit}");
        text.AppendLine("  tables = [");
        foreach (var table in layout.RouteTables)
            text.AppendLine($"    {{ id = \"{table.Id}\", subnets = [{string.Join(", ", table.Subnets.Select(s => $"\"{s}\""))}], "
                + $"tags = [\"{LabLayout.ClusterTag}\", \"romana.io/zone={table.Zone}\"], "
                + $"routes = [{{ destination = \"0.0.0.0/0\", target = \"{LabLayout.InternetGateway}\" }}] }}");
        text.AppendLine("  ]");
        text.AppendLine("}");
        text.AppendLine("romana.lab.router {");
        var kernelTables = layout.RouteTables.Select(t => $"{{ id = \"{t.Id}\", kernel-table = {t.KernelTable} }}");
        text.AppendLine($"  tables = [{string.Join(", ", kernelTables)}]");
        text.AppendLine("  enis = [");
        foreach (var node in layout.Nodes) text.AppendLine($"    {{ id = \"{node.Eni}\", ip = \"{node.Ip}\", port = \"{node.Port}\" }}");
        text.AppendLine("  ]");
        text.AppendLine($"  igw {{ id = \"{LabLayout.InternetGateway}\", via = \"{LabLayout.OutsideAddress}\" }}");
        text.AppendLine("}");
        return text.ToString();
    }
}

/// <summary>
/// The lab's router, inside <c>romana ec2 serve --router</c> (run in the router namespace): mirrors every route of the EC2
/// model into the kernel table of its route table (a route to an ENI becomes a route via that node's address; to the
/// internet gateway, via the outside namespace; the VPC's local route is the router's own subnets), and enforces the
/// source/destination check: a packet entering from a node's bridge port with a source other than the node's address is
/// dropped unless ModifyNetworkInterfaceAttribute turned that ENI's check off (nft table bridge rlab_srcdst, rewritten
/// whole in one transaction on every change). Changes are applied in the order EC2 made them, by one thread.
/// </summary>
public sealed class LabRouter : IAsyncDisposable
{
    private const byte Protocol = 4; // "static": routes the lab's EC2 put there
    private readonly LabRouterSettings _settings;
    private readonly Ec2Lab _lab;
    private readonly BlockingCollection<Action> _work = [];
    private readonly Dictionary<string, bool> _checks = new(StringComparer.Ordinal);
    private readonly Thread _worker;
    private readonly NetlinkSocket _socket;
    private readonly RouteNetlink _netlink;

    private LabRouter(LabRouterSettings settings, Ec2Lab lab)
    {
        _settings = settings;
        _lab = lab;
        _socket = NetlinkSocket.Open();
        _netlink = new RouteNetlink(_socket);
        foreach (var eni in settings.Enis) _checks[eni.Id] = true; // EC2's default: the check is on
        _worker = new Thread(Work) { IsBackground = true, Name = "lab router" };
    }

    /// <summary>Mirrors what the lab holds now, then every change.</summary>
    public static LabRouter Start(LabRouterSettings settings, Ec2Lab lab)
    {
        // Kernel tables and nft rules are written where this process runs: only ever in the lab's router namespace.
        try
        {
            using var routerNetns = NetworkNamespace.OpenChecked($"/var/run/netns/{LabLayout.RouterNetns}");
            if (routerNetns.Identity != NetworkNamespace.CurrentIdentity()) throw new NetworkNamespaceException("another namespace", 0);
        }
        catch (Exception e) when (e is NetworkNamespaceException or NotANetworkNamespaceException)
        {
            throw new ConfigurationError($"ec2 serve --router: runs only inside romana lab's router namespace ({LabLayout.RouterNetns})");
        }
        var router = new LabRouter(settings, lab);
        router.WriteSourceDestCheck();
        foreach (var table in lab.RouteTables)
            foreach (var route in table.Routes)
                router.Apply(new Ec2RouteChange(table.Id, route.Destination, route.Target));
        lab.RouteChanged += change => router._work.Add(() => router.Apply(change));
        lab.SourceDestCheckChanged += (eni, on) => router._work.Add(() =>
        {
            router._checks[eni] = on;
            router.WriteSourceDestCheck();
        });
        router._worker.Start();
        return router;
    }

    private void Work()
    {
        foreach (var step in _work.GetConsumingEnumerable())
        {
            try
            {
                step();
            }
            catch (Exception e) when (e is NetlinkException or LabException)
            {
                Console.Error.WriteLine($"romana lab router: {e.Message}");
            }
        }
    }

    private void Apply(Ec2RouteChange change)
    {
        if (!_settings.KernelTables.TryGetValue(change.Table, out var kernelTable)) return;
        var (_, length) = LabLayout.ParseCidr(change.Destination);
        var destination = IPAddress.Parse(change.Destination[..change.Destination.IndexOf('/')]);
        var gateway = change.Target switch
        {
            null or Ec2Lab.LocalTarget => null,
            _ when change.Target == _settings.InternetGateway => _settings.InternetGatewayVia,
            _ => _settings.Enis.FirstOrDefault(e => e.Id == change.Target)?.Ip,
        };
        var operation = $"{change.Table} {change.Destination} -> {change.Target ?? "(deleted)"} in kernel table {kernelTable}";
        if (change.Target == Ec2Lab.LocalTarget) return; // the VPC's own addresses: the router's main table
        if (gateway is null)
        {
            _netlink.DeleteRoute(destination, length, (uint)kernelTable, Protocol, operation);
            if (change.Target is not null) Console.Error.WriteLine($"romana lab router: {operation}: unknown target, not routed");
            return;
        }
        _netlink.ReplaceRoute(new RouteSpec(destination, length, IPAddress.Parse(gateway), 0, Protocol, (uint)kernelTable), operation);
        Console.WriteLine($"router: {operation}");
    }

    private void WriteSourceDestCheck()
    {
        var rules = new StringBuilder();
        rules.AppendLine("table bridge rlab_srcdst");
        rules.AppendLine("delete table bridge rlab_srcdst");
        rules.AppendLine("table bridge rlab_srcdst {");
        rules.AppendLine("  chain prerouting {");
        rules.AppendLine("    type filter hook prerouting priority 0; policy accept;");
        foreach (var eni in _settings.Enis.Where(e => _checks.GetValueOrDefault(e.Id, true)))
            rules.AppendLine($"    iifname \"{eni.Port}\" ether type ip ip saddr != {eni.Ip} counter drop comment \"{eni.Id}\"");
        rules.AppendLine("  }");
        rules.AppendLine("}");
        var outcome = LabShell.Run("nft", ["-f", "-"], rules.ToString());
        if (!outcome.Ok) throw new LabException($"nft (source/destination check): {outcome.Error.Trim()}");
        Console.WriteLine($"router: source/destination check on for {_checks.Count(c => c.Value)} of {_checks.Count} ENIs");
    }

    public ValueTask DisposeAsync()
    {
        _work.CompleteAdding();
        _worker.Join(TimeSpan.FromSeconds(5));
        _socket.Dispose();
        _ = _lab;
        return ValueTask.CompletedTask;
    }
}
