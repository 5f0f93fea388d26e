namespace Romana.Cni.Plugin;

/// <summary>
/// The error codes this plugin reports (CNI spec "Error" result: codes 1-99 are the spec's, 100 and up are Romana's).
/// <code>
///  code  meaning                                              when
///     1  incompatible CNI version                             cniVersion is none of 0.3.0, 0.3.1, 0.4.0, 1.0.0
///     3  container unknown                                    CHECK: the daemon holds no address for the container
///     4  invalid environment variable                         CNI_COMMAND/CONTAINERID/IFNAME/NETNS/ARGS missing or malformed;
///                                                             unknown command (GC too)
///     5  I/O failure                                          stdin could not be read
///     6  failed to decode content                             stdin is not a JSON object
///     7  invalid network configuration                        a field of the wrong type or value (named with its value);
///                                                             CHECK without prevResult
///    11  try again later                                      the daemon is unreachable, silent, or reports itself unavailable
///    50  plugin not available                                 STATUS: the daemon is not answering ok
///   100  internal error                                       an unexpected exception (a bug): message only, no stack trace
///   101  daemon refused the request                           daemon codes invalid, conflict and any other
///   102  address pool exhausted                               daemon code exhausted
///   103  daemon protocol error                                the daemon's reply is unreadable, or ADD's address is not IPv4
///   104  network namespace cannot be opened or entered        CNI_NETNS missing, not a namespace, no permission (ADD, CHECK)
///   105  netlink operation failed                             a veth, address, route or neighbour operation was refused
///   106  CHECK: interface missing or down                     the host veth or CNI_IFNAME in the pod
///   107  CHECK: address or route missing                      the pod's /32, its default route, or the host's /32 route
///   108  CHECK: address mismatch                              the daemon's address differs from prevResult's
/// </code>
/// </summary>
internal static class CniErrorCode
{
    public const int IncompatibleVersion = 1;
    public const int ContainerUnknown = 3;
    public const int InvalidEnvironment = 4;
    public const int IoFailure = 5;
    public const int DecodingFailure = 6;
    public const int InvalidNetworkConfig = 7;
    public const int TryAgainLater = 11;
    public const int PluginNotAvailable = 50;

    public const int InternalError = 100;
    public const int DaemonRefused = 101;
    public const int AddressExhausted = 102;
    public const int DaemonProtocolError = 103;
    public const int NamespaceUnavailable = 104;
    public const int NetlinkFailed = 105;
    public const int CheckInterfaceMissing = 106;
    public const int CheckAddressOrRouteMissing = 107;
    public const int CheckAddressMismatch = 108;
}

/// <summary>A failure reported to the runtime as the spec's error JSON: code, msg, optional details.</summary>
internal sealed class CniException(int code, string message, string? details = null) : Exception(message)
{
    public int Code { get; } = code;
    public string? Details { get; } = details;
}
