using Akka.Cluster.Hosting;
using Akka.Event;
using Akka.Hosting;
using Romana.Host.Persistence;

namespace Romana.Host.Audit;

/// <summary>Where the projections run: in this process (a single-node daemon, a simulation), or once per cluster.</summary>
public enum ProjectionPlacement { Local, ClusterSingleton }

public static class AuditHosting
{
    /// <summary>The runner's name, and the cluster singleton's.</summary>
    public const string RunnerName = "audit-projections";

    /// <summary>
    /// The projection runner (<see cref="ProjectionRunner"/>) on <paramref name="journal"/>'s audit store, with the read
    /// journal it reads through; nothing when romana.audit.projections.enabled is off or the journal is in memory (no store).
    /// </summary>
    public static AkkaConfigurationBuilder AddRomanaProjections(this AkkaConfigurationBuilder akka, JournalSettings journal,
        AuditSettings settings, ProjectionPlacement placement = ProjectionPlacement.Local)
    {
        if (!settings.Projections.Enabled || journal.Journal == JournalKind.Memory) return akka;
        akka.AddRomanaAudit(journal);
        Akka.Actor.Props Runner(Akka.Actor.ActorSystem system)
        {
            var store = AuditStore.For(journal, readOnly: false)!;
            return ProjectionRunner.Props(ProjectionCatchUp.Registered(store, settings, message => system.Log.Info(message)),
                new JournalMarks(store), settings.Projections, cancel => PersistenceHosting.LastOrderingAsync(journal, cancel));
        }
        if (placement == ProjectionPlacement.ClusterSingleton)
            return akka.WithSingleton<ProjectionRunner>(RunnerName, (system, _, _) => Runner(system), new ClusterSingletonOptions(),
                createProxyToo: false);
        return akka.WithActors((system, registry) => registry.Register<ProjectionRunner>(system.ActorOf(Runner(system), RunnerName)));
    }
}
