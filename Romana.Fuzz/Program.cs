using Romana.Fuzz;
using SharpFuzz;

// romana-fuzz list                 the targets
// romana-fuzz TARGET               under afl-fuzz (scripts/fuzz.sh): one input after another from AFL; alone: stdin, once
// romana-fuzz TARGET FILE...       each file once, without a fuzzer: "ok" or the finding with its stack; exit 1 on a finding
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.Error.WriteLine("usage: romana-fuzz list | TARGET [FILE...]");
    return args.Length == 0 ? 2 : 0;
}
if (args[0] == "list")
{
    foreach (var each in FuzzTargets.All) Console.WriteLine($"{each.Name,-16} {each.Covers}");
    return 0;
}
if (!FuzzTargets.Names.Contains(args[0]))
{
    Console.Error.WriteLine($"romana-fuzz: no target '{args[0]}' (known: {string.Join(", ", FuzzTargets.Names)})");
    return 2;
}
if (args.Length == 1)
{
    // The target is looked up inside the first run: nothing instrumented may run before Fuzzer.Run.
    FuzzTarget? fuzzed = null;
    Fuzzer.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        (fuzzed ??= FuzzTargets.Named(args[0])!).Run(buffer.ToArray());
    });
    return 0;
}
var target = FuzzTargets.Named(args[0])!;
var findings = 0;
foreach (var file in args[1..])
{
    try
    {
        target.Run(File.ReadAllBytes(file));
        Console.WriteLine($"ok       {file}");
    }
    catch (Exception e)
    {
        findings++;
        Console.WriteLine($"FINDING  {file}: {e}");
    }
}
return findings == 0 ? 0 : 1;
