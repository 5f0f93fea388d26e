using System.CommandLine;
using System.Globalization;
using System.Numerics;

namespace Romana.Host.Cli;

/// <summary>Counts given on the command line are bounded like counts in documents: a refusal names the option and the range.</summary>
public static class OptionBounds
{
    /// <summary>Refuses a value outside <paramref name="least"/>..<paramref name="most"/>, naming the option and the range.</summary>
    public static Option<T> Within<T>(this Option<T> option, T least, T most) where T : struct, INumber<T>
    {
        option.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<T>();
            if (value < least || value > most)
                result.AddError(string.Create(CultureInfo.InvariantCulture,
                    $"{result.Option.Name} must be between {least:N0} and {most:N0} (not {value:N0})"));
        });
        return option;
    }
}
