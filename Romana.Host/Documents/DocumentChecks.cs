using Romana.Actors.Addressing;

namespace Romana.Host.Documents;

/// <summary>The checks the readers share; each names the path, and the reader adds the value written there.</summary>
internal static class DocumentChecks
{
    public static DocumentProblem Problem(string path, string problem) => new(path, problem);

    /// <summary>A string that must be given and say something.</summary>
    public static string Text(string? value, string path) => value switch
    {
        null => throw Problem(path, "missing"),
        _ when string.IsNullOrWhiteSpace(value) => throw Problem(path, "must not be empty"),
        _ => value,
    };

    /// <summary>A name or an id: given, not empty, and no longer than Kubernetes allows a node's name to be.</summary>
    public static string Name(string? value, string path) => Text(value, path).Length <= DocumentLimits.LongestName
        ? value!
        : throw Problem(path, $"longer than {DocumentLimits.LongestName} characters");

    /// <summary>A string that must be given, empty or not (conformance vectors leave its meaning to the run).</summary>
    public static string Present(string? value, string path) => value ?? throw Problem(path, "missing");

    public static T Present<T>(T? value, string path) where T : struct => value ?? throw Problem(path, "missing");

    public static T Present<T>(T? value, string path) where T : class => value ?? throw Problem(path, "missing");

    /// <summary>The items of a list that must be given, each an object, with their paths.</summary>
    public static List<(T Item, string Path)> Objects<T>(IReadOnlyList<T?>? list, string path) where T : class
    {
        var items = new List<(T, string)>();
        var given = Present(list, path);
        for (var i = 0; i < given.Count; i++)
            items.Add((given[i] ?? throw Problem($"{path}[{i}]", "expected an object"), $"{path}[{i}]"));
        return items;
    }

    public static string Cidr(string? value, string path) =>
        Ipv4Cidr.TryParse(Text(value, path), out _) ? value! : throw Problem(path, "not an IPv4 CIDR such as 10.0.0.0/24");

    public static string? OptionalCidr(string? value, string path) => value is null ? null : Cidr(value, path);

    public static int Between(int value, int least, int most, string path) =>
        value >= least && value <= most ? value : throw Problem(path, $"must lie between {least} and {most}");

    public static int AtLeast(int value, int least, string path) =>
        value >= least ? value : throw Problem(path, least == 0 ? "must be 0 or more" : $"must be at least {least}");
}
