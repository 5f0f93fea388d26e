using System.Globalization;
using System.Text;

namespace Romana.Host.Documents;

/// <summary>Document files are read whole, and no more than <see cref="DocumentLimits.LargestDocumentBytes"/> of them.</summary>
public static class DocumentFile
{
    /// <summary>
    /// The text of the file at <paramref name="path"/>; a missing file, or one larger than a document may be (a FIFO or a
    /// device such as /dev/zero included: reading stops at the bound), is an error from <paramref name="fail"/> naming it.
    /// </summary>
    public static string ReadText(string path, Func<string, DocumentException> fail)
    {
        var file = new FileInfo(path);
        if (!file.Exists) throw fail($"{path}: no such file");
        const long most = DocumentLimits.LargestDocumentBytes;
        var tooLarge = $"more than the {most / (1024 * 1024)} MiB a document may be";
        if (file.Length > most) throw fail(string.Create(CultureInfo.InvariantCulture, $"{path}: {file.Length:N0} bytes, {tooLarge}"));
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var bounded = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            if (bounded.Length + read > most) throw fail($"{path}: {tooLarge}");
            bounded.Write(buffer, 0, read);
        }
        bounded.Position = 0;
        using var reader = new StreamReader(bounded, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }
}
