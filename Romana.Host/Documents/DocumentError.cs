namespace Romana.Host.Documents;

/// <summary>
/// What is wrong in a JSON document, for one line: the file (when there is one), the JSON path from the document's root
/// (<c>$.nodes[3].pods</c>, the style System.Text.Json uses), the value found there as JSON (null when the field is
/// missing), and the problem.
/// </summary>
public sealed record DocumentError(string? Source, string Path, string? Value, string Problem)
{
    /// <summary><c>cluster.json: $.nodes[3].pods = -1: must be 0 or more</c>; <c>$.nodes[3].eni: missing</c>.</summary>
    public override string ToString() =>
        OneLine($"{(Source is null ? "" : $"{Source}: ")}{Path}{(Value is null ? "" : $" = {Value}")}: {Problem}");

    /// <summary>
    /// Control characters escaped as JSON writes them: a property name in the path may hold a newline, and the message is one
    /// line.
    /// </summary>
    private static string OneLine(string text) =>
        text.Any(char.IsControl) ? string.Concat(text.Select(c => char.IsControl(c) ? Escape(c) : c.ToString())) : text;

    private static string Escape(char c) => c switch
    {
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ => $"\\u{(int)c:x4}",
    };
}

/// <summary>A document that cannot be used; the message is one line naming the JSON path and the value.</summary>
public abstract class DocumentException : Exception
{
    protected DocumentException(DocumentError error) : base(error.ToString()) => Error = error;

    /// <summary>A refusal that has no place in the document: a missing file, or one found after reading (by the IPAM).</summary>
    protected DocumentException(string message) : base(message)
    {
    }

    public DocumentError? Error { get; }
}

/// <summary>
/// Thrown by the checks of a document record, with the path only: the reader that owns the document's text adds the
/// value found at that path and turns it into its own exception.
/// </summary>
internal sealed class DocumentProblem(string path, string problem) : Exception($"{path}: {problem}")
{
    public string Path { get; } = path;
    public string Problem { get; } = problem;
}
