using System.Runtime.InteropServices;

namespace Romana.Host.Dataplane;

/// <summary>What .NET does not tell about files and descriptors on Linux: a file's type, and this process's descriptors.</summary>
public static class UnixFiles
{
    public enum Kind { Missing, Directory, Socket, Regular, SymbolicLink, Other, Unknown }

    /// <summary>The type of what is at <paramref name="path"/> itself (a symbolic link is not followed).</summary>
    public static Kind KindOf(string path)
    {
        var buffer = new byte[256];
        try
        {
            if (StatX(AtFdCwd, path, AtSymlinkNoFollow, StatxType, buffer) != 0)
                return Marshal.GetLastPInvokeError() == ENOENT ? Kind.Missing : Kind.Unknown;
        }
        catch (EntryPointNotFoundException)
        {
            return File.Exists(path) ? Kind.Unknown : Directory.Exists(path) ? Kind.Directory : Kind.Missing;
        }
        // struct statx: stx_mode is the 16-bit field at offset 28 (the same layout on every architecture).
        var mode = BitConverter.ToUInt16(buffer, 28) & 0xF000;
        return mode switch
        {
            0x4000 => Kind.Directory,
            0xC000 => Kind.Socket,
            0x8000 => Kind.Regular,
            0xA000 => Kind.SymbolicLink,
            _ => Kind.Other,
        };
    }

    /// <summary>The soft limit on open descriptors (RLIMIT_NOFILE), or null where it cannot be read.</summary>
    public static long? DescriptorLimit()
    {
        try
        {
            return GetRLimit(RLimitNoFile, out var limit) == 0 ? (long)Math.Min(limit.Current, long.MaxValue) : null;
        }
        catch (EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>How many descriptors this process has open now (the entries of /proc/self/fd), or null where unknown.</summary>
    public static int? OpenDescriptors()
    {
        try
        {
            // The enumeration holds one descriptor of its own while it reads.
            return Directory.EnumerateFileSystemEntries("/proc/self/fd").Count() - 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1;
    private const int ENOENT = 2;
    private const int RLimitNoFile = 7;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int StatX(int directoryFd, string path, int flags, uint mask, byte[] buffer);

    [DllImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static extern int GetRLimit(int resource, out RLimit limit);
}
