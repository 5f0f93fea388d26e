using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using Romana.Actors;
using Romana.Actors.Addressing;

namespace Romana.Host.Documents;

/// <summary>
/// Reads a document in two steps: System.Text.Json turns the text into the document record (syntax, types, unknown or
/// repeated properties), then the reader's checks turn the record into domain records. Either way a problem becomes
/// one <see cref="DocumentError"/> naming the JSON path and the value written there.
/// </summary>
public static partial class DocumentReader
{
    private static readonly JsonWriterOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// The text as a <typeparamref name="TDocument"/>, checked by <paramref name="check"/>; every problem goes to
    /// <paramref name="fail"/>.
    /// </summary>
    public static TResult Read<TDocument, TResult>(string text, string? source, JsonTypeInfo<TDocument> type,
        Func<TDocument, TResult> check, Func<DocumentError, DocumentException> fail) where TDocument : class
    {
        TDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(text, type);
        }
        catch (JsonException e)
        {
            throw fail(Explain(e, text, source, type));
        }
        catch (ArgumentException e)
        {
            // Inside a free-form value (a vector's expect, a JsonNode) the node converter throws its dictionary's error.
            throw fail(FirstRepeatedName(text) is { } repeated
                ? new DocumentError(source, repeated, ValueAt(text, repeated), "appears twice in its object")
                : new DocumentError(source, "$", null, $"cannot be read: {Quoting.Bounded(e.Message)}"));
        }
        try
        {
            return check(document ?? throw new DocumentProblem("$", $"expected {Describe(type.Type, type.Options)}"));
        }
        catch (DocumentProblem problem)
        {
            throw fail(new DocumentError(source, problem.Path, ValueAt(text, problem.Path), problem.Problem));
        }
    }

    /// <summary>
    /// A document built in code goes through its own JSON, so that a problem is reported exactly as it would be for
    /// the same document in a file.
    /// </summary>
    public static TResult Check<TDocument, TResult>(TDocument document, JsonTypeInfo<TDocument> type,
        Func<TDocument, TResult> check, Func<DocumentError, DocumentException> fail) where TDocument : class =>
        Read(JsonSerializer.Serialize(document, type), null, type, check, fail);

    /// <summary>
    /// A value as it would be written in JSON, shortened when long (<see cref="Quoting.Bounded"/>): <c>"10.0.0.0/33"</c>,
    /// <c>-1</c>, <c>"xxx… (5,002 characters)</c>.
    /// </summary>
    public static string Render(JsonElement value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, Compact)) value.WriteTo(writer);
        return Quoting.Bounded(Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    public static string Render(string value) => Render(JsonSerializer.SerializeToElement(value, DocumentJson.Default.String));

    /// <summary>The value written at <paramref name="path"/> in the text, or null where there is none.</summary>
    public static string? ValueAt(string text, string path)
    {
        using var parsed = TryParse(text);
        return parsed is not null && Find(parsed.RootElement, Segments(path)) is { } value ? Render(value) : null;
    }

    private static DocumentError Explain(JsonException e, string text, string? source, JsonTypeInfo type)
    {
        var path = e.Path ?? "$";
        if (string.IsNullOrWhiteSpace(text)) return new DocumentError(source, path, null, "empty: expected a JSON document");
        using var parsed = TryParse(text);
        if (parsed is null)
        {
            // The serializer may have stopped at a wrong type before the syntax error: find the syntax error itself.
            var (syntaxPath, syntaxError) = FirstSyntaxError(text) ?? (path, e);
            var syntax = $"not valid JSON at {Position(text, syntaxError)}: {ParserMessage(syntaxError)}";
            return new DocumentError(source, syntaxPath, null, syntax);
        }

        var segments = Segments(path);
        var value = Find(parsed.RootElement, segments);
        var (parent, expected) = Walk(type, segments);
        string problem;
        var known = parent is { Kind: JsonTypeInfoKind.Object }
            ? parent.Properties.Where(p => !p.IsExtensionData).Select(p => p.Name).ToList()
            : null;
        if (segments.Count > 0 && segments[^1] is string name && known is not null && !known.Contains(name))
            problem = $"unknown field (known: {string.Join(", ", known)})";
        else if (segments.Count > 0 && Occurrences(parsed.RootElement, segments) > 1)
            problem = "appears twice in its object";
        else if (expected is not null)
            problem = "expected " + (IsWhole(expected, value)
                ? $"an integer from {int.MinValue} to {int.MaxValue}"
                : Describe(expected, type.Options));
        else
            problem = ParserMessage(e);
        return new DocumentError(source, path, value is { } found ? Render(found) : null, problem);
    }

    /// <summary>The containing object's contract and the .NET type expected at the path, from the generated metadata.</summary>
    private static (JsonTypeInfo? Parent, Type? Expected) Walk(JsonTypeInfo root, IReadOnlyList<object> segments)
    {
        JsonTypeInfo? parent = null;
        Type? current = root.Type;
        foreach (var segment in segments)
        {
            if (current is null) return (null, null);
            var info = root.Options.GetTypeInfo(Nullable.GetUnderlyingType(current) ?? current);
            parent = info;
            current = segment switch
            {
                string name when info.Kind == JsonTypeInfoKind.Object =>
                    info.Properties.FirstOrDefault(p => p.Name == name && !p.IsExtensionData)?.PropertyType,
                int when info.Kind == JsonTypeInfoKind.Enumerable => info.ElementType,
                _ => null,
            };
        }
        return (parent, current);
    }

    private static string Describe(Type type, JsonSerializerOptions options)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(string)) return "a string";
        if (type == typeof(int) || type == typeof(long)) return "an integer";
        if (type == typeof(double)) return "a number";
        if (type == typeof(bool)) return "true or false";
        if (type == typeof(Ipv4Cidr)) return "an IPv4 CIDR such as 100.64.0.0/26";
        if (typeof(JsonNode).IsAssignableFrom(type)) return "a JSON value";
        return options.GetTypeInfo(type).Kind switch
        {
            JsonTypeInfoKind.Enumerable => "an array",
            JsonTypeInfoKind.Object or JsonTypeInfoKind.Dictionary => "an object",
            _ => type.Name,
        };
    }

    /// <summary>A whole number where an int is expected did not fit: say the range rather than "an integer".</summary>
    private static bool IsWhole(Type expected, JsonElement? value) =>
        (Nullable.GetUnderlyingType(expected) ?? expected) == typeof(int)
        && value is { ValueKind: JsonValueKind.Number } number && !number.GetRawText().AsSpan().ContainsAny(".eE");

    /// <summary>"line 3, column 12, near '"pods": tru}]}'": the parser's position, counted in characters, and the text around it.</summary>
    private static string Position(string text, JsonException e)
    {
        var lines = text.Split('\n');
        var line = (int)(e.LineNumber ?? 0);
        if (line >= lines.Length) return "the end of the text";
        var bytes = Encoding.UTF8.GetBytes(lines[line].TrimEnd('\r'));
        var column = Encoding.UTF8.GetCharCount(bytes, 0, (int)Math.Min(e.BytePositionInLine ?? 0, bytes.Length));
        var chars = Encoding.UTF8.GetString(bytes);
        // The parser stops inside or just after the bad token: show some of what comes before it too.
        var from = Math.Max(0, column - 16);
        var near = chars[from..Math.Min(chars.Length, column + 8)].Trim();
        return $"line {line + 1}, column {column + 1}{(near.Length == 0 ? "" : $", near '{near}'")}";
    }

    /// <summary>
    /// The parser's own words on one line (it quotes the text it choked on, newlines included, shortened here), without
    /// the position (given once, in characters) and its advice to programmers.
    /// </summary>
    private static string ParserMessage(JsonException e)
    {
        var message = e.Message;
        foreach (var tail in new[] { " Path: ", " LineNumber: " })
            if (message.IndexOf(tail, StringComparison.Ordinal) is var at and >= 0) message = message[..at];
        message = Quoted().Replace(message, quote => quote.Groups[1].Length <= 20 ? quote.Value : $"'{quote.Groups[1].Value[..20]}...'");
        return message.Replace(" Change the reader options.", "", StringComparison.Ordinal)
            .Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal).Trim();
    }

    /// <summary>Text the parser quotes; it may quote all the rest of the document.</summary>
    [GeneratedRegex("'([^']*)'")]
    private static partial Regex Quoted();

    private sealed class Frame(bool isArray)
    {
        public bool IsArray { get; } = isArray;
        public int Index { get; set; } = -1;
        public string? Name { get; set; }
        public bool InValue { get; set; }
    }

    /// <summary>The path where the text stops being JSON: inside a value while it is being read, else its container.</summary>
    private static (string Path, JsonException Error)? FirstSyntaxError(string text)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(text));
        var frames = new List<Frame>();
        void StartValue()
        {
            if (frames.Count == 0) return;
            var top = frames[^1];
            if (top.IsArray) top.Index++;
            top.InValue = true;
        }
        void EndValue()
        {
            if (frames.Count > 0) frames[^1].InValue = false;
        }
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        StartValue();
                        frames.Add(new Frame(reader.TokenType == JsonTokenType.StartArray));
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        frames.RemoveAt(frames.Count - 1);
                        EndValue();
                        break;
                    case JsonTokenType.PropertyName:
                        frames[^1].Name = reader.GetString();
                        frames[^1].InValue = true;
                        break;
                    default:
                        StartValue();
                        EndValue();
                        break;
                }
            }
            return null;
        }
        catch (JsonException error)
        {
            var path = new StringBuilder("$");
            foreach (var frame in frames.Where(f => f.InValue))
                path.Append(frame.IsArray ? $"[{frame.Index}]" : Name(frame.Name ?? ""));
            return (path.ToString(), error);
        }
    }

    /// <summary>".name", or "['odd name']" where the name is not a plain word, as System.Text.Json writes paths.</summary>
    private static string Name(string name) =>
        PlainName().IsMatch(name) ? $".{name}" : $"['{name.Replace("'", "\\'", StringComparison.Ordinal)}']";

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex PlainName();

    /// <summary>
    /// The path of the first property whose name its object already had, or null. Read token by token, so that a name
    /// given twice before the text goes wrong further on is still found (the serializer stops at the first of the two).
    /// </summary>
    private static string? FirstRepeatedName(string text)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(text));
        // One entry per open object or array: its path, the names seen (objects) and the index of the next item (arrays).
        var open = new Stack<(string Path, HashSet<string>? Names, int Next)>();
        string? property = null;
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        property = reader.GetString()!;
                        var (path, names, _) = open.Peek();
                        if (!names!.Add(property)) return path + Name(property);
                        continue;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        var at = ItemPath(open, property);
                        var isObject = reader.TokenType == JsonTokenType.StartObject;
                        open.Push((at, isObject ? new HashSet<string>(StringComparer.Ordinal) : null, 0));
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        open.Pop();
                        break;
                    default:
                        ItemPath(open, property);
                        break;
                }
                property = null;
            }
        }
        catch (JsonException)
        {
            // the rest is not JSON: no name was repeated before that point
        }
        return null;
    }

    /// <summary>The path of a value that starts now, counting it as the next item when its parent is an array.</summary>
    private static string ItemPath(Stack<(string Path, HashSet<string>? Names, int Next)> open, string? property)
    {
        if (open.Count == 0) return "$";
        var (path, names, next) = open.Pop();
        open.Push((path, names, names is null ? next + 1 : next));
        return names is null ? $"{path}[{next}]" : path + Name(property!);
    }

    private static JsonDocument? TryParse(string text)
    {
        try
        {
            return JsonDocument.Parse(text);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>"$.nodes[3].pods" and "$['odd name']" as names (string) and indices (int).</summary>
    private static List<object> Segments(string path) =>
        [.. PathSegment().Matches(path).Select(m => m.Groups["index"].Success
            ? (object)int.Parse(m.Groups["index"].Value, System.Globalization.CultureInfo.InvariantCulture)
            : m.Groups["name"].Success ? m.Groups["name"].Value : m.Groups["quoted"].Value)];

    [GeneratedRegex(@"\.(?<name>[^.\[]+)|\['(?<quoted>(?:[^'\\]|\\.)*)'\]|\[(?<index>\d+)\]")]
    private static partial Regex PathSegment();

    private static JsonElement? Find(JsonElement root, IReadOnlyList<object> segments)
    {
        var current = root;
        foreach (var segment in segments)
        {
            JsonElement? next = segment switch
            {
                string name when current.ValueKind == JsonValueKind.Object =>
                    current.EnumerateObject().Where(p => p.Name == name).Select(p => (JsonElement?)p.Value).FirstOrDefault(),
                int index when current.ValueKind == JsonValueKind.Array && index < current.GetArrayLength() => current[index],
                _ => null,
            };
            if (next is null) return null;
            current = next.Value;
        }
        return current;
    }

    private static int Occurrences(JsonElement root, List<object> segments) =>
        segments[^1] is string name && Find(root, segments[..^1]) is { ValueKind: JsonValueKind.Object } parent
            ? parent.EnumerateObject().Count(p => p.Name == name)
            : 0;
}
