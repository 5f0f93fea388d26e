using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Akka.Actor;
using Akka.Event;

namespace Romana.Actors.Tests.Support;

/// <summary>
/// An Akka logger (akka.loggers) that keeps every line its actor system logs, from the system's start on, for a test to
/// read: <see cref="Lines"/> of a system.
/// </summary>
public sealed class CollectingLogger : ReceiveActor
{
    public const string Hocon = "akka.loggers = [\"Romana.Actors.Tests.Support.CollectingLogger, Romana.Actors.Tests\"]";

    private static readonly ConditionalWeakTable<ActorSystem, ConcurrentQueue<string>> Logs = [];

    public CollectingLogger()
    {
        var lines = Logs.GetOrCreateValue(Context.System);
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(e => lines.Enqueue($"[{Level(e.LogLevel())}] {e.Message}{(e.Cause is null ? "" : $" ({e.Cause.Message})")}"));
    }

    private static string Level(LogLevel level) => level switch
    {
        LogLevel.DebugLevel => "DEBUG",
        LogLevel.InfoLevel => "INFO",
        LogLevel.WarningLevel => "WARNING",
        _ => "ERROR",
    };

    /// <summary>The lines the system logged so far, each as "[level] message".</summary>
    public static IReadOnlyList<string> Lines(ActorSystem system) => Logs.TryGetValue(system, out var lines) ? [.. lines] : [];
}
