using System.Diagnostics;
using Akka.Event;

namespace Romana.Host.Dataplane;

/// <summary>
/// Warnings that a flood could repeat thousands of times a second: at most one line per kind per interval; the next line
/// of that kind says how many were held back meanwhile, and <see cref="Flush"/> says it for every kind at the end.
/// </summary>
public sealed class RateLimitedLog(ILoggingAdapter log, TimeSpan interval)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, (long NextAt, int Held, string Last)> _kinds = new();

    public void Warning(string kind, string message)
    {
        int held;
        lock (_gate)
        {
            var now = Stopwatch.GetTimestamp();
            if (_kinds.TryGetValue(kind, out var state) && now < state.NextAt)
            {
                _kinds[kind] = state with { Held = state.Held + 1, Last = message };
                return;
            }
            held = state.Held;
            _kinds[kind] = (now + (long)(interval.TotalSeconds * Stopwatch.Frequency), 0, message);
        }
        log.Warning(held == 0 ? "{0}" : "{0} ({1} more like it since the last such line)", message, held);
    }

    /// <summary>The count of every kind's lines held back, with the last of them.</summary>
    public void Flush()
    {
        List<(int Held, string Last)> pending;
        lock (_gate)
        {
            pending = [.. _kinds.Values.Where(k => k.Held > 0).Select(k => (k.Held, k.Last))];
            _kinds.Clear();
        }
        foreach (var (held, last) in pending) log.Warning("{0} ({1} lines like it held back; this is the last)", last, held);
    }
}
