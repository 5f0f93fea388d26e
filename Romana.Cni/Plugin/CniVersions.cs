namespace Romana.Cni.Plugin;

/// <summary>The spec versions this plugin speaks and how their results differ.</summary>
internal static class CniVersions
{
    /// <summary>1.1.0 adds STATUS and GC; its result has the same shape as 1.0.0's.</summary>
    public const string Latest = "1.1.0";
    public static readonly string[] Supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", Latest];

    public static bool IsSupported(string? version) => version is not null && Supported.Contains(version);

    /// <summary>Before 1.0.0 each ips entry carried "version": "4" or "6" (types040 covers 0.3.0, 0.3.1 and 0.4.0).</summary>
    public static bool IpsCarryVersion(string version) => version.StartsWith("0.", StringComparison.Ordinal);

    public static void RequireSupported(string version)
    {
        if (!IsSupported(version))
            throw new CniException(CniErrorCode.IncompatibleVersion,
                $"incompatible CNI version {Romana.Contracts.Cni.Printable.Quote(version)}: " +
                $"romana supports {string.Join(", ", Supported)}");
    }
}
