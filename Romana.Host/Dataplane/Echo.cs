using System.Text;

namespace Romana.Host.Dataplane;

/// <summary>
/// Values that a daemon-side error or log line quotes: at most <see cref="MaxQuoted"/> characters of them, then how long
/// they were, so a request (or a setting) of any size never makes a message of that size; control characters are escaped,
/// so a quoted value never starts a line of its own in a log.
/// </summary>
public static class Echo
{
    public const int MaxQuoted = 100;

    /// <summary>Whole messages made elsewhere (the IPAM's) are cut here, in case they quote a value that was not bounded.</summary>
    public const int MaxMessage = 1000;

    /// <summary>"abc" as it is; a longer value as its first 100 characters, "…" and " (N characters)".</summary>
    public static string Of(string? value)
    {
        if (value is null) return "";
        var shown = value.Length <= MaxQuoted ? value : value[..MaxQuoted];
        var text = Escaped(shown);
        return value.Length <= MaxQuoted ? text : $"{text}… ({value.Length} characters)";
    }

    /// <summary>A message cut to <see cref="MaxMessage"/> characters, saying how long it was.</summary>
    public static string Capped(string message) =>
        message.Length <= MaxMessage ? Escaped(message) : $"{Escaped(message[..MaxMessage])}… ({message.Length} characters)";

    private static string Escaped(string text)
    {
        if (!text.Any(char.IsControl)) return text;
        var escaped = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            if (c == '\n') escaped.Append("\\n");
            else if (c == '\r') escaped.Append("\\r");
            else if (c == '\t') escaped.Append("\\t");
            else if (char.IsControl(c)) escaped.Append($"\\u{(int)c:x4}");
            else escaped.Append(c);
        }
        return escaped.ToString();
    }
}
