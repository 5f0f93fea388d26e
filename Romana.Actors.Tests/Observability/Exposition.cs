using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Romana.Actors.Tests.Observability;

/// <summary>The samples of a Prometheus text exposition, and promtool's verdict on it.</summary>
public sealed partial class Exposition(string text)
{
    public string Text { get; } = text;

    public IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels, double Value)> Samples { get; } = Parse(text);

    /// <summary>Every sample of <paramref name="name"/> whose labels include <paramref name="labels"/> ("key=value").</summary>
    public IEnumerable<double> Values(string name, params string[] labels) => Samples
        .Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Split('=')[0], out var v) && v == l.Split('=', 2)[1]))
        .Select(s => s.Value);

    public double Sum(string name, params string[] labels) => Values(name, labels).Sum();

    /// <summary>The one sample of <paramref name="name"/> with these labels.</summary>
    public double Single(string name, params string[] labels) => Assert.Single(Values(name, labels));

    /// <summary>The value of <paramref name="label"/> on each sample of <paramref name="name"/>, with the sample's value.</summary>
    public IReadOnlyDictionary<string, double> By(string name, string label) => Samples.Where(s => s.Name == name)
        .GroupBy(s => s.Labels[label]).ToDictionary(g => g.Key, g => g.Sum(s => s.Value));

    private static List<(string, IReadOnlyDictionary<string, string>, double)> Parse(string text)
    {
        var samples = new List<(string, IReadOnlyDictionary<string, string>, double)>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var match = SampleLine().Match(line);
            Assert.True(match.Success, $"not a sample line: {line}");
            var labels = LabelPair().Matches(match.Groups["labels"].Value)
                .ToDictionary(m => m.Groups["key"].Value, m => m.Groups["value"].Value);
            var value = match.Groups["value"].Value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                var v => double.Parse(v, CultureInfo.InvariantCulture),
            };
            samples.Add((match.Groups["name"].Value, labels, value));
        }
        return samples;
    }

    /// <summary>`promtool check metrics` on the text: its exit code and what it printed (null: promtool is not installed).</summary>
    public static (int ExitCode, string Output)? Promtool(string text)
    {
        var path = Environment.GetEnvironmentVariable("PATH")!.Split(':').Select(d => Path.Combine(d, "promtool"))
            .FirstOrDefault(File.Exists);
        if (path is null) return null;
        var start = new ProcessStartInfo(path, ["check", "metrics"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(text);
        process.StandardInput.Close();
        Assert.True(process.WaitForExit(30_000), "promtool did not finish within 30 s");
        return (process.ExitCode, output.Result + error.Result);
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)$")]
    private static partial Regex SampleLine();

    [GeneratedRegex("(?<key>[a-zA-Z_][a-zA-Z0-9_]*)=\"(?<value>(?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex LabelPair();
}
