namespace Romana.Netlink;

/// <summary>What kind of file a path names, as stat says it (following symbolic links), for messages that say what is there.</summary>
public static class FileTypes
{
    /// <summary>"a socket", "a directory", "a regular file", ...; null when nothing is there (or it cannot be looked at).</summary>
    public static unsafe string? Describe(string path)
    {
        Libc.Statx result;
        return Libc.StatX(Libc.AT_FDCWD, path, 0, Libc.STATX_TYPE, &result) < 0 ? null : Of(result.Mode);
    }

    internal static string Of(ushort mode) => (mode & Libc.FileTypeMask) switch
    {
        Libc.FileTypeRegular => "a regular file",
        0x4000 => "a directory",
        0xa000 => "a symbolic link",
        0x2000 => "a character device",
        0x6000 => "a block device",
        0x1000 => "a FIFO",
        0xc000 => "a socket",
        _ => "a file of unknown type",
    };
}
