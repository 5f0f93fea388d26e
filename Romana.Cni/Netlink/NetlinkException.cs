namespace Romana.Cni.Netlink;

/// <summary>
/// A netlink or namespace system call failed. The message names the operation and the errno text, plus the kernel's
/// extended-ack sentence when it gave one: "creating veth rmn0123abcd456 for container X: File exists".
/// </summary>
internal sealed class NetlinkException(string operation, int errno, string? kernelMessage = null)
    : Exception($"{operation}: {Libc.Describe(errno)}{(string.IsNullOrEmpty(kernelMessage) ? "" : $" ({kernelMessage})")}")
{
    public string Operation { get; } = operation;
    public int Errno { get; } = errno;
}

/// <summary>A network namespace could not be opened or entered (gone, not a namespace, no permission).</summary>
internal sealed class NetworkNamespaceException(string message, int errno) : Exception(message)
{
    public int Errno { get; } = errno;
}
