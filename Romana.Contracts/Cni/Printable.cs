using System.Text;

namespace Romana.Contracts.Cni;

/// <summary>
/// A value from outside (an environment variable, a configuration field, a request) as an error message or a log line
/// may quote it: in single quotes, every character outside printable ASCII escaped (so a newline cannot start a forged log
/// line, nor a bidirectional override reorder one), and cut after a bound (so a 6 MB field makes a short message).
/// </summary>
public static class Printable
{
    public const int DefaultBound = 80;

    /// <summary>
    /// 'value' with \\, \n, \r, \t, \0 and \uXXXX escapes; past <paramref name="bound"/> characters of the value,
    /// "'...' (N characters)". Null is written null.
    /// </summary>
    public static string Quote(string? value, int bound = DefaultBound) =>
        value is null ? "null" : Escape(value, bound, quoted: true);

    /// <summary>
    /// A sentence from elsewhere (a daemon's error, an exception's message) escaped like a quote, without the quotes and
    /// with backslashes kept (it may quote values escaped already); past <paramref name="bound"/> characters,
    /// "... (N characters)".
    /// </summary>
    public static string Text(string? value, int bound = 500) => Escape(value ?? "", bound, quoted: false);

    private static string Escape(string value, int bound, bool quoted)
    {
        var shown = Math.Min(value.Length, bound);
        var text = new StringBuilder(shown + 24);
        if (quoted) text.Append('\'');
        for (var i = 0; i < shown; i++)
        {
            var c = value[i];
            switch (c)
            {
                case '\\' when quoted: text.Append(@"\\"); break;
                case '\'' when quoted: text.Append(@"\'"); break;
                case '\n': text.Append(@"\n"); break;
                case '\r': text.Append(@"\r"); break;
                case '\t': text.Append(@"\t"); break;
                case '\0': text.Append(@"\0"); break;
                case >= ' ' and <= '~': text.Append(c); break;
                default: text.Append(@"\u").Append(((int)c).ToString("x4")); break;
            }
        }
        if (value.Length > shown) text.Append("...");
        if (quoted) text.Append('\'');
        if (value.Length > shown) text.Append($" ({value.Length} characters)");
        return text.ToString();
    }
}
