namespace Romana.Fuzz;

/// <summary>
/// One parser under the fuzzer: <see cref="Run"/> feeds it one input and returns when the parser kept its contract, that
/// is it read the input or refused it with its own exception type and a message. Anything that escapes
/// <see cref="Run"/> is a finding: another exception (NullReference, IndexOutOfRange, ...), or a
/// <see cref="FuzzFinding"/> for a broken promise the parser's exception type would have hidden (a round trip that does
/// not come back, an error of the wrong code, a loop that does not end).
/// </summary>
/// <param name="Name">The name scripts/fuzz.sh and the corpus folder use: cni-config, ec2-query, ...</param>
/// <param name="Covers">What it feeds, for <c>romana-fuzz list</c> and the README.</param>
public sealed record FuzzTarget(string Name, string Covers, Action<byte[]> Run);

/// <summary>A parser broke a promise that is not an exception of its own: the message says which.</summary>
public sealed class FuzzFinding(string message, Exception? inner = null) : Exception(message, inner)
{
    public static void Require(bool condition, string message)
    {
        if (!condition) throw new FuzzFinding(message);
    }
}

/// <summary>Every target, by name.</summary>
public static class FuzzTargets
{
    /// <summary>
    /// The names, known without touching a target: under the fuzzer no instrumented code may run before SharpFuzz has mapped
    /// AFL's shared memory, and the targets' own static fields call into Romana's (instrumented) assemblies.
    /// </summary>
    public static IReadOnlyList<string> Names { get; } =
        ["cni-config", "cni-env", "daemon-protocol", "cluster", "scenario", "vector", "plan", "ec2-query", "ec2-response"];

    public static IEnumerable<FuzzTarget> All => Names.Select(name => Named(name)!);

    public static FuzzTarget? Named(string name) => name switch
    {
        "cni-config" => CniTargets.Config,
        "cni-env" => CniTargets.Environment,
        "daemon-protocol" => DaemonProtocolTarget.Target,
        "cluster" => DocumentTargets.Cluster,
        "scenario" => DocumentTargets.Scenario,
        "vector" => DocumentTargets.Vector,
        "plan" => DocumentTargets.Plan,
        "ec2-query" => Ec2FuzzTargets.Query,
        "ec2-response" => Ec2FuzzTargets.Response,
        _ => null,
    };
}
