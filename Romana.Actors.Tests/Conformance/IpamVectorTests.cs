using Romana.Actors.Tests.Support;
using Romana.Host.Cli;
using Romana.Host.Ipam;

namespace Romana.Actors.Tests.Conformance;

/// <summary>Every shared IPAM vector, on the real actors and a real SQLite journal, plain and on recovered state.</summary>
public class IpamVectorTests
{
    public static TheoryData<string, int> Vectors()
    {
        var data = new TheoryData<string, int>();
        foreach (var file in Directory.GetFiles(Paths.IpamVectors, "*.json").Order())
            foreach (var restartEvery in new[] { 0, 3 })
                data.Add(Path.GetFileName(file), restartEvery);
        return data;
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public async Task Vector_passes(string file, int restartEvery)
    {
        var vector = ConformanceVectorReader.Read(Path.Combine(Paths.IpamVectors, file));
        var outcome = await new VectorRunner(restartEvery).RunAsync(vector);
        Assert.True(outcome.Passed, outcome.Failure);
    }

    [Fact]
    public void The_shared_folder_holds_vectors() => Assert.NotEmpty(Directory.GetFiles(Paths.IpamVectors, "*.json"));

    [Fact]
    public async Task The_command_prints_a_line_per_vector_and_the_totals()
    {
        var output = new StringWriter();
        var exit = await IpamCommands.RunVectorsAsync([Paths.IpamVectors], restartEvery: 0, json: false, output);
        var lines = output.ToString().Trim().Split('\n').Select(l => l.Trim()).ToList();
        var count = Directory.GetFiles(Paths.IpamVectors, "*.json").Length;
        Assert.Equal(0, exit);
        Assert.Equal(count, lines.Count(l => l.StartsWith("PASS ")));
        Assert.Equal($"{count} passed, 0 failed", lines[^1]);
    }

    [Fact]
    public async Task A_wrong_expectation_fails_with_the_step_and_both_values()
    {
        using var folder = new TempFolder();
        var file = folder.Write("wrong.json", """
            { "name": "wrong",
              "topology": { "podCidr": "10.0.0.0/30", "blockPrefixLength": 30, "zones": [ { "name": "z", "subnets": [ { "id": "s" } ] } ] },
              "steps": [ { "op": "addNode", "node": "n", "subnet": "s", "ip": "192.168.0.1", "expect": "ok" },
                         { "op": "allocate", "node": "n", "key": "k", "expect": "10.0.0.3" } ] }
            """);
        var output = new StringWriter();
        var exit = await IpamCommands.RunVectorsAsync([file], 0, false, output);
        Assert.Equal(CommandLineGuard.Failed, exit);
        Assert.Contains("FAIL wrong: step 2: expected \"10.0.0.3\", got \"10.0.0.0\"", output.ToString());
        Assert.Contains("0 passed, 1 failed", output.ToString());
    }

    [Theory]
    [InlineData("""{ "name": "x", "steps": [] }""", "$.topology: missing")]
    [InlineData("""{ "name": "x", "topology": { "podCidr": "10.0.0.0/30", "blockPrefixLength": "30", "zones": [] } }""",
        "$.topology.blockPrefixLength = \"30\": expected an integer")]
    [InlineData("""
        { "name": "x", "topology": { "podCidr": "10.0.0.0/30", "blockPrefixLength": 30, "zones": [] },
          "steps": [ { "op": "fly", "expect": "ok" } ] }
        """, "$.steps[0].op = \"fly\": unknown op")]
    [InlineData("""
        { "name": "x", "topology": { "podCidr": "10.0.0.0/30", "blockPrefixLength": 30, "zones": [] },
          "steps": [ { "op": "allocate", "node": "n", "expect": "ok" } ] }
        """, "$.steps[0].key: missing")]
    [InlineData("""{ "name": """, "$.name: not valid JSON at line 1")]
    public async Task A_malformed_vector_gets_one_line_naming_the_file_and_the_field(string json, string expected)
    {
        using var folder = new TempFolder();
        var file = folder.Write("bad.json", json);
        var output = new StringWriter();
        var exit = await IpamCommands.RunVectorsAsync([file], 0, false, output);
        var error = output.ToString().Split('\n').Single(l => l.StartsWith("ERROR"));
        Assert.Equal(CommandLineGuard.Failed, exit);
        Assert.Contains(file, error);
        Assert.Contains(expected, error);
    }
}

public sealed class TempFolder : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("romana-test-");

    public string Path => _folder.FullName;

    public string Write(string name, string content)
    {
        var path = System.IO.Path.Combine(_folder.FullName, name);
        File.WriteAllText(path, content);
        return path;
    }

    public void Dispose() => _folder.Delete(recursive: true);
}
