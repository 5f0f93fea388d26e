namespace Romana.Netlink;

/// <summary>
/// A netlink or namespace system call failed. The message names the operation and the errno text, plus the kernel's
/// extended-ack sentence when it gave one: "creating veth rmn0123abcd456 for container X: File exists",
/// "adding route 100.64.0.64/26 via 10.98.0.1 to table 100: Network is unreachable (Nexthop has invalid gateway)".
/// </summary>
public sealed class NetlinkException(string operation, int errno, string? kernelMessage = null)
    : Exception($"{operation}: {Libc.Describe(errno)}{(string.IsNullOrEmpty(kernelMessage) ? "" : $" ({kernelMessage})")}")
{
    public string Operation { get; } = operation;

    /// <summary>The errno the kernel answered with; <see cref="Romana.Netlink.Errno"/> names the ones worth telling apart.</summary>
    public int Errno { get; } = errno;

    /// <summary>The kernel's own sentence (extended acknowledgement), when it gave one.</summary>
    public string? KernelMessage { get; } = kernelMessage;
}

/// <summary>A network namespace could not be opened or entered (gone, not a namespace, no permission).</summary>
public sealed class NetworkNamespaceException(string message, int errno) : Exception(message)
{
    public int Errno { get; } = errno;
}
