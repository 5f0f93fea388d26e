using Akka.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Tests.Ipam;
using Romana.Actors.Tests.Support;
using Romana.Host.Composition;
using Romana.Host.Ipam;
using static Romana.Actors.Ipam.IpamMessages;

namespace Romana.Actors.Tests.Persistence;

/// <summary>The same actors on PostgreSQL (provider PostgreSQL.15), a real server started for the tests.</summary>
[Collection(PostgreSqlCollection.Name)]
public class PostgreSqlJournalTests(PostgreSqlServer server)
{
    [SkippableFact]
    public async Task Every_vector_passes_on_postgresql_also_on_recovered_state()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        var runner = new VectorRunner(restartEvery: 3, journals: server.CreateJournalAsync);
        foreach (var file in Directory.GetFiles(Paths.IpamVectors, "*.json").Order())
        {
            var outcome = await runner.RunAsync(ConformanceVectorReader.Read(file));
            Assert.True(outcome.Passed, $"{outcome.Name}: {outcome.Failure}");
        }
    }

    [SkippableFact]
    public async Task State_after_recovery_equals_state_before_on_postgresql()
    {
        Skip.If(server.Unavailable is not null, server.Unavailable);
        await using var journal = await server.CreateJournalAsync();
        var quiet = ConfigurationFactory.ParseString("akka.loglevel = WARNING");
        var settings = Configuration.IpamSettings.Default with { SnapshotEvery = 5 };
        var ipam = new StartedIpam(await RomanaHost.StartIpamAsync(Topologies.TwoZones(), journal.Settings, quiet, settings));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new("a"), new("s1"), "10.1.0.1")));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new AddNode(new("b"), new("s3"), "10.1.0.2")));
        for (var i = 0; i < 30; i++)
            Assert.IsType<AddressAssigned>(await ipam.AskAsync(new Allocate(new(i % 2 == 0 ? "a" : "b"), new($"k{i}"))));
        Assert.IsType<Succeeded>(await ipam.AskAsync(new Release(new("k4"), null)));
        var before = (IpamStateView)await ipam.AskAsync(new GetIpamState());
        await ipam.DisposeAsync();

        ipam = new StartedIpam(await RomanaHost.StartIpamAsync(Topologies.TwoZones(), journal.Settings, quiet, settings));
        var after = (IpamStateView)await ipam.AskAsync(new GetIpamState());
        await ipam.DisposeAsync();
        IpamInvariants.Check(after);
        Assert.Equal(IpamInvariants.Json(before), IpamInvariants.Json(after));
    }
}
