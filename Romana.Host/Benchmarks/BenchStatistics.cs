namespace Romana.Host.Benchmarks;

/// <summary>The figures every benchmark reports from its samples.</summary>
public static class BenchStatistics
{
    /// <summary>The value at or above which a share <paramref name="p"/> of the samples lies (nearest rank); 0 for none.</summary>
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (values.Count == 0) return 0;
        var sorted = values.Order().ToArray();
        return sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(p * sorted.Length) - 1)];
    }

    /// <summary>The middle sample, or the mean of the two middle ones; 0 for none.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return 0;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
