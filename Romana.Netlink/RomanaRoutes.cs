namespace Romana.Netlink;

/// <summary>How Romana marks what it puts into the kernel's routing, so that it never changes what it did not make.</summary>
public static class RomanaRoutes
{
    /// <summary>
    /// rtm_protocol of every route Romana makes: the plugin's /32 to each pod, the host agent's routes in its table
    /// (<c>proto 82</c> in <c>ip route</c>). Unassigned in iproute2's rt_protos.
    /// </summary>
    public const byte Protocol = 82;
}
