using System.Text.Json;
using Akka.Configuration;
using Akka.Event;
using Microsoft.Extensions.DependencyInjection;
using Romana.Actors.Addressing;
using Romana.Actors.Tests.Support;
using Romana.Host.Composition;
using Romana.Host.Observability;
using Romana.Host.Persistence;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Observability;

/// <summary>romana.log.format = json: every line Akka logs is one JSON object; each persisted event is a line with its cause.</summary>
public class JsonLogTests
{
    [Fact]
    public async Task With_the_json_switch_every_log_line_parses_and_an_allocation_is_a_line_with_its_cause()
    {
        var name = $"json-log-{Guid.NewGuid():N}";
        var lines = new StringWriter();
        JsonLogger.RedirectFor(name, lines);
        var romana = ConfigurationFactory.ParseString("romana.log.format = json\nakka.loglevel = INFO");
        var logs = LogSettings.From(romana);
        Assert.Equal((LogFormat.Json, true), (logs.Format, logs.Events));
        var topology = Topologies.OneSubnet();
        await using (var host = await RomanaHost.StartAsync(logs.AkkaConfig().WithFallback(romana), akka => akka
                         .AddRomanaPersistence(JournalSettings.InMemory())
                         .AddRomanaMetrics(topology, logEvents: logs.Events)
                         .AddRomanaIpam(topology), services => services.AddRomanaMetrics(), name))
        {
            Assert.IsType<Succeeded>(await host.Ipam.AskAsync(new AddNode(new NodeName("n1"), new SubnetId("s1"), "10.1.0.1")));
            Assert.IsType<AddressAssigned>(await host.Ipam.AskAsync(new Allocate(new NodeName("n1"), new AllocationKey("pod-a"))));
            host.System.Log.Error(new InvalidOperationException("broken on purpose"), "an error with its exception");
            await EventuallyAsync(() => Text(lines) is var text && text.Contains("an error with its exception")
                && text.Contains("AddressesAllocated"));
        }

        var all = Text(lines).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(all);
        var parsed = all.Select(line => JsonDocument.Parse(line).RootElement).ToList();
        foreach (var line in parsed)
        {
            Assert.Equal(DateTimeOffset.Parse(line.GetProperty("time").GetString()!).Offset, TimeSpan.Zero);
            Assert.Contains(line.GetProperty("level").GetString(), new[] { "debug", "info", "warning", "error" });
            Assert.False(string.IsNullOrEmpty(line.GetProperty("source").GetString()));
            Assert.Equal(JsonValueKind.String, line.GetProperty("message").ValueKind);
        }
        var allocated = Assert.Single(parsed, l => l.GetProperty("message").GetString()!.StartsWith("AddressesAllocated node=n1 "));
        Assert.Equal(("romana.events", "info", "allocated"), (allocated.GetProperty("source").GetString(),
            allocated.GetProperty("level").GetString(), allocated.GetProperty("cause").GetString()));
        Assert.Contains("pod-a", allocated.GetProperty("message").GetString());
        Assert.Contains(parsed, l => l.GetProperty("source").GetString() == "romana.events"
            && l.GetProperty("message").GetString()!.StartsWith("NodeJoined subnet=s1 node=n1 "));
        var error = Assert.Single(parsed, l => l.GetProperty("message").GetString() == "an error with its exception");
        Assert.Equal(("error", "InvalidOperationException: broken on purpose"),
            (error.GetProperty("level").GetString(), error.GetProperty("cause").GetString()));
    }

    [Fact]
    public void A_format_that_is_neither_text_nor_json_is_refused_naming_the_setting()
    {
        var error = Assert.ThrowsAny<Exception>(() => LogSettings.From(ConfigurationFactory.ParseString("romana.log.format = yaml")));
        Assert.Contains("romana.log.format", error.Message);
        Assert.Contains("\"yaml\" is neither text nor json", error.Message);
    }

    /// <summary>The lines so far (the logger writes under a lock on the writer).</summary>
    private static string Text(StringWriter lines)
    {
        lock (lines) return lines.ToString();
    }

    private static async Task EventuallyAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "not within 20 s");
            await Task.Delay(50);
        }
    }
}
