using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Romana.Netlink;

namespace Romana.Host.Policy;

/// <summary>A way to run nft commands (one transaction per call) in one network namespace.</summary>
public interface INftables : IDisposable
{
    /// <summary>Runs <paramref name="commands"/> (nft -f syntax) as one transaction; returns nft's output (JSON when asked).</summary>
    Task<string> RunAsync(string commands, bool json, CancellationToken cancellation);
}

/// <summary>nft refused a transaction; nothing of it reached the kernel. The message is nft's own.</summary>
public sealed class NftablesException(string message) : Exception(message);

public enum NftablesBackend
{
    /// <summary>
    /// libnftables.so.1 through P/Invoke, on a thread that lives in the namespace. About 4 times faster for a small change,
    /// but only for short-lived processes with few descriptors: libnftables waits on its netlink socket with select(), and
    /// glibc aborts the whole process ("bit out of range 0 - FD_SETSIZE on fd_set") once that socket's descriptor is 1024
    /// or more, as it is in a busy daemon or a test host.
    /// </summary>
    Library,

    /// <summary>`nft -f -` as a process per transaction (nsenter --net for another namespace): safe at any size, but slow.</summary>
    CommandLine,

    /// <summary>
    /// libnftables in a long-lived child process (`romana policy nft-helper`, NftHelper.cs) that holds few descriptors: about
    /// as fast as <see cref="Library"/>, safe in a process with any number of descriptors. The default.
    /// </summary>
    Helper,
}

public static class Nftables
{
    /// <summary>
    /// Opens nft for <paramref name="netns"/>: null for the caller's own namespace, a name (/var/run/netns/NAME), or a path
    /// (/proc/PID/ns/net).
    /// </summary>
    public static INftables Open(string? netns, NftablesBackend backend = NftablesBackend.Helper)
    {
        var path = netns is null ? null : netns.Contains('/') ? netns : $"/var/run/netns/{netns}";
        return backend switch
        {
            NftablesBackend.Library => new LibNftables(path),
            NftablesBackend.Helper => new NftHelperProcess(path),
            _ => new NftCommandLine(path),
        };
    }
}

/// <summary>
/// libnftables through P/Invoke. One context, made and used on one thread of its own that entered the namespace first (the
/// context's netlink socket is opened in the namespace of the thread that makes it); calls queue to that thread.
/// </summary>
public sealed class LibNftables : INftables
{
    private const string Library = "libnftables.so.1";
    private const uint OutputJson = 1 << 4;
    private readonly BlockingCollection<Work> _queue = new();
    private readonly NetworkNamespace? _namespace;
    private readonly Task<bool> _worker;

    private sealed record Work(string Commands, bool Json, TaskCompletionSource<string> Outcome);

    public LibNftables(string? namespacePath)
    {
        if (namespacePath is null)
        {
            var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() => done.SetResult(Serve())) { IsBackground = true, Name = "romana nft" };
            _worker = done.Task;
            thread.Start();
        }
        else
        {
            _namespace = NetworkNamespace.Open(namespacePath);
            _worker = _namespace.RunAsync(Serve);
        }
    }

    private bool Serve()
    {
        var context = nft_ctx_new(0);
        if (context == IntPtr.Zero)
        {
            foreach (var work in _queue.GetConsumingEnumerable())
                work.Outcome.TrySetException(new NftablesException("libnftables: nft_ctx_new failed"));
            return false;
        }
        try
        {
            nft_ctx_buffer_output(context);
            nft_ctx_buffer_error(context);
            foreach (var work in _queue.GetConsumingEnumerable())
            {
                try
                {
                    nft_ctx_output_set_flags(context, work.Json ? OutputJson : 0);
                    var status = nft_run_cmd_from_buffer(context, work.Commands);
                    var output = Marshal.PtrToStringUTF8(nft_ctx_get_output_buffer(context)) ?? "";
                    var error = Marshal.PtrToStringUTF8(nft_ctx_get_error_buffer(context)) ?? "";
                    if (status != 0) work.Outcome.TrySetException(new NftablesException(error.Trim()));
                    else work.Outcome.TrySetResult(output);
                }
                catch (Exception e)
                {
                    work.Outcome.TrySetException(e);
                }
            }
            return true;
        }
        finally
        {
            nft_ctx_free(context);
        }
    }

    public Task<string> RunAsync(string commands, bool json, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        var outcome = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add(new Work(commands, json, outcome), CancellationToken.None);
        return outcome.Task;
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        try
        {
            _worker.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
            // the worker's failure was given to every caller already
        }
        _namespace?.Dispose();
        _queue.Dispose();
    }

    [DllImport(Library)]
    private static extern IntPtr nft_ctx_new(uint flags);

    [DllImport(Library)]
    private static extern void nft_ctx_free(IntPtr context);

    [DllImport(Library)]
    private static extern int nft_ctx_buffer_output(IntPtr context);

    [DllImport(Library)]
    private static extern int nft_ctx_buffer_error(IntPtr context);

    [DllImport(Library)]
    private static extern IntPtr nft_ctx_get_output_buffer(IntPtr context);

    [DllImport(Library)]
    private static extern IntPtr nft_ctx_get_error_buffer(IntPtr context);

    [DllImport(Library)]
    private static extern void nft_ctx_output_set_flags(IntPtr context, uint flags);

    [DllImport(Library)]
    private static extern int nft_run_cmd_from_buffer(IntPtr context, [MarshalAs(UnmanagedType.LPUTF8Str)] string buffer);
}

/// <summary>`nft -f -` as a process per transaction; in another namespace through `nsenter --net=PATH`.</summary>
public sealed class NftCommandLine(string? namespacePath) : INftables
{
    public async Task<string> RunAsync(string commands, bool json, CancellationToken cancellation)
    {
        var start = new ProcessStartInfo(namespacePath is null ? "nft" : "nsenter")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (namespacePath is not null)
        {
            start.ArgumentList.Add($"--net={namespacePath}");
            start.ArgumentList.Add("nft");
        }
        // nft 1.0.6 prints nothing for a `list` read from `-j -f -`: a JSON read is one command, given as arguments.
        if (json)
        {
            start.ArgumentList.Add("-j");
            foreach (var word in commands.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries)) start.ArgumentList.Add(word);
        }
        else
        {
            start.ArgumentList.Add("-f");
            start.ArgumentList.Add("-");
        }
        using var process = Process.Start(start) ?? throw new NftablesException("nft could not be started");
        var output = process.StandardOutput.ReadToEndAsync(cancellation);
        var error = process.StandardError.ReadToEndAsync(cancellation);
        if (!json) await process.StandardInput.WriteAsync(commands.AsMemory(), cancellation);
        process.StandardInput.Close();
        await process.WaitForExitAsync(cancellation);
        return process.ExitCode == 0 ? await output : throw new NftablesException((await error).Trim());
    }

    public void Dispose()
    {
    }
}
