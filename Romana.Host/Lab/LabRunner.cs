using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Romana.Host.Lab;

/// <summary>
/// <c>romana lab up</c>, <c>status</c> and <c>down</c>: the VPC of DESIGN.md section 6 in network namespaces (see
/// <see cref="LabLayout"/> for the names and addresses). <c>up</c> builds, in order: the router, the outside namespace, a
/// bastion in each subnet, PostgreSQL in the router, <c>romana ec2 serve --router</c> in the router, the nodes with their
/// daemons, the pods through the CNI plugin, and the routes; what fails is named, and everything is removed again.
/// </summary>
public static class LabRunner
{
    public static async Task<int> UpAsync(LabOptions options, string cniPlugin, TextWriter output)
    {
        if (WhyNot() is { } why)
        {
            Console.Error.WriteLine($"romana lab up: {why}");
            return 1;
        }
        if (Exists())
        {
            Console.Error.WriteLine($"romana lab up: a lab is already up ({LabLayout.RunFolder} or namespaces {LabLayout.Prefix}-*); "
                + "see romana lab status, and romana lab down removes it");
            return 1;
        }
        if (!File.Exists(cniPlugin))
        {
            Console.Error.WriteLine($"romana lab up: --cni-plugin {cniPlugin}: no such file "
                + "(scripts/install-cni.sh /opt/cni/bin builds and installs it there)");
            return 2;
        }
        var postgres = PostgresBin();
        if (postgres is null)
        {
            Console.Error.WriteLine(
                "romana lab up: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)");
            return 1;
        }

        var watch = Stopwatch.StartNew();
        var layout = new LabLayout(options);
        var state = new LabState(options, "building", 0, new Dictionary<string, int>(), new Dictionary<string, string>());
        state.Save();
        try
        {
            Step(output, watch, "router", () => BuildRouter(layout));
            Step(output, watch, "outside", BuildOutside);
            Step(output, watch, "bastions", () => BuildBastions(layout));
            Step(output, watch, "PostgreSQL", () => StartPostgres(postgres));
            var ec2Pid = StartEc2(layout);
            state = state with { Ec2Pid = ec2Pid };
            state.Save();
            using var ec2 = new LabEc2Client(LabLayout.RouterNetns, layout.Ec2Endpoint);
            await AwaitEc2Async(ec2, ec2Pid);
            output.WriteLine($"{watch.Elapsed.TotalSeconds,6:0.0}s  EC2 on {layout.Ec2Endpoint} (pid {ec2Pid})");

            var pids = new Dictionary<string, int>();
            // In waves of DaemonWave: a daemon's first start (JIT, schema) is CPU-bound, and all of them at once on a small
            // machine starved their journals' recoveries past Akka's timeouts.
            foreach (var wave in layout.Nodes.Chunk(DaemonWave))
            {
                foreach (var node in wave) pids[node.Name] = StartNode(layout, node);
                state = state with { DaemonPids = pids };
                state.Save();
                output.WriteLine($"{watch.Elapsed.TotalSeconds,6:0.0}s  {pids.Count} of {layout.Nodes.Count} daemons starting");
                await AwaitDaemonsAsync(wave, pids);
            }
            output.WriteLine($"{watch.Elapsed.TotalSeconds,6:0.0}s  daemons up: IPAM recovered, node joined, CNI socket served");

            var ips = await WirePodsAsync(layout, cniPlugin, pids);
            state = state with { PodIps = ips };
            state.Save();
            output.WriteLine($"{watch.Elapsed.TotalSeconds,6:0.0}s  {ips.Count} pods wired by the CNI plugin");

            await AwaitPlanAsync(layout, ec2, ips);
            output.WriteLine($"{watch.Elapsed.TotalSeconds,6:0.0}s  EC2 holds the plan, mirrored in the router's kernel tables");

            state = state with { Phase = "up" };
            state.Save();
            output.WriteLine($"lab up in {watch.Elapsed.TotalSeconds:0.0} s: {layout.Subnets.Count} subnets in {options.Zones} zones, "
                + $"{layout.Nodes.Count} nodes, {layout.Pods.Count} pods; romana lab status shows it, romana lab down removes it");
            return 0;
        }
        catch (Exception e) when (e is LabException or IOException or HttpRequestException or TaskCanceledException
            or Romana.Netlink.NetworkNamespaceException)
        {
            Console.Error.WriteLine($"romana lab up: {e.Message}");
            if (Environment.GetEnvironmentVariable("ROMANA_LAB_KEEP_FAILED") == "1")
            {
                Console.Error.WriteLine("romana lab up: left as it is (ROMANA_LAB_KEEP_FAILED=1); romana lab down removes it");
                return 1;
            }
            Console.Error.WriteLine("romana lab up: removing what was made");
            Down(TextWriter.Null);
            return 1;
        }
    }

    private static void Step(TextWriter output, Stopwatch watch, string what, Action step)
    {
        try
        {
            step();
        }
        catch (LabException e)
        {
            throw new LabException($"{what}: {e.Message}");
        }
        output.WriteLine($"{watch.Elapsed.TotalSeconds,6:0.0}s  {what}");
    }

    // ---- the router and the outside -------------------------------------------------------------------------------

    private static void AddNamespace(string name)
    {
        LabShell.Must("ip", "netns", "add", name);
        LabShell.Ip(name, "link", "set", "lo", "up");
    }

    private static void BuildRouter(LabLayout layout)
    {
        const string r = LabLayout.RouterNetns;
        AddNamespace(r);
        LabShell.Ip(r, "addr", "add", $"{LabLayout.ServicesAddress}/32", "dev", "lo");
        LabShell.Sysctl(r, "net.ipv4.ip_forward", "1");
        foreach (var scope in new[] { "all", "default" })
        {
            LabShell.Sysctl(r, $"net.ipv4.conf.{scope}.send_redirects", "0");
            LabShell.Sysctl(r, $"net.ipv4.conf.{scope}.rp_filter", "0");
        }
        foreach (var subnet in layout.Subnets)
        {
            LabShell.Ip(r, "link", "add", subnet.Bridge, "type", "bridge");
            LabShell.Ip(r, "addr", "add", $"{subnet.Gateway}/24", "dev", subnet.Bridge);
            LabShell.Ip(r, "link", "set", subnet.Bridge, "up");
        }
        // The VPC's local route: its own addresses are reached from every table.
        LabShell.Ip(r, "rule", "add", "priority", "100", "to", LabLayout.VpcCidr, "lookup", "main");
        foreach (var subnet in layout.Subnets)
        {
            var table = layout.RouteTables.First(t => t.Id == subnet.RouteTable);
            LabShell.Ip(r, "rule", "add", "priority", "200", "iif", subnet.Bridge, "lookup", $"{table.KernelTable}");
        }
    }

    private static void BuildOutside()
    {
        const string r = LabLayout.RouterNetns, o = LabLayout.OutsideNetns;
        AddNamespace(o);
        LabShell.Ip(r, "link", "add", LabLayout.OutsideLink, "type", "veth", "peer", "name", "eth0", "netns", o);
        LabShell.Ip(r, "addr", "add", $"{LabLayout.RouterOutsideAddress}/24", "dev", LabLayout.OutsideLink);
        LabShell.Ip(r, "link", "set", LabLayout.OutsideLink, "up");
        LabShell.Ip(o, "addr", "add", $"{LabLayout.OutsideAddress}/24", "dev", "eth0");
        LabShell.Ip(o, "link", "set", "eth0", "up");
        LabShell.Ip(o, "route", "add", "default", "via", LabLayout.RouterOutsideAddress);
        // The internet gateway translates only addresses the VPC assigned: anything else is dropped on its way out.
        LabShell.Nft(r, $$"""
            table inet rlab_igw {
              chain forward {
                type filter hook forward priority 0; policy accept;
                oifname "{{LabLayout.OutsideLink}}" ip saddr != {{LabLayout.VpcCidr}} counter drop comment "source not assigned by the VPC"
              }
            }
            """);
        // What reaches the outside, by source: pod addresses must never arrive here.
        LabShell.Nft(o, $$"""
            table inet rlab_watch {
              chain input {
                type filter hook input priority 0; policy accept;
                ip saddr {{LabLayout.PodCidr}} counter comment "pod-sourced"
                ip saddr {{LabLayout.VpcCidr}} counter comment "vpc-sourced"
              }
            }
            """);
    }

    /// <summary>
    /// A bastion per subnet: a namespace on the subnet's bridge that is not a node. It has one address and a default route to
    /// the subnet's gateway, so every packet it sends to a pod goes through the router and the subnet's route table, its
    /// own subnet's pods included, as it would for a load balancer, a NAT or a VPN path of the VPC.
    /// </summary>
    private static void BuildBastions(LabLayout layout)
    {
        foreach (var bastion in layout.Bastions) OnBridge(bastion.Netns, bastion.Port, bastion.Bridge, bastion.Ip, bastion.Gateway);
    }

    /// <summary>
    /// A new namespace on a subnet's bridge: a veth whose router end is a port of the bridge and whose other end, eth0, holds
    /// the address, with a default route to the subnet's gateway.
    /// </summary>
    private static void OnBridge(string netns, string port, string bridge, string ip, string gateway)
    {
        AddNamespace(netns);
        LabShell.Ip(LabLayout.RouterNetns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns);
        LabShell.Ip(LabLayout.RouterNetns, "link", "set", port, "master", bridge, "up");
        LabShell.Ip(netns, "addr", "add", $"{ip}/24", "dev", "eth0");
        LabShell.Ip(netns, "link", "set", "eth0", "up");
        LabShell.Ip(netns, "route", "add", "default", "via", gateway);
    }

    // ---- PostgreSQL -----------------------------------------------------------------------------------------------

    private static string? PostgresBin() =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
                .Where(b => File.Exists(Path.Combine(b, "initdb"))).OrderBy(b => b, StringComparer.Ordinal).LastOrDefault()
            : null;

    private static void StartPostgres(string bin)
    {
        var folder = LabLayout.PostgresFolder;
        Directory.CreateDirectory(folder);
        LabShell.Must("chown", "postgres", folder);
        LabShell.Must("runuser", "-u", "postgres", "--", Path.Combine(bin, "initdb"), "-D", $"{folder}/data", "-U", "postgres",
            "-A", "trust", "--no-sync");
        File.AppendAllText($"{folder}/data/pg_hba.conf", $"host all all {LabLayout.VpcCidr} scram-sha-256\n");
        LabShell.Exec(LabLayout.RouterNetns, "runuser", "-u", "postgres", "--", Path.Combine(bin, "pg_ctl"), "-D", $"{folder}/data",
            "-l", $"{folder}/server.log", "-w", "-o",
            $"-p {LabLayout.PostgresPort} -k {folder} -c listen_addresses={LabLayout.ServicesAddress} -c fsync=off -c max_connections=300",
            "start");
        LabShell.Exec(LabLayout.RouterNetns, "runuser", "-u", "postgres", "--", Path.Combine(bin, "psql"), "-h", folder,
            "-p", $"{LabLayout.PostgresPort}", "-U", "postgres", "-q", "-c", "CREATE USER romana WITH PASSWORD 'romana' CREATEDB",
            "-c", $"CREATE DATABASE {LabDaemonConfig.Database} OWNER romana");
    }

    /// <summary>
    /// PostgreSQL stopped as by a crash (immediate: no checkpoint, clients cut off) and started again with the same
    /// options, as a failure test or a user trying the cluster's recovery asks.
    /// </summary>
    public static LabShell.Outcome RestartPostgres()
    {
        var bin = PostgresBin() ?? throw new LabException("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin");
        return LabShell.Run("ip", ["netns", "exec", LabLayout.RouterNetns, "runuser", "-u", "postgres", "--",
            Path.Combine(bin, "pg_ctl"), "-D", Path.Combine(LabLayout.PostgresFolder, "data"), "-l",
            Path.Combine(LabLayout.PostgresFolder, "server.log"), "-m", "immediate", "-w", "restart"]);
    }

    // ---- EC2 ------------------------------------------------------------------------------------------------------

    private static int StartEc2(LabLayout layout)
    {
        File.WriteAllText(LabLayout.RouterConfigPath, LabRouterSettings.Hocon(layout));
        return LabShell.Spawn(LabLayout.RouterNetns,
            [.. LabShell.Romana(), "ec2", "serve", "--config", LabLayout.RouterConfigPath, "--router"],
            Path.Combine(LabLayout.RunFolder, "ec2.log"));
    }

    private static async Task AwaitEc2Async(LabEc2Client ec2, int pid)
    {
        var log = Path.Combine(LabLayout.RunFolder, "ec2.log");
        var waited = Stopwatch.StartNew();
        while (true)
        {
            if (!LabShell.IsAlive(pid)) throw new LabException($"EC2 (romana ec2 serve --router) exited: {Tail(log)}");
            try
            {
                await ec2.DescribeRouteTablesAsync();
                return;
            }
            catch (HttpRequestException) when (waited.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(200);
            }
            catch (HttpRequestException e)
            {
                throw new LabException($"EC2 did not answer within 60 s: {e.Message}; {Tail(log)}");
            }
        }
    }

    // ---- nodes and pods -------------------------------------------------------------------------------------------

    private static int StartNode(LabLayout layout, LabNode node)
    {
        OnBridge(node.Netns, node.Port, node.Bridge, node.Ip, node.Gateway);
        Directory.CreateDirectory(node.Folder);
        File.WriteAllText(node.ConfigPath, LabDaemonConfig.For(layout, node));
        return SpawnDaemon(node);
    }

    /// <summary>
    /// Starts a node's daemon again with the configuration it had (after a test or a user killed it); its log goes on in the
    /// same file. Returns the new pid, which <c>status</c> shows from then on.
    /// </summary>
    public static int RestartDaemon(string nodeName)
    {
        var state = LabState.Load() ?? throw new LabException("no lab is up");
        var node = new LabLayout(state.Options).Nodes.FirstOrDefault(n => n.Name == nodeName)
            ?? throw new LabException($"the lab has no node {nodeName}");
        if (state.DaemonPids.TryGetValue(nodeName, out var old) && LabShell.IsAlive(old))
            throw new LabException($"node {nodeName}: its daemon (pid {old}) is still running");
        var pid = SpawnDaemon(node);
        (state with { DaemonPids = new Dictionary<string, int>(state.DaemonPids) { [nodeName] = pid } }).Save();
        return pid;
    }

    private static int SpawnDaemon(LabNode node)
    {
        // The route manager's AWSSDK.EC2 client takes credentials from its default chain; the lab's EC2 checks none.
        return LabShell.Spawn(node.Netns, ["env", "AWS_ACCESS_KEY_ID=lab", "AWS_SECRET_ACCESS_KEY=lab", "AWS_EC2_METADATA_DISABLED=true",
            .. LabShell.Romana(), "daemon", "--config", node.ConfigPath],
            Path.Combine(node.Folder, "daemon.log"));
    }

    private const int DaemonWave = 4;

    private static async Task AwaitDaemonsAsync(IEnumerable<LabNode> nodes, IReadOnlyDictionary<string, int> pids)
    {
        var waited = Stopwatch.StartNew();
        var waiting = nodes.ToList();
        while (waiting.Count > 0)
        {
            foreach (var node in waiting.ToList())
            {
                if (!LabShell.IsAlive(pids[node.Name]))
                    throw new LabException($"node {node.Name}: romana daemon exited: {Tail(Path.Combine(node.Folder, "daemon.log"))}");
                // The daemon says so once its IPAM has recovered, its node joined its subnet and its CNI socket is served: a
                // plugin that asked earlier would wait in the socket's backlog and could give up meanwhile.
                if (File.Exists(node.Socket) && Started(node)) waiting.Remove(node);
            }
            if (waiting.Count == 0) return;
            if (waited.Elapsed > TimeSpan.FromSeconds(300))
                throw new LabException($"not started within 300 s: the daemons of {string.Join(", ", waiting.Select(n => n.Name))}: "
                    + string.Join("; ", waiting.Select(n => $"{n.Name}: {Tail(Path.Combine(n.Folder, "daemon.log"))}")));
            await Task.Delay(200);
        }
    }

    private static bool Started(LabNode node)
    {
        var log = Path.Combine(node.Folder, "daemon.log");
        try
        {
            using var reader = new StreamReader(new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
            return reader.ReadToEnd().Contains($"Romana daemon: node {node.Name} ", StringComparison.Ordinal);
        }
        catch (FileNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Each pod as a runtime wires it: the plugin run in the node's namespace, CNI_* variables, its config on stdin.</summary>
    private static async Task<Dictionary<string, string>> WirePodsAsync(LabLayout layout, string plugin,
        IReadOnlyDictionary<string, int> pids)
    {
        var ips = new Dictionary<string, string>();
        foreach (var pod in layout.Pods) AddNamespace(pod.Netns);
        foreach (var pod in layout.Pods)
        {
            var node = layout.NodeOf(pod);
            var waited = Stopwatch.StartNew();
            while (true)
            {
                var outcome = Cni(plugin, node, pod, "ADD");
                if (outcome.Ok && JsonNode.Parse(outcome.Output)?["ips"]?[0]?["address"]?.GetValue<string>() is { } address)
                {
                    ips[pod.Name] = address[..address.IndexOf('/')];
                    break;
                }
                if (!LabShell.IsAlive(pids[node.Name]))
                    throw new LabException($"node {node.Name}: romana daemon exited: {Tail(Path.Combine(node.Folder, "daemon.log"))}");
                if (waited.Elapsed > TimeSpan.FromSeconds(120))
                    throw new LabException($"pod {pod.Name} on {node.Name}: CNI ADD failed: {(outcome.Output + outcome.Error).Trim()}");
                await Task.Delay(500);
            }
        }
        if (layout.Pods.Count == 0)
            foreach (var node in layout.Nodes)
                if (!Cni(plugin, node, null, "STATUS").Ok) throw new LabException($"node {node.Name}: the daemon does not answer STATUS");
        return ips;
    }

    public static LabShell.Outcome Cni(string plugin, LabNode node, LabPod? pod, string command)
    {
        var version = command == "STATUS" ? "1.1.0" : "1.0.0";
        var config = $$"""{"cniVersion":"{{version}}","name":"romana-lab","type":"romana","daemonSocket":"{{node.Socket}}"}""";
        var environment = new Dictionary<string, string>
        {
            ["CNI_COMMAND"] = command,
            ["CNI_PATH"] = Path.GetDirectoryName(Path.GetFullPath(plugin))!,
        };
        if (pod is not null)
        {
            environment["CNI_CONTAINERID"] = pod.ContainerId;
            environment["CNI_NETNS"] = $"/var/run/netns/{pod.Netns}";
            environment["CNI_IFNAME"] = "eth0";
            environment["CNI_ARGS"] = $"IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME={pod.Name}";
        }
        return LabShell.Run("ip", ["netns", "exec", node.Netns, plugin], config, environment);
    }

    // ---- the plan -------------------------------------------------------------------------------------------------

    private static async Task AwaitPlanAsync(LabLayout layout, LabEc2Client ec2, IReadOnlyDictionary<string, string> ips)
    {
        var waited = Stopwatch.StartNew();
        string? missing;
        while ((missing = await MissingAsync(layout, ec2, ips)) is not null)
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(60)) throw new LabException($"EC2 does not hold a complete plan: {missing}");
            await Task.Delay(250);
        }
    }

    /// <summary>What the plan still lacks: a block no route of a table reaches, or an EC2 route the kernel table lacks.</summary>
    private static async Task<string?> MissingAsync(LabLayout layout, LabEc2Client ec2, IReadOnlyDictionary<string, string> ips)
    {
        var tables = await ec2.DescribeRouteTablesAsync();
        foreach (var table in layout.RouteTables)
        {
            var view = tables.FirstOrDefault(t => t.Id == table.Id);
            if (view is null) return $"no route table {table.Id}";
            var routes = view.Routes.Where(r => r.ToEni).ToList();
            // Every pod's address has a route, to a node of its own subnet, in every table: its own subnet's pods too, which
            // the subnet's bastion (and any instance that is not a node) reaches through the table.
            foreach (var pod in layout.Pods)
            {
                var subnet = layout.NodeOf(pod).Subnet;
                if (!ips.TryGetValue(pod.Name, out var ip)) return $"pod {pod.Name} has no address";
                var best = LabRoute.For(routes, ip);
                if (best is null) return $"{table.Id} has no route to {pod.Name} ({ip})";
                if (layout.Nodes.FirstOrDefault(n => n.Eni == best.Target)?.Subnet != subnet)
                    return $"{table.Id} routes {pod.Name} ({ip}) to {best.Target}, not a node of {subnet}";
            }
            var kernel = LabShell.Ip(LabLayout.RouterNetns, "route", "show", "table", $"{table.KernelTable}");
            foreach (var route in routes)
            {
                var via = layout.Nodes.First(n => n.Eni == route.Target).Ip;
                var cidr = route.Cidr.EndsWith("/32", StringComparison.Ordinal) ? route.Cidr[..^3] : route.Cidr;
                if (!kernel.Contains($"{cidr} via {via} ", StringComparison.Ordinal))
                    return $"kernel table {table.KernelTable} lacks {route.Cidr} via {via}";
            }
        }
        return null;
    }

    // ---- status ---------------------------------------------------------------------------------------------------

    public static async Task<int> StatusAsync(bool json, TextWriter output)
    {
        var state = LabState.Load();
        if (state is null)
        {
            Console.Error.WriteLine(Exists()
                ? $"romana lab status: a lab's namespaces are here but {LabLayout.StatePath} is not; romana lab down removes them"
                : "romana lab status: no lab is up (romana lab up)");
            return 1;
        }
        var layout = new LabLayout(state.Options);
        IReadOnlyList<LabTableView> tables = [];
        try
        {
            using var ec2 = new LabEc2Client(LabLayout.RouterNetns, layout.Ec2Endpoint);
            tables = await ec2.DescribeRouteTablesAsync();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or LabException
            or Romana.Netlink.NetworkNamespaceException)
        {
            Console.Error.WriteLine($"romana lab status: EC2 does not answer: {e.Message}");
        }
        var document = new JsonObject
        {
            ["router"] = new JsonObject { ["netns"] = LabLayout.RouterNetns },
            ["ec2"] = new JsonObject { ["endpoint"] = layout.Ec2Endpoint },
            ["postgres"] = new JsonObject { ["port"] = LabLayout.PostgresPort },
            ["nodes"] = new JsonArray([.. layout.Nodes.Select(n => (JsonNode)new JsonObject
            {
                ["name"] = n.Name, ["netns"] = n.Netns, ["zone"] = n.Zone, ["subnet"] = n.Subnet, ["ip"] = n.Ip, ["eni"] = n.Eni,
                ["pid"] = state.DaemonPids.TryGetValue(n.Name, out var pid) && LabShell.IsAlive(pid) ? pid : null,
            })]),
            ["pods"] = new JsonArray([.. layout.Pods.Select(p => (JsonNode)new JsonObject
            {
                ["name"] = p.Name, ["netns"] = p.Netns, ["node"] = p.Node, ["ip"] = state.PodIps.GetValueOrDefault(p.Name),
            })]),
            ["bastions"] = new JsonArray([.. layout.Bastions.Select(b => (JsonNode)new JsonObject
            {
                ["name"] = b.Name, ["netns"] = b.Netns, ["subnet"] = b.Subnet, ["ip"] = b.Ip,
            })]),
            ["routeTables"] = new JsonArray([.. tables.Select(t => (JsonNode)new JsonObject
            {
                ["id"] = t.Id,
                ["subnets"] = new JsonArray([.. t.Subnets.Select(s => (JsonNode)JsonValue.Create(s))]),
                ["routes"] = new JsonArray(
                    [.. t.Routes.Select(r => (JsonNode)new JsonObject { ["cidr"] = r.Cidr, ["target"] = r.Target })]),
            })]),
            ["routeManager"] = (await ClusterViewAsync(layout.Nodes
                    .Where(n => state.DaemonPids.TryGetValue(n.Name, out var pid) && LabShell.IsAlive(pid)).Select(n => n.Socket),
                v => v.RouteManager is not null))?.RouteManager,
        };
        if (json)
        {
            output.WriteLine(document.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            return 0;
        }
        output.WriteLine($"lab {state.Phase}: router {LabLayout.RouterNetns}, EC2 {layout.Ec2Endpoint}, "
            + $"PostgreSQL {LabLayout.ServicesAddress}:{LabLayout.PostgresPort}, "
            + $"outside {LabLayout.OutsideAddress} in {LabLayout.OutsideNetns}");
        foreach (var node in layout.Nodes)
        {
            var pid = state.DaemonPids.GetValueOrDefault(node.Name);
            output.WriteLine($"  {node.Name,-12} {node.Netns,-18} {node.Zone} {node.Subnet} {node.Ip,-10} {node.Eni} "
                + $"daemon {(LabShell.IsAlive(pid) ? $"pid {pid}" : "not running")}");
            foreach (var pod in layout.Pods.Where(p => p.Node == node.Name))
                output.WriteLine($"    {pod.Name,-14} {state.PodIps.GetValueOrDefault(pod.Name) ?? "(not wired)"}");
        }
        foreach (var bastion in layout.Bastions)
            output.WriteLine($"  {bastion.Name,-12} {bastion.Netns,-18} {bastion.Subnet} {bastion.Ip,-10} (not a node: no host routes)");
        foreach (var table in tables)
        {
            output.WriteLine($"  {table.Id} ({string.Join(", ", table.Subnets)}):");
            foreach (var route in table.Routes) output.WriteLine($"    {route.Cidr,-18} {route.Target}");
        }
        return 0;
    }

    /// <summary>
    /// The cluster as the first of these daemons that answers its socket's CLUSTER request (with a view
    /// <paramref name="accept"/> takes, when given) sees it; null if none does.
    /// </summary>
    public static async Task<Romana.Contracts.Cni.ClusterView?> ClusterViewAsync(IEnumerable<string> sockets,
        Func<Romana.Contracts.Cni.ClusterView, bool>? accept = null)
    {
        foreach (var socket in sockets)
        {
            try
            {
                var reply = await Cli.DaemonSocketClient.SendAsync(socket,
                    new Romana.Contracts.Cni.DaemonRequest(Romana.Contracts.Cni.DaemonProtocol.Cluster, "", ""), TimeSpan.FromSeconds(5));
                if (reply.Cluster is { } view && (accept?.Invoke(view) ?? true)) return view;
            }
            catch (Cli.DaemonUnreachableException)
            {
                // Starting or stopping: ask the next.
            }
        }
        return null;
    }

    // ---- down -----------------------------------------------------------------------------------------------------

    /// <summary>
    /// Removes the folder. A second `lab down` (a test's cleanup beside a user's), or a server still stopping, may remove
    /// or add files inside it during one pass, which then fails on a path that is gone: it tries again.
    /// </summary>
    private static void RemoveFolder(string path)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 5)
            {
                Thread.Sleep(100);
            }
        }
    }

    public static bool Exists() => Directory.Exists(LabLayout.RunFolder) || LabNamespaces().Count > 0;

    private static List<string> LabNamespaces() =>
        [.. LabShell.Run("ip", ["netns", "list"]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ')[0]).Where(name => name.StartsWith(LabLayout.Prefix + "-", StringComparison.Ordinal))];

    /// <summary>
    /// Removes everything the lab made, from names alone (also after a crash): PostgreSQL stopped, every process in a lab
    /// namespace killed, every lab namespace deleted (their links, addresses, routes, rules and nft tables go with them), the
    /// folder removed. Returns 0, also when there was nothing to remove.
    /// </summary>
    public static int Down(TextWriter output)
    {
        if (WhyNot() is { } why)
        {
            Console.Error.WriteLine($"romana lab down: {why}");
            return 1;
        }
        var data = Path.Combine(LabLayout.PostgresFolder, "data");
        if (File.Exists(Path.Combine(data, "postmaster.pid")) && PostgresBin() is { } bin)
        {
            LabShell.Run("runuser", ["-u", "postgres", "--", Path.Combine(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]);
            output.WriteLine("PostgreSQL stopped");
        }
        var namespaces = LabNamespaces();
        var killed = 0;
        foreach (var name in namespaces)
        {
            foreach (var pid in Pids(name)) killed += Kill(pid) ? 1 : 0;
        }
        var waited = Stopwatch.StartNew();
        while (namespaces.Any(n => Pids(n).Any(LabShell.IsAlive)) && waited.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(50);
        foreach (var name in namespaces) LabShell.Run("ip", ["netns", "del", name]);
        var folder = Directory.Exists(LabLayout.RunFolder);
        if (folder) RemoveFolder(LabLayout.RunFolder);
        output.WriteLine(namespaces.Count == 0 && !folder
            ? "no lab to remove"
            : $"lab down: {killed} processes killed, {namespaces.Count} namespaces deleted"
                + (folder ? $", {LabLayout.RunFolder} removed" : ""));
        return 0;
    }

    private static List<int> Pids(string netns) =>
        [.. LabShell.Run("ip", ["netns", "pids", netns]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => int.TryParse(p.Trim(), out var pid) ? pid : 0).Where(p => p > 0 && p != Environment.ProcessId)];

    private static bool Kill(int pid)
    {
        if (!LabShell.IsAlive(pid)) return false;
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
            return true;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static string? WhyNot() =>
        !OperatingSystem.IsLinux() ? "network namespaces exist on Linux only"
        : Environment.UserName != "root" && GetEuid() != 0 ? "needs root (network namespaces, bridges, nft)"
        : null;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEuid();

    private static string Tail(string log)
    {
        if (!File.Exists(log)) return $"(no {log})";
        var lines = File.ReadAllLines(log).Where(l => l.Trim().Length > 0).TakeLast(3);
        return $"{string.Join(" | ", lines)} (log: {log})";
    }
}
