using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Romana.Cni.Plugin;

// The Romana CNI plugin: the container runtime runs it once per ADD, DEL, CHECK, STATUS or VERSION. The result, or the
// spec's error object, goes to stdout; the exit code is 0 or 1. Nothing else is ever written, no stack trace included.

var stdout = Console.OpenStandardOutput();
var plugin = new CniPlugin(CniEnvironment.FromProcess(), ReadStdin);
try
{
    if (plugin.Run() is { } result) Print(result);
    return 0;
}
catch (CniException e)
{
    Print(Error(e.Code, e.Message, e.Details));
    return 1;
}
catch (Exception e)
{
    Print(Error(CniErrorCode.InternalError, $"internal error in the romana plugin: {e.GetType().Name}: {e.Message}", null));
    return 1;
}

JsonObject Error(int code, string message, string? details)
{
    var error = new JsonObject { ["cniVersion"] = plugin.ResponseVersion, ["code"] = code, ["msg"] = message };
    if (!string.IsNullOrEmpty(details)) error["details"] = details;
    return error;
}

// Relaxed escaping keeps quotes and apostrophes in messages readable ("'eth0'", not "\u0027eth0\u0027"); the output is
// never embedded in HTML.
// A closed stdout leaves no one to tell, so a failed write ends the run quietly with the exit code already chosen.
void Print(JsonObject json)
{
    try
    {
        using (var writer = new Utf8JsonWriter(stdout, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            json.WriteTo(writer);
        stdout.Write("\n"u8);
        stdout.Flush();
    }
    catch (IOException)
    {
    }
}

static byte[] ReadStdin()
{
    try
    {
        using var input = Console.OpenStandardInput();
        using var buffer = new MemoryStream();
        input.CopyTo(buffer);
        return buffer.ToArray();
    }
    catch (IOException e)
    {
        throw new CniException(CniErrorCode.IoFailure, $"cannot read the network configuration from stdin: {e.Message}");
    }
}
