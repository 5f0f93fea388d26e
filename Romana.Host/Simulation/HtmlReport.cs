using System.Globalization;
using System.Net;
using System.Text;
using Romana.Actors.Addressing;
using Romana.Actors.Topology;

namespace Romana.Host.Simulation;

/// <summary>
/// One self-contained HTML page (inline CSS and SVG, no network fetches):
/// the layout, the route tables, and the failover timeline.
/// </summary>
public static class HtmlReport
{
    public static string Render(Scenario scenario, SimulationResult result)
    {
        var topology = TopologyCarver.Carve(scenario.Cluster.Topology);
        var html = new StringBuilder();
        html.Append("""
            <!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Romana simulation</title><style>
            body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
            h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
            table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
            th{background:#f4f4f4}.num{text-align:right}.ok{color:#17803d}.bad{color:#b42318}code{font-size:.95em}
            .legend span{display:inline-block;margin-right:1.5em}
            .dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
            details{margin:.3em 0}
            </style></head><body>
            """);
        var final = result.Final;
        var routes = final.RouteTables.Sum(t => t.Routes.Count);
        html.Append($"<h1>Romana simulation</h1><p>{scenario.Cluster.Nodes.Count} nodes at start, " +
                    $"{scenario.Cluster.Nodes.Sum(n => n.Pods):N0} pods, " +
                    $"{topology.Zones.Length} zones, {topology.Subnets.Count()} subnets, route limit {scenario.Cluster.RouteLimit}. " +
                    $"{result.Simulated.TotalSeconds:0.#} s of cluster life simulated in {result.Elapsed.TotalSeconds:0.0} s. " +
                    $"{result.InvariantChecks} invariant checks: " +
                    (result.Violation is null
                        ? "<b class=ok>all held</b>."
                        : $"<b class=bad>violated: {E(result.Violation.ToString())}</b>.") +
                    $" Final: {routes} routes, {final.ForwardedFraction:P1} of pods reached through a forwarder." +
                    $" Journal: <code>{E(result.Journal)}</code>.</p>");

        html.Append("<h2>Layout: pod CIDR by zone, subnet and block</h2>");
        html.Append(LayoutPicture(topology));
        html.Append("<table><tr><th>zone</th><th>zone prefix</th><th>subnet</th><th>pod prefix</th><th>VPC CIDR</th><th>route table</th>" +
                    "<th class=num>nodes</th><th class=num>blocks</th></tr>");
        var nodes = final.Nodes;
        foreach (var zone in topology.Zones)
            foreach (var subnet in zone.Subnets)
            {
                var members = nodes.Where(n => n.Subnet == subnet.Id.Value).ToList();
                html.Append($"<tr><td>{E(zone.Name.Value)}</td><td>{zone.PodPrefix}</td><td>{E(subnet.Id.Value)}</td>" +
                            $"<td>{subnet.PodPrefix}</td>" +
                            $"<td>{subnet.VpcCidr}</td><td>{E(subnet.RouteTable ?? "")}</td><td class=num>{members.Count}</td>" +
                            $"<td class=num>{members.Sum(n => n.Blocks.Length)}</td></tr>");
            }
        html.Append("</table>");

        html.Append("<h2>Failover timeline</h2>");
        html.Append(TimelinePicture(result));
        if (result.Failovers.Length > 0)
        {
            html.Append("<table><tr><th>node</th><th class=num>failed at</th><th class=num>detected at</th>" +
                        "<th class=num>routes repaired at</th><th class=num>failure to repair</th><th class=num>routes moved</th></tr>");
            foreach (var f in result.Failovers)
                html.Append($"<tr><td>{E(f.Node)}</td><td class=num>{f.FailedAt:0.000} s</td><td class=num>{f.DetectedAt:0.000} s</td>" +
                            $"<td class=num>{f.RoutesRepairedAt:0.000} s</td>" +
                            $"<td class=num>{(f.RoutesRepairedAt - f.FailedAt) * 1000:0} ms</td><td class=num>{f.RoutesMoved}</td></tr>");
            html.Append("</table>");
        }

        html.Append("<h2>Route tables at the end</h2>");
        foreach (var table in final.RouteTables)
        {
            var list = table.Routes;
            html.Append($"<details open><summary><b>{E(table.Id)}</b>: {list.Count} routes, budget {table.Budget}</summary>");
            html.Append("<table><tr><th>destination</th><th>target node</th><th>ENI</th></tr>");
            foreach (var route in list)
                html.Append($"<tr><td>{route.Cidr}</td><td>{E(route.Target)}</td><td>{E(route.Eni)}</td></tr>");
            html.Append("</table></details>");
        }

        html.Append("<h2>Events</h2><table><tr><th class=num>at</th><th>event</th><th>detail</th></tr>");
        foreach (var e in result.Timeline.Where(e => !(e.Event == "routeCreated" && e.At < 1) && e.Event != "invariantsHeld"))
            html.Append($"<tr><td class=num>{e.At:0.000} s</td><td>{E(e.Event)}</td>" +
                        $"<td>{E(string.Join(", ", e.Details.Select(d => $"{d.Key} {d.Value}")))}</td></tr>");
        html.Append("</table></body></html>");
        return html.ToString();
    }

    /// <summary>The pod CIDR as a bar: zone slots (padding shown hatched), and the subnets inside each zone.</summary>
    private static string LayoutPicture(ClusterTopology topology)
    {
        const double width = 1100;
        var svg = new StringBuilder(
            $"<svg width='{width}' height='90' viewBox='0 0 {width} 90' xmlns='http://www.w3.org/2000/svg' font-size='11'>");
        svg.Append($"<rect x='0' y='10' width='{width}' height='30' fill='url(#pad)' stroke='#999'/>" +
                   $"<defs><pattern id='pad' width='6' height='6' patternUnits='userSpaceOnUse'>" +
                   $"<path d='M0 6L6 0' stroke='#ccc'/></pattern></defs>");
        string[] colors = ["#cfe2ff", "#d1f2d5", "#ffe8cc", "#f2d7f5", "#fff3bf", "#d7f0f5"];
        double X(Ipv4 a) => (a.Value - (double)topology.PodCidr.Network.Value) / topology.PodCidr.Size * width;
        for (var z = 0; z < topology.Zones.Length; z++)
        {
            var zone = topology.Zones[z];
            var x = X(zone.PodPrefix.Network);
            var w = (double)zone.PodPrefix.Size / topology.PodCidr.Size * width;
            svg.Append($"<rect x='{F(x)}' y='10' width='{F(w)}' height='30' fill='{colors[z % colors.Length]}' stroke='#555'/>");
            svg.Append($"<text x='{F(x + 4)}' y='29'>{E(zone.Name.Value)} {zone.PodPrefix}</text>");
            foreach (var subnet in zone.Subnets)
            {
                var sx = X(subnet.PodPrefix.Network);
                var sw = (double)subnet.PodPrefix.Size / topology.PodCidr.Size * width;
                svg.Append($"<rect x='{F(sx)}' y='48' width='{F(sw)}' height='24' fill='{colors[z % colors.Length]}' stroke='#777'/>");
                svg.Append($"<text x='{F(sx + 3)}' y='64'>{E(subnet.Id.Value)}</text>");
            }
        }
        svg.Append($"<text x='0' y='86' fill='#666'>{topology.PodCidr}: hatched slots are padding and never used; " +
                   $"blocks of /{topology.BlockPrefixLength} are handed out lowest first inside each subnet</text></svg>");
        return svg.ToString();
    }

    /// <summary>
    /// One row a failed node: failure (red), detection (orange),
    /// routes repaired (green), recovery (blue); route changes as ticks.
    /// </summary>
    private static string TimelinePicture(SimulationResult result)
    {
        const double width = 1100, left = 170, rowHeight = 26;
        var nodes = result.Timeline.Where(e => e.Event is "fail" or "recover").Select(e => e.Details["node"]).Distinct().ToList();
        var height = 50 + rowHeight * Math.Max(1, nodes.Count);
        var span = Math.Max(1, result.Simulated.TotalSeconds);
        double X(double at) => left + at / span * (width - left - 10);
        var svg = new StringBuilder(
            $"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg' font-size='11'>");
        for (var s = 0; s <= span; s += span > 120 ? 30 : 10)
            svg.Append($"<line x1='{F(X(s))}' y1='20' x2='{F(X(s))}' y2='{height - 20}' stroke='#eee'/>" +
                       $"<text x='{F(X(s) - 8)}' y='{height - 6}' fill='#666'>{s} s</text>");
        foreach (var change in result.Timeline.Where(e => e.Event is "routeReplaced" or "routeCreated" or "routeDeleted" && e.At >= 1))
            svg.Append($"<line x1='{F(X(change.At))}' y1='8' x2='{F(X(change.At))}' y2='18' stroke='#888'>" +
                       $"<title>{E(change.Event)} {E(change.Details.GetValueOrDefault("cidr", ""))}</title></line>");
        for (var i = 0; i < nodes.Count; i++)
        {
            var y = 35 + i * rowHeight;
            svg.Append($"<text x='4' y='{F(y + 4)}'>{E(nodes[i])}</text>" +
                       $"<line x1='{left}' y1='{F(y)}' x2='{width - 10}' y2='{F(y)}' stroke='#ddd'/>");
            foreach (var f in result.Failovers.Where(f => f.Node == nodes[i]))
            {
                var end = f.RoutesRepairedAt ?? f.DetectedAt ?? f.FailedAt;
                svg.Append($"<rect x='{F(X(f.FailedAt))}' y='{F(y - 5)}' width='{F(Math.Max(1, X(end) - X(f.FailedAt)))}' " +
                           $"height='10' fill='#fde2e1'/>");
                svg.Append(Dot(X(f.FailedAt), y, "#b42318", $"failed at {f.FailedAt:0.000} s"));
                if (f.DetectedAt is { } d) svg.Append(Dot(X(d), y, "#f79009", $"judged failed at {d:0.000} s"));
                if (f.RoutesRepairedAt is { } r)
                    svg.Append(Dot(X(r), y, "#17803d",
                        $"{f.RoutesMoved} routes repaired at {r:0.000} s ({(r - f.FailedAt) * 1000:0} ms after the failure)"));
            }
            foreach (var recover in result.Timeline.Where(e => e.Event == "recover" && e.Details["node"] == nodes[i]))
                svg.Append(Dot(X(recover.At), y, "#1570ef", $"recovered at {recover.At:0.000} s"));
        }
        svg.Append("</svg><p class=legend><span><i class=dot style='background:#b42318'></i>failure</span>" +
                   "<span><i class=dot style='background:#f79009'></i>judged failed</span>" +
                   "<span><i class=dot style='background:#17803d'></i>routes repaired</span>" +
                   "<span><i class=dot style='background:#1570ef'></i>recovered</span><span>ticks: route changes</span></p>");
        return svg.ToString();
    }

    private static string Dot(double x, double y, string color, string title) =>
        $"<circle cx='{F(x)}' cy='{F(y)}' r='5' fill='{color}'><title>{E(title)}</title></circle>";

    private static string F(double value) => value.ToString("0.#", CultureInfo.InvariantCulture);
    private static string E(string text) => WebUtility.HtmlEncode(text);
}
