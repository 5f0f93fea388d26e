using System.Collections.Immutable;
using System.Diagnostics;
using Romana.Actors.Addressing;
using Romana.Actors.Policy;

namespace Romana.Host.Policy;

/// <summary>A probe a runner could not send, with why (an SCTP probe on a kernel without SCTP).</summary>
public sealed record SkippedProbe(int Probe, int Port, PolicyProtocol Protocol, string Reason)
{
    public override string ToString() => $"probe {Probe} ({Port}/{Protocol.ToString().ToUpperInvariant()}) skipped: {Reason}";
}

/// <summary>
/// One case as a runner answered it: the pairs that disagree with the case, the probes it could not send, and (the
/// dataplane) the packets the node's table dropped per pod and direction while the probes ran.
/// </summary>
public sealed record CaseOutcome(string Name, string File, ImmutableArray<CaseMismatch> Mismatches, ImmutableArray<SkippedProbe> Skipped,
    TimeSpan Took)
{
    public ImmutableArray<PolicyDrops> Drops { get; init; } = [];

    public bool Passed => Mismatches.IsEmpty;

    /// <summary>How many wrong pairs a FAIL line shows; the rest are counted.</summary>
    public const int Shown = 3;

    /// <summary>The conformance README's line: <c>PASS name</c>, or <c>FAIL name: </c> and the first wrong pairs.</summary>
    public string Line => Passed
        ? $"PASS {Name}"
        : $"FAIL {Name}: {string.Join("; ", Mismatches.Take(Shown))}"
          + (Mismatches.Length > Shown ? $" (and {Mismatches.Length - Shown} more)" : "");
}

/// <summary>The pure evaluator as a runner: every probe answered by <see cref="PolicyEvaluator"/>.</summary>
public static class EvaluatorCheck
{
    public static CaseOutcome Run(PolicyCase @case)
    {
        var started = Stopwatch.GetTimestamp();
        var mismatches = PolicyCaseRunner.Evaluate(@case);
        return new CaseOutcome(@case.Name, @case.File, mismatches, [], Stopwatch.GetElapsedTime(started));
    }
}
