using Romana.Actors.Tests.Support;
using Romana.Fuzz;

namespace Romana.Actors.Tests.Fuzz;

/// <summary>
/// Every input of the fuzz corpus (Romana.Fuzz/corpus/TARGET/*), run through its target without a fuzzer: the seeds and
/// every input a fuzzer found (kept there as crash-*), so that a finding, once fixed, stays fixed. An input passes when
/// the parser read it or refused it with its own exception; anything else escapes the target and fails the test.
/// </summary>
public class FuzzCorpusTests
{
    private static string Corpus => Path.Combine(Paths.RepositoryRoot, "Romana.Fuzz", "corpus");

    public static TheoryData<string, string> Inputs()
    {
        var inputs = new TheoryData<string, string>();
        foreach (var target in FuzzTargets.Names)
            foreach (var file in Directory.GetFiles(Path.Combine(Corpus, target)).Order(StringComparer.Ordinal))
                inputs.Add(target, Path.GetFileName(file));
        return inputs;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Each_corpus_input_is_read_or_refused_by_the_parser_s_own_error(string target, string file) =>
        FuzzTargets.Named(target)!.Run(File.ReadAllBytes(Path.Combine(Corpus, target, file)));

    [Fact]
    public void Every_target_has_a_corpus_and_every_corpus_a_target()
    {
        Assert.Equal(FuzzTargets.Names.Order(StringComparer.Ordinal),
            Directory.GetDirectories(Corpus).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.All(FuzzTargets.Names, target => Assert.NotEmpty(Directory.GetFiles(Path.Combine(Corpus, target))));
    }
}
