namespace Romana.Netlink;

/// <summary>
/// An open network namespace file (CNI_NETNS: /var/run/netns/NAME or /proc/PID/ns/net). Its descriptor is what the veth
/// peer is created into (IFLA_NET_NS_FD), what a pod-side netlink socket is opened in, and what a thread enters to work
/// in the namespace.
/// </summary>
public sealed class NetworkNamespace : IDisposable
{
    private const string CurrentThreadNamespace = "/proc/thread-self/ns/net";

    private NetworkNamespace(int fd, string path)
    {
        Fd = fd;
        Path = path;
    }

    public int Fd { get; }
    public string Path { get; }

    public static NetworkNamespace Open(string path)
    {
        var fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Libc.LastErrno();
            throw new NetworkNamespaceException($"cannot open network namespace {path}: {Libc.Describe(errno)}", errno);
        }
        return new NetworkNamespace(fd, path);
    }

    /// <summary>
    /// A netlink socket that lives in this namespace. setns applies to the calling thread only, so the thread enters the
    /// namespace, creates the socket (a socket stays in the namespace it was made in) and returns at once, on this thread.
    /// </summary>
    public NetlinkSocket OpenNetlinkSocket()
    {
        var home = Libc.Open(CurrentThreadNamespace, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (home < 0)
        {
            var errno = Libc.LastErrno();
            throw new NetworkNamespaceException($"cannot open {CurrentThreadNamespace}: {Libc.Describe(errno)}", errno);
        }
        try
        {
            if (Libc.SetNs(Fd, Libc.CLONE_NEWNET) < 0)
            {
                var errno = Libc.LastErrno();
                throw new NetworkNamespaceException($"cannot enter network namespace {Path}: {Libc.Describe(errno)}", errno);
            }
            try
            {
                return NetlinkSocket.Open();
            }
            finally
            {
                // Sockets keep the namespace they were made in, so only sockets opened later would be misplaced; still, a
                // thread left in the pod's namespace is an error the command must not continue past.
                if (Libc.SetNs(home, Libc.CLONE_NEWNET) < 0)
                {
                    var errno = Libc.LastErrno();
                    throw new NetworkNamespaceException(
                        $"cannot return to the host network namespace after entering {Path}: {Libc.Describe(errno)}", errno);
                }
            }
        }
        finally
        {
            Libc.Close(home);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> on a new thread that has entered this namespace, for work that takes its namespace from
    /// the calling thread: netlink sockets opened there, and /proc/sys/net files (they show the namespace of the thread that
    /// opens them). The thread ends with the body, so no pooled thread is ever left in another namespace. Keep this object
    /// undisposed until the task completes.
    /// </summary>
    public Task<T> RunAsync<T>(Func<T> body)
    {
        var outcome = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                if (Libc.SetNs(Fd, Libc.CLONE_NEWNET) < 0)
                {
                    var errno = Libc.LastErrno();
                    throw new NetworkNamespaceException($"cannot enter network namespace {Path}: {Libc.Describe(errno)}", errno);
                }
                outcome.SetResult(body());
            }
            catch (Exception e)
            {
                outcome.SetException(e);
            }
        })
        { IsBackground = true, Name = "romana netns" };
        thread.Start();
        return outcome.Task;
    }

    public void Dispose() => Libc.Close(Fd);
}
