using System.Globalization;
using System.Text;

namespace Romana.Actors;

/// <summary>
/// Values from input (documents, configuration, the command line) as error messages quote them: on one line (control
/// characters escaped), and at most <see cref="Longest"/> characters of them, then how long they were — so that a
/// megabyte written where a name belongs makes a one-line error, not a megabyte of error.
/// </summary>
public static class Quoting
{
    public const int Longest = 100;

    /// <summary><c>abc</c>, or the first 100 characters and <c>… (5,002 characters)</c>.</summary>
    public static string Bounded(string text)
    {
        var cut = text.Length <= Longest ? text.Length : Longest;
        if (cut < text.Length && char.IsHighSurrogate(text[cut - 1])) cut--;
        var shown = new StringBuilder(cut + 24);
        foreach (var c in text.AsSpan(0, cut))
        {
            if (!char.IsControl(c)) shown.Append(c);
            else shown.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", _ => $"\\u{(int)c:x4}" });
        }
        if (cut < text.Length) shown.Append(CultureInfo.InvariantCulture, $"… ({text.Length:N0} characters)");
        return shown.ToString();
    }

    /// <summary><c>'abc'</c>: <see cref="Bounded"/> between single quotes.</summary>
    public static string Quote(string? text) => $"'{Bounded(text ?? "")}'";
}
