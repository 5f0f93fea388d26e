using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Romana.Actors;
using Romana.Actors.Audit;
using Romana.Actors.Configuration;
using Romana.Actors.Ipam;
using Romana.Actors.Topology;
using Romana.Host.Persistence;

namespace Romana.Host.Composition;

/// <summary>
/// The composition root: a generic host whose actor system Akka.Hosting creates (the only place one is created), composed
/// from one <c>AddRomana…</c> extension per subsystem. The daemon, the simulation, `plan`, `audit`, the benchmarks and the
/// tests all start Romana here; what differs between them is which subsystems they compose and which adapters (clock,
/// EC2, probes, host network) they register, never the wiring.
/// </summary>
public sealed class RomanaHost : IAsyncDisposable
{
    private readonly IHost _host;

    private RomanaHost(IHost host) => _host = host;

    public IServiceProvider Services => _host.Services;
    public ActorSystem System => Services.GetRequiredService<ActorSystem>();
    public ActorRegistry Registry => Services.GetRequiredService<ActorRegistry>();

    /// <summary>The IPAM front door; only where the IPAM was composed.</summary>
    public IpamClient Ipam => Services.GetRequiredService<IpamClient>();

    /// <summary>The journal read through Akka.Persistence.Query; only where the audit was composed.</summary>
    public AuditJournal Audit => new(System, PersistenceHosting.ReadJournalId);

    /// <summary>
    /// A host builder with Romana's settings (from <paramref name="config"/>, unless <paramref name="services"/> registers its
    /// own), its default adapters, and the actor system composed by <paramref name="compose"/> on <paramref name="config"/>.
    /// </summary>
    public static HostApplicationBuilder CreateBuilder(Config config, Action<AkkaConfigurationBuilder> compose,
        Action<IServiceCollection>? services = null, string name = "romana")
    {
        // Under a command that handles the signals itself, neither the host nor the actor system stops on its own when one
        // arrives (Akka's shutdown hook answers SIGTERM too): the command stops what it is doing first, then the host (see
        // Cli.Interruption). A simulation whose actor system had stopped under it waited on its asks until the grace ran out.
        var command = Cli.Interruption.Current is not null;
        if (command)
            config = ConfigurationFactory.ParseString("akka.coordinated-shutdown.run-by-clr-shutdown-hook = off").WithFallback(config);
        config = config.WithFallback(RomanaConfig.Reference);
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        services?.Invoke(builder.Services);
        if (command) builder.Services.AddSingleton<IHostLifetime, CommandLifetime>();
        // Read now, not when first asked for: a setting that cannot be used is refused here, naming its file and itself,
        // before anything starts.
        AddSettings(builder.Services, () => IpamSettings.From(config));
        AddSettings(builder.Services, () => RouteSettings.From(config));
        AddSettings(builder.Services, () => HealthSettings.From(config));
        AddSettings(builder.Services, () => HostAgentSettings.From(config));
        builder.Services.TryAddSingleton<IClock>(SystemClock.Instance);
        builder.Services.TryAddSingleton(sp => new IpamClient(sp.GetRequiredService<ActorRegistry>().Get<IpamActor>(),
            sp.GetRequiredService<IpamSettings>()));
        builder.Services.AddAkka(name, akka =>
        {
            akka.AddHocon(config, HoconAddMode.Append);
            compose(akka);
        });
        return builder;
    }

    private static void AddSettings<T>(IServiceCollection services, Func<T> read) where T : class
    {
        if (!services.Any(d => d.ServiceType == typeof(T))) services.AddSingleton(read());
    }

    /// <summary>
    /// Builds and starts the host;
    /// when the IPAM is composed, returns once it has recovered (or throws <see cref="IpamStartException"/>).
    /// </summary>
    public static Task<RomanaHost> StartAsync(Config config, Action<AkkaConfigurationBuilder> compose,
        Action<IServiceCollection>? services = null, string name = "romana") =>
        StartAsync(CreateBuilder(config, compose, services, name));

    /// <summary>The IPAM alone on a journal: what `plan`, the vector runner, the demo, benchmarks and tests start.</summary>
    public static Task<RomanaHost> StartIpamAsync(ClusterTopology topology, JournalSettings journal, Config? config = null,
        IpamSettings? settings = null, string name = "romana") =>
        StartAsync(config ?? Config.Empty, akka => akka.AddRomanaPersistence(journal).AddRomanaIpam(topology), services =>
        {
            if (settings is not null) services.AddSingleton(settings);
        }, name);

    /// <summary>
    /// The journal for audit questions, opened read-only: nothing is created or changed, whatever the database is. Anything
    /// but a Romana journal (no such file, an empty file, not a database, no journal table) is a
    /// <see cref="ConfigurationError"/> that says what it is (<see cref="JournalProbe"/>).
    /// </summary>
    /// <param name="oneShot">Reads of what is in the journal now (questions), not a catch-up that must wait for writes in
    /// flight (<see cref="PersistenceHosting.AddRomanaAudit"/>).</param>
    public static async Task<RomanaHost> StartAuditAsync(JournalSettings journal, bool oneShot = true)
    {
        JournalProbe.Check(journal);
        return await StartAsync(ConfigurationFactory.ParseString("akka.loglevel = WARNING"),
            akka => akka.AddRomanaPersistence(journal, readOnly: true).AddRomanaAudit(journal, oneShot), name: "romana-audit");
    }

    public static async Task<RomanaHost> StartAsync(HostApplicationBuilder builder)
    {
        var host = builder.Build();
        var romana = new RomanaHost(host);
        try
        {
            await host.StartAsync();
            if (romana.Registry.TryGet<IpamActor>(out _)) await romana.Ipam.AwaitReadyAsync();
            return romana;
        }
        catch
        {
            await romana.StopAfterFailedStartAsync();
            throw;
        }
    }

    /// <summary>
    /// What started is stopped; a failure to stop what never fully started (the host throws when its hosted services were
    /// never resolved) must not hide the reason the start failed, which the caller rethrows.
    /// </summary>
    private async Task StopAfterFailedStartAsync()
    {
        try
        {
            await _host.StopAsync();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // the start's own failure is the one to report
        }
        _host.Dispose();
    }

    private sealed class CommandLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>Stops the hosted services in reverse order, then the actor system through its coordinated shutdown.</summary>
    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
