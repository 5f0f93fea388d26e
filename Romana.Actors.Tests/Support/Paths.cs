namespace Romana.Actors.Tests.Support;

public static class Paths
{
    /// <summary>The clone's root: the folder holding Romana.sln, found by walking up from the test binaries.</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>CI lays ../shared beside the clone, read-only; the conformance vectors are there.</summary>
    public static string Shared => Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));

    public static string IpamVectors => Conformance("ipam");

    /// <summary>The NetworkPolicy truth tables.</summary>
    public static string NetpolCases => Conformance("netpol");

    private static string Conformance(string kind)
    {
        var folder = Path.Combine(Shared, "conformance", kind);
        return Directory.Exists(folder)
            ? folder
            : throw new DirectoryNotFoundException(
                $"{folder} is missing: the conformance vectors are expected in ../shared beside the clone");
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Romana.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no Romana.sln above {AppContext.BaseDirectory}");
    }
}
