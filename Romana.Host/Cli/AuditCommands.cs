using System.Collections.Immutable;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Romana.Actors;
using Romana.Actors.Addressing;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Host.Audit;
using Romana.Host.Composition;
using Romana.Host.Documents;
using Romana.Host.Persistence;
using Romana.Host.Routing;
using Spectre.Console;

namespace Romana.Host.Cli;

/// <summary>`romana audit ...`: questions answered from the journal, through Akka.Persistence.Query.</summary>
public static partial class AuditCommands
{
    private static readonly Option<string?> Journal = new("--journal")
    {
        Description = "The SQLite journal file to read (default: romana.persistence in --config)"
    };
    private static readonly Option<string?> Config = new("--config")
    {
        Description = "HOCON whose romana.persistence names the journal (SQLite or PostgreSQL); default hocon/romana.conf if present"
    };
    private static readonly Option<bool> Json = new("--json") { Description = "Print JSON for scripts" };

    public static Command Create()
    {
        var audit = new Command("audit", """
            Answers from the journal alone (never from live actors): who held an address, what happened to a node, every
            route change and why, and the whole state as it was at a time. Times: ISO 8601 (2026-11-28T10:00:00Z) or
            relative to now (-5m, -2h, -30s).
            """);
        audit.Subcommands.Add(Address());
        audit.Subcommands.Add(Node());
        audit.Subcommands.Add(Routes());
        audit.Subcommands.Add(Replay());
        audit.Subcommands.Add(Rebuild());
        return audit;
    }

    private static Command Address()
    {
        var address = new Argument<string>("ADDRESS") { Description = "A pod address, such as 100.64.3.7" };
        var at = new Option<string?>("--at") { Description = "Only the holder at this time" };
        var command = new Command("address", "Which key (pod, container) and node held the address, from when to when.")
        {
            address, at, Journal, Config, Json
        };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            if (!Ipv4.TryParse(parse.GetValue(address), out var ip))
                return Bad($"ADDRESS: {Quoting.Quote(parse.GetValue(address))} is not an IPv4 address");
            var when = parse.GetValue(at) is { } text ? Time(text, "--at") : (DateTimeOffset?)null;
            var settings = JournalSettingsOf(parse);
            await using var romana = await RomanaHost.StartAuditAsync(settings);
            var journal = romana.Audit;
            var indexed = await IndexedAudit.AddressAsync(settings, journal, ip, MaxTail(parse), cancel).WaitAsync(cancel);
            Source(indexed);
            var holdings = (indexed.Value ?? await AuditQueries.AddressAsync(journal, ip).WaitAsync(cancel))
                .Where(h => when is null || (h.From <= when && (h.To is null || when < h.To))).ToList();
            if (parse.GetValue(Json)) Print(holdings);
            else
            {
                if (holdings.Count == 0) AnsiConsole.MarkupLine($"No key held {ip}{(when is null ? "" : $" at {when.Value.Stamp()}")}.");
                else AnsiConsole.Write(HoldingsTable(holdings));
            }
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    private static Command Node()
    {
        var name = new Argument<string>("NAME") { Description = "The node's name" };
        var command = new Command("node", "A node's membership, blocks, addresses and health over time.") { name, Journal, Config, Json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            var settings = JournalSettingsOf(parse);
            await using var romana = await RomanaHost.StartAuditAsync(settings);
            var journal = romana.Audit;
            var node = new NodeName(parse.GetValue(name)!);
            var indexed = await IndexedAudit.NodeAsync(settings, journal, node, MaxTail(parse), cancel).WaitAsync(cancel);
            Source(indexed);
            var history = indexed.Value ?? await AuditQueries.NodeAsync(journal, node).WaitAsync(cancel);
            if (history.Subnet is null && history.Changes.IsEmpty)
                return Bad($"NAME: no node {Quoting.Quote(history.Node.Value)} in the journal");
            if (parse.GetValue(Json)) Print(history);
            else
            {
                var changes = new Table().Title($"node {history.Node} (subnet {history.Subnet})").AddColumns("at", "what", "detail", "why");
                foreach (var c in history.Changes) changes.AddRow(c.At.Stamp(), c.What, c.Detail, c.Reason);
                AnsiConsole.Write(changes);
                AnsiConsole.Write(HoldingsTable(history.Addresses));
            }
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    private static Command Routes()
    {
        var table = new Option<string?>("--table") { Description = "Only this route table" };
        var since = new Option<string?>("--since") { Description = "Only changes from this time on" };
        var command = new Command("routes",
            "Every route created, replaced or deleted, with its reason (plan, failover, drift repair, budget), and the routes "
                + "a forwarder supervisor moved while the route manager was away.")
        {
            table, since, Journal, Config, Json
        };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            var from = parse.GetValue(since) is { } text ? Time(text, "--since") : (DateTimeOffset?)null;
            await using var romana = await OpenAsync(parse);
            var journal = romana.Audit;
            var changes = await AuditQueries.RoutesAsync(journal, parse.GetValue(table), from).WaitAsync(cancel);
            if (parse.GetValue(Json)) Print(changes);
            else
            {
                var output = new Table().AddColumns("at", "table", "destination", "change", "from", "to", "why");
                foreach (var c in changes)
                    output.AddRow(c.At.Stamp(), c.Table, c.Cidr.ToString(), c.Change, c.From?.Value ?? "", c.To?.Value ?? "", c.Reason);
                AnsiConsole.Write(output);
                AnsiConsole.MarkupLine($"{changes.Length} changes");
            }
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    private static Command Replay()
    {
        var until = new Option<string?>("--until") { Description = "The time to rebuild the state at (default: the end of the journal)" };
        var command = new Command("replay", """
            The IPAM and route state as it was at a time, rebuilt from events alone; with --json in the format of
            `romana plan --json`.
            """) { until, Journal, Config, Json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            var at = parse.GetValue(until) is { } text ? Time(text, "--until") : (DateTimeOffset?)null;
            var settings = JournalSettingsOf(parse);
            var lateWrites = ConfigValues.Duration(LoadConfig(parse), "romana.audit.late-writes");
            await using var romana = await RomanaHost.StartAuditAsync(settings);
            // The newest checkpoint at or before the time, then the tail; read-only, and no store created when there is none.
            var (replay, source) = await AuditMaintenance.ReplayAsync(romana.Audit, AuditStore.For(settings, readOnly: true), at,
                lateWrites, cancel);
            Console.Error.WriteLine($"romana: {source.Note}");
            var document = ReplayDocument(replay);
            if (parse.GetValue(Json)) Console.WriteLine(document.ToJson());
            else
            {
                AnsiConsole.MarkupLine(Markup.Escape(
                    $"{replay.Applied:N0} events replayed{(at is null ? "" : $" up to {at.Value.Stamp()}")}"));
                var nodes = new Table().AddColumns("node", "subnet", "IP", "blocks", "healthy");
                foreach (var n in document.Nodes)
                    nodes.AddRow(n.Name, n.Subnet, n.Ip, string.Join(", ", n.Blocks), n.Healthy ? "yes" : "no");
                AnsiConsole.Write(nodes);
                foreach (var t in document.RouteTables)
                    AnsiConsole.MarkupLine(Markup.Escape($"{t.Id}: {t.Routes.Count} routes (budget {t.Budget})"));
                AnsiConsole.MarkupLine($"forwarded: {document.ForwardedFraction:P1}");
            }
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    private static Command Rebuild()
    {
        var command = new Command("rebuild", """
            Drops the audit's derived data (the checkpoints, and every other projection's) and makes it again from the journal,
            up to its current end: after deleting the audit store, after a change of a projection's format, or to have
            checkpoints of a journal that had none. It writes the audit store only (romana.audit.db beside a SQLite journal,
            tables romana_audit_* on PostgreSQL), never the journal. A daemon's projections may keep running meanwhile: every
            checkpoint either writes is the state of the journal up to its own offsets, so both sets are right, and replays
            use whichever is newest.
            """) { Journal, Config, Json };
        command.SetAction((parse, _) => CommandLineGuard.RunInterruptibleAsync(async cancel =>
        {
            var settings = JournalSettingsOf(parse);
            var audit = AuditSettings.From(LoadConfig(parse));
            var json = parse.GetValue(Json);
            var started = DateTimeOffset.UtcNow;
            ImmutableArray<ProjectionRun> runs = [];
            if (json) runs = await AuditMaintenance.CatchUpAsync(settings, audit, reset: true, null, cancel);
            else
                await AnsiConsole.Status().StartAsync("rebuilding the audit store", async context =>
                    runs = await AuditMaintenance.CatchUpAsync(settings, audit, reset: true,
                        (name, events) => context.Status(Markup.Escape($"{name}: {events:N0} events applied")), cancel));
            var where = AuditStore.For(settings, readOnly: true)?.Describe ?? "";
            if (json)
                Print(new
                {
                    Store = where,
                    Seconds = (DateTimeOffset.UtcNow - started).TotalSeconds,
                    Projections = runs.Select(r => new { r.Projection, r.Events, r.Checkpoints, r.Seconds, r.LastPayloadBytes }),
                });
            else
            {
                var table = new Table().Title(Markup.Escape(where)).AddColumns("projection", "events", "checkpoints", "last checkpoint",
                    "time");
                foreach (var r in runs)
                    table.AddRow(r.Projection, $"{r.Events:N0}", $"{r.Checkpoints:N0}", $"{r.LastPayloadBytes / 1024.0:N1} KiB",
                        $"{r.Seconds:0.0} s");
                AnsiConsole.Write(table);
            }
            return CommandLineGuard.Ok;
        }));
        return command;
    }

    public static PlanDocument ReplayDocument(JournalReplay replay)
    {
        var ipam = replay.Ipam();
        var input = replay.RoutingInput();
        var plan = replay.RoutePlan(input);
        var blocks = ipam.Nodes.ToDictionary(n => n.Node, n => n.Blocks);
        return PlanDocument.Of(ipam.Subnets.Select(s => (s.Subnet.Value, s.PodPrefix)),
            ipam.Subnets.SelectMany(s => s.Members.Select(m => new PlanDocument.Node(m.Node.Value, s.Subnet.Value, m.Ip.ToString(),
                blocks.GetValueOrDefault(m.Node, []), !replay.IsFailed(m.Node)))),
            plan.Tables, plan.ForwardedFraction);
    }

    private static Task<RomanaHost> OpenAsync(ParseResult parse) => RomanaHost.StartAuditAsync(JournalSettingsOf(parse));

    private static JournalSettings JournalSettingsOf(ParseResult parse) => parse.GetValue(Journal) is { } file
        ? JournalSettings.Sqlite(file)
        : JournalSettings.From(LoadConfig(parse));

    private static int MaxTail(ParseResult parse) => ConfigValues.Int(LoadConfig(parse), "romana.audit.index.max-tail-events");

    /// <summary>Where an answer came from (the address index, or the journal and why), on stderr: the output stays the same.</summary>
    private static void Source<T>(IndexedAudit.Answer<T> answer) =>
        Console.Error.WriteLine(answer.Value is null ? $"romana: answered from the journal: {answer.Note}" : $"romana: {answer.Note}");

    private static Akka.Configuration.Config LoadConfig(ParseResult parse) =>
        RomanaConfig.Load(parse.GetValue(Config) ?? (File.Exists("hocon/romana.conf") ? "hocon/romana.conf" : null));

    /// <summary>ISO 8601, or relative to now: -30s, -5m, -2h, -1d.</summary>
    public static DateTimeOffset Time(string text, string option)
    {
        var relative = RelativeTime().Match(text);
        if (relative.Success)
        {
            var amount = double.Parse(relative.Groups[1].Value, CultureInfo.InvariantCulture);
            var seconds = amount * relative.Groups[2].Value switch { "s" => 1, "m" => 60, "h" => 3600, _ => 86_400 };
            var now = DateTimeOffset.UtcNow;
            // Earlier than the year 1 is no time at all (and no TimeSpan holds it).
            if (seconds > (now - DateTimeOffset.MinValue).TotalSeconds)
                throw new ConfigurationError($"{option}: {Quoting.Quote(text)} is before the year 1");
            return now - TimeSpan.FromSeconds(seconds);
        }
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
            ? time
            : throw new ConfigurationError(
                $"{option}: {Quoting.Quote(text)} is neither an ISO 8601 time nor a relative one such as -5m");
    }

    [GeneratedRegex(@"^-(\d+(?:\.\d+)?)(s|m|h|d)$")]
    private static partial Regex RelativeTime();

    private static Table HoldingsTable(IEnumerable<AddressHolding> holdings)
    {
        var table = new Table().AddColumns("address", "key", "pod", "node", "from", "to", "released because");
        foreach (var h in holdings)
            table.AddRow(h.Address.ToString(), h.Key.Value, h.Pod ?? "", h.Node.Value, h.From.Stamp(), h.To?.Stamp() ?? "(held)",
                h.ReleaseReason ?? "");
        return table;
    }

    private static readonly JsonSerializerOptions Indented =
        new(Romana.Actors.Persistence.RomanaSerializer.Options) { WriteIndented = true };

    private static void Print<T>(T value) => Console.WriteLine(JsonSerializer.Serialize(value, Indented));

    private static string Stamp(this DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture);

    private static int Bad(string message)
    {
        Console.Error.WriteLine($"romana: {message}");
        return CommandLineGuard.BadInput;
    }
}
