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
    /// Opens <paramref name="path"/> only if it is a network namespace: a file of the kernel's namespace filesystem whose
    /// namespace is of the network kind. Anything else (a regular file, a directory, a FIFO, a mount namespace) is a
    /// <see cref="NotANetworkNamespaceException"/> saying what it is; a path that cannot be read is a
    /// <see cref="NetworkNamespaceException"/>. The file type is checked before opening, so a FIFO or a device is never opened.
    /// </summary>
    public static NetworkNamespace OpenChecked(string path)
    {
        var before = Stat(path);
        if ((before.Mode & Libc.FileTypeMask) != Libc.FileTypeRegular)
            throw new NotANetworkNamespaceException(path, $"is {FileTypes.Of(before.Mode)}");
        var fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NONBLOCK | Libc.O_NOCTTY);
        if (fd < 0)
        {
            var errno = Libc.LastErrno();
            throw new NetworkNamespaceException($"cannot open network namespace {path}: {Libc.Describe(errno)}", errno);
        }
        var opened = new NetworkNamespace(fd, path);
        try
        {
            var type = Libc.IoCtl(fd, Libc.NS_GET_NSTYPE, 0);
            if (type < 0)
                throw new NotANetworkNamespaceException(path, "is a regular file");
            if (type != Libc.CLONE_NEWNET)
                throw new NotANetworkNamespaceException(path, $"is a {NamespaceType(type)} namespace");
            opened.Identity = IdentityOf(Stat(fd, path));
            return opened;
        }
        catch
        {
            opened.Dispose();
            throw;
        }
    }

    /// <summary>The device and inode of the namespace file (set by <see cref="OpenChecked"/>): the same whatever path names it.</summary>
    public NamespaceIdentity? Identity { get; private set; }

    /// <summary>The identity of the calling thread's own network namespace.</summary>
    public static NamespaceIdentity CurrentIdentity() => IdentityOf(Stat(CurrentThreadNamespace));

    private static NamespaceIdentity IdentityOf(Libc.Statx stat) => new(stat.DeviceMajor, stat.DeviceMinor, stat.Inode);

    private static unsafe Libc.Statx Stat(string path)
    {
        Libc.Statx result;
        if (Libc.StatX(Libc.AT_FDCWD, path, 0, Libc.STATX_TYPE | Libc.STATX_INO, &result) < 0)
        {
            var errno = Libc.LastErrno();
            throw new NetworkNamespaceException($"cannot open network namespace {path}: {Libc.Describe(errno)}", errno);
        }
        return result;
    }

    private static unsafe Libc.Statx Stat(int fd, string path)
    {
        Libc.Statx result;
        if (Libc.StatX(fd, "", Libc.AT_EMPTY_PATH, Libc.STATX_TYPE | Libc.STATX_INO, &result) < 0)
        {
            var errno = Libc.LastErrno();
            throw new NetworkNamespaceException($"cannot read network namespace {path}: {Libc.Describe(errno)}", errno);
        }
        return result;
    }

    private static string NamespaceType(int type) => type switch
    {
        0x00020000 => "mount",
        0x02000000 => "cgroup",
        0x04000000 => "UTS",
        0x08000000 => "IPC",
        0x10000000 => "user",
        0x20000000 => "PID",
        0x00000080 => "time",
        _ => $"0x{type:x}",
    };

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
    ///
    /// The thread goes back to its own namespace before it completes the task: completing queues the continuation to the
    /// thread pool, which may start a new worker thread from the queueing thread, and a new thread is born in its creator's
    /// namespace. Completed from inside, a pool thread of this process could live on in the other namespace (seen: the
    /// test process reading a node's /proc/sys/net as its own).
    /// </summary>
    public Task<T> RunAsync<T>(Func<T> body)
    {
        var outcome = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            T result = default!;
            Exception? failure = null;
            var home = Libc.Open(CurrentThreadNamespace, Libc.O_RDONLY | Libc.O_CLOEXEC);
            if (home < 0)
            {
                var errno = Libc.LastErrno();
                outcome.SetException(new NetworkNamespaceException($"cannot open {CurrentThreadNamespace}: {Libc.Describe(errno)}", errno));
                return;
            }
            try
            {
                if (Libc.SetNs(Fd, Libc.CLONE_NEWNET) < 0)
                {
                    var errno = Libc.LastErrno();
                    throw new NetworkNamespaceException($"cannot enter network namespace {Path}: {Libc.Describe(errno)}", errno);
                }
                result = body();
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                if (Libc.SetNs(home, Libc.CLONE_NEWNET) < 0)
                {
                    var errno = Libc.LastErrno();
                    failure ??= new NetworkNamespaceException(
                        $"cannot return to the thread's own network namespace after entering {Path}: {Libc.Describe(errno)}", errno);
                }
                Libc.Close(home);
            }
            if (failure is null) outcome.SetResult(result);
            else outcome.SetException(failure);
        })
        { IsBackground = true, Name = "romana netns" };
        thread.Start();
        return outcome.Task;
    }

    public void Dispose() => Libc.Close(Fd);
}

/// <summary>A namespace file's identity: the device and inode that stat reports, "MAJOR:MINOR:INODE" as text.</summary>
public sealed record NamespaceIdentity(uint DeviceMajor, uint DeviceMinor, ulong Inode)
{
    public override string ToString() => $"{DeviceMajor}:{DeviceMinor}:{Inode}";
}

/// <summary>A path that was to be a network namespace is something else; <see cref="What"/> says what ("is a directory").</summary>
public sealed class NotANetworkNamespaceException(string path, string what) : Exception($"{path} {what}, not a network namespace")
{
    public string Path { get; } = path;
    public string What { get; } = what;
}

