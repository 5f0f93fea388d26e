using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Configuration;
using Romana.Actors.Addressing;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using Romana.Host.Composition;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Host.Ipam;

public sealed record VectorOutcome(string Name, bool Passed, string? Failure);

/// <summary>
/// Drives the real IPAM actors with a real SQLite journal in a temporary folder through each vector's steps, and
/// compares every outcome. With <c>restartEvery</c> K, the actor system is terminated and recreated every K steps,
/// so the remaining steps run on state recovered from the journal.
/// </summary>
public sealed class VectorRunner(int restartEvery = 0, IpamSettings? settings = null, Func<Task<FreshJournal>>? journals = null)
{
    private static readonly Config Quiet = ConfigurationFactory.ParseString("akka.loglevel = WARNING");

    public async Task<VectorOutcome> RunAsync(ConformanceVector vector, CancellationToken cancel = default)
    {
        if (!TopologyCarver.TryCarve(vector.Topology, out var topology, out var error))
            return vector.ExpectLoad == "error:invalid"
                ? new(vector.Name, true, null)
                : new(vector.Name, false, $"load: expected ok, got error:{error.CodeText} ({error.Message})");
        if (vector.ExpectLoad != "ok")
            return new(vector.Name, false, $"load: expected {vector.ExpectLoad}, got ok");

        var fresh = await (journals ?? FreshJournal.SqliteAsync)();
        var journal = fresh.Settings;
        RomanaHost? romana = null;
        try
        {
            romana = await RomanaHost.StartIpamAsync(topology, journal, Quiet, settings);
            for (var i = 0; i < vector.Steps.Count; i++)
            {
                cancel.ThrowIfCancellationRequested();
                if (restartEvery > 0 && i > 0 && i % restartEvery == 0)
                {
                    await romana.DisposeAsync();
                    romana = null;
                    romana = await RomanaHost.StartIpamAsync(topology, journal, Quiet, settings);
                }
                var step = vector.Steps[i];
                var actual = await ExecuteAsync(romana.Ipam, step);
                if (!JsonNode.DeepEquals(step.Expect, actual))
                    return new(vector.Name, false,
                        $"step {step.Number}: expected {Render(step.Expect)}, got {Render(actual)} ({step.Describe()})");
            }
            return new(vector.Name, true, null);
        }
        catch (IpamStartException e)
        {
            return new(vector.Name, false, $"the IPAM did not start: {e.Message}");
        }
        finally
        {
            if (romana is not null) await romana.DisposeAsync();
            await fresh.DisposeAsync();
        }
    }

    private static async Task<JsonNode> ExecuteAsync(IpamClient ipam, VectorStep step)
    {
        string F(string name) => step.Fields[name];
        object message = step.Op switch
        {
            "addNode" => new AddNode(new NodeName(F("node")), new SubnetId(F("subnet")), F("ip")),
            "removeNode" => new RemoveNode(new NodeName(F("node"))),
            "allocate" => new Allocate(new NodeName(F("node")), new AllocationKey(F("key"))),
            "release" => step.Fields.TryGetValue("key", out var key)
                ? new Release(new AllocationKey(key), null)
                : new Release(null, F("address")),
            "reserve" => new Reserve(F("cidr")),
            "unreserve" => new Unreserve(F("cidr")),
            "blocks" => new GetBlocks(new NodeName(F("node"))),
            "prefixes" => new GetPrefixes(),
            _ => throw new InvalidOperationException($"op {step.Op} passed validation but has no handler"),
        };
        return await ipam.AskAsync(message) switch
        {
            Failed failed => JsonValue.Create($"error:{failed.Error.CodeText}"),
            AddressAssigned assigned => JsonValue.Create(assigned.Address.ToString()),
            BlocksOf blocks => new JsonArray([.. blocks.Blocks.Select(b => (JsonNode)JsonValue.Create(b.ToString()))]),
            PrefixList prefixes => new JsonObject(prefixes.Prefixes.Select(p => KeyValuePair.Create(p.Name,
                (JsonNode?)JsonValue.Create(p.Prefix.ToString())))),
            _ => JsonValue.Create("ok"),
        };
    }

    private static string Render(JsonNode? node) => node?.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) ?? "null";
}

/// <summary>An empty journal for one run, and how to remove it afterwards.</summary>
public sealed class FreshJournal(JournalSettings settings, Func<Task> remove) : IAsyncDisposable
{
    public JournalSettings Settings { get; } = settings;

    /// <summary>
    /// A SQLite file in a temporary folder of its own, removed when disposed, at exit, or when the command is interrupted
    /// (<see cref="Cli.TemporaryFolder"/>).
    /// </summary>
    public static Task<FreshJournal> SqliteAsync()
    {
        var folder = Cli.TemporaryFolder.Create("romana-journal-");
        return Task.FromResult(new FreshJournal(JournalSettings.Sqlite(Path.Combine(folder.Path, "journal.db")), () =>
        {
            folder.Dispose();
            return Task.CompletedTask;
        }));
    }

    public async ValueTask DisposeAsync() => await remove();
}
