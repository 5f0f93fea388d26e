using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Romana.Host.Policy;

/*
 * libnftables in a small long-lived child process: `romana policy nft-helper [--netns PATH]` (hidden), which holds one
 * libnftables context in the namespace and answers one transaction at a time over its stdin and stdout. The daemon keeps
 * libnftables' speed (no nft process per change) without its hazard: libnftables waits on its netlink socket with select(),
 * and glibc aborts a process whose socket descriptor is 1024 or more; the child inherits no descriptors but its standard
 * ones (.NET opens everything close-on-exec), so its socket's number stays small however many the daemon holds.
 *
 * The line protocol, UTF-8:
 *   request:  RUN <json 0|1> <bytes>\n<bytes of nft commands>
 *   answer:   OK <bytes>\n<bytes of nft's output>    or    ERR <bytes>\n<bytes of nft's error message>
 * The child exits at the end of its input. The parent starts it again when it died or a call was cancelled mid-answer.
 */

/// <summary>The parent's side: an <see cref="INftables"/> that sends each transaction to the helper process.</summary>
public sealed class NftHelperProcess : INftables
{
    private readonly string? _namespacePath;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Process? _process;

    /// <summary>Starts the helper now (its start, about as long as a .NET program's, is not paid by the first transaction).</summary>
    public NftHelperProcess(string? namespacePath)
    {
        _namespacePath = namespacePath;
        _process = Start();
    }

    /// <summary>The helper's process id (tests look at its descriptors).</summary>
    public int ProcessId => (_process ??= Start()).Id;

    private Process Start()
    {
        var host = Environment.ProcessPath ?? "dotnet";
        var romana = typeof(NftHelperProcess).Assembly.Location;
        var start = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (Path.GetFileName(host) == "romana")
        {
            start.FileName = host;
        }
        else
        {
            // `dotnet romana.dll`, or a test host: run romana.dll with the same dotnet
            start.FileName = Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";
            start.ArgumentList.Add(romana);
        }
        foreach (var word in new[] { "policy", "nft-helper" }) start.ArgumentList.Add(word);
        if (_namespacePath is not null)
        {
            start.ArgumentList.Add("--netns");
            start.ArgumentList.Add(_namespacePath);
        }
        var process = Process.Start(start) ?? throw new NftablesException("the nft helper could not be started");
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        return process;
    }

    public async Task<string> RunAsync(string commands, bool json, CancellationToken cancellation)
    {
        await _gate.WaitAsync(cancellation);
        var process = _process is { HasExited: false } running ? running : _process = Start();
        try
        {
            var body = Encoding.UTF8.GetBytes(commands);
            var input = process.StandardInput.BaseStream;
            await input.WriteAsync(Encoding.ASCII.GetBytes($"RUN {(json ? 1 : 0)} {body.Length}\n"), cancellation);
            await input.WriteAsync(body, cancellation);
            await input.FlushAsync(cancellation);
            var reply = await NftHelper.ReadAsync(process.StandardOutput.BaseStream, cancellation);
            if (reply is not var (status, answer))
            {
                var code = process.WaitForExit(1000) ? process.ExitCode : -1;
                Stop(process);
                _process = null;
                throw new NftablesException($"the nft helper exited (code {code})");
            }
            return status == "OK" ? answer : throw new NftablesException(answer);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // The conversation is out of step or over: the next call starts a new helper
            Stop(process);
            _process = null;
            if (e is IOException) throw new NftablesException($"the nft helper failed: {e.Message}");
            throw;
        }
        finally
        {
            _gate.Release();
        }
    }

    private static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill();
            process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        process.Dispose();
    }

    public void Dispose()
    {
        if (_process is { } process)
        {
            try
            {
                process.StandardInput.Close();
                if (!process.WaitForExit(5000)) process.Kill();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                // already gone
            }
            process.Dispose();
        }
        _gate.Dispose();
    }
}

/// <summary>The child's side, and the protocol's framing.</summary>
public static class NftHelper
{
    /// <summary>Answers requests from <paramref name="input"/> on <paramref name="output"/> until the input ends.</summary>
    public static async Task<int> ServeAsync(string? netns, Stream input, Stream output)
    {
        var path = netns is null ? null : netns.Contains('/') ? netns : $"/var/run/netns/{netns}";
        using var nft = new LibNftables(path);
        while (await ReadAsync(input, CancellationToken.None) is var (header, body))
        {
            var words = header.Split(' ');
            string status, answer;
            try
            {
                answer = await nft.RunAsync(body, words[0] == "1", CancellationToken.None);
                status = "OK";
            }
            catch (NftablesException e)
            {
                (status, answer) = ("ERR", e.Message);
            }
            var bytes = Encoding.UTF8.GetBytes(answer);
            await output.WriteAsync(Encoding.ASCII.GetBytes($"{status} {bytes.Length}\n"));
            await output.WriteAsync(bytes);
            await output.FlushAsync();
        }
        return 0;
    }

    /// <summary>
    /// One message: "WORD [ARG...] LENGTH\n" then LENGTH bytes. Gives the first word (the status), or for a request
    /// ("RUN ARG LENGTH") its argument, and the body; null at the end of the stream.
    /// </summary>
    public static async Task<(string Head, string Body)?> ReadAsync(Stream stream, CancellationToken cancellation)
    {
        var line = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            if (await stream.ReadAsync(one, cancellation) == 0) return null;
            if (one[0] == (byte)'\n') break;
            line.Add(one[0]);
        }
        var words = Encoding.ASCII.GetString(line.ToArray()).Split(' ');
        if (words.Length < 2 || !int.TryParse(words[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var length))
            throw new IOException($"nft helper protocol: bad header \"{Encoding.ASCII.GetString(line.ToArray())}\"");
        var body = new byte[length];
        await stream.ReadExactlyAsync(body, cancellation);
        var head = words[0] == "RUN" ? words[1] : words[0];
        return (head, Encoding.UTF8.GetString(body));
    }
}
