using System.Collections.Concurrent;
using System.Text.Json;
using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace Romana.Host.Observability;

/// <summary>
/// A log line whose cause is not an exception: an event and why it happened. Its text form (what the text logger prints) is
/// "text; cause: cause"; the JSON logger writes the two apart.
/// </summary>
public sealed record CausedLine(string Text, string Cause)
{
    public override string ToString() => $"{Text}; cause: {Cause}";
}

/// <summary>
/// Akka's logger for romana.log.format = json: one JSON object per line on standard output, with the fields time (UTC,
/// ISO 8601), level, source, message and cause (the exception's type and message, or a <see cref="CausedLine"/>'s cause;
/// absent when there is none).
/// </summary>
public sealed class JsonLogger : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private static readonly ConcurrentDictionary<string, TextWriter> Redirected = new();
    private TextWriter _out = Console.Out;

    public JsonLogger()
    {
        Receive<InitializeLogger>(_ =>
        {
            _out = Redirected.GetValueOrDefault(Context.System.Name, Console.Out);
            Sender.Tell(new LoggerInitialized());
        });
        Receive<LogEvent>(e =>
        {
            var line = Line(e);
            lock (_out) _out.WriteLine(line);
            _out.Flush();
        });
    }

    /// <summary>Where a test reads the lines of the actor system named <paramref name="system"/> (set before it starts).</summary>
    public static void RedirectFor(string system, TextWriter writer) => Redirected[system] = writer;

    public static string Line(LogEvent e)
    {
        var (message, cause) = e.Message is CausedLine caused ? (caused.Text, caused.Cause) : (e.Message?.ToString() ?? "", null);
        if (e.Cause is { } exception) cause = $"{exception.GetType().Name}: {exception.Message}";
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("time", e.Timestamp.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ"));
            json.WriteString("level", e.LogLevel() switch
            {
                LogLevel.DebugLevel => "debug",
                LogLevel.InfoLevel => "info",
                LogLevel.WarningLevel => "warning",
                _ => "error",
            });
            json.WriteString("source", e.LogSource);
            json.WriteString("message", message);
            if (cause is not null) json.WriteString("cause", cause);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
