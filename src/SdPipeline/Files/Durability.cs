using System.Runtime.InteropServices;

namespace SdPipeline.Files;

/// <summary>
/// Puts files on disk before a rename declares them complete. Without it a power loss can leave the renamed
/// name pointing at data the kernel never wrote: a <c>training_state.json</c> whose tensors are empty, which
/// a resume would then pick.
/// </summary>
public static partial class Durability
{
    /// <summary>Flushes every regular file under <paramref name="folder"/> (links not followed), then the folder entries themselves.</summary>
    public static void FlushFolder(string folder)
    {
        var pending = new Stack<DirectoryInfo>([new DirectoryInfo(folder)]);
        while (pending.Count > 0)
        {
            var directory = pending.Pop();
            foreach (var entry in directory.EnumerateFileSystemInfos())
            {
                if (entry.LinkTarget is not null) continue;
                if (entry is DirectoryInfo child) pending.Push(child);
                else FlushFile(entry.FullName);
            }
            FlushDirectoryEntry(directory.FullName);
        }
    }

    /// <summary>Flushes one file's data and metadata to disk.</summary>
    public static void FlushFile(string path)
    {
        // Opened for writing (nothing is written): .NET only syncs a handle it may write through.
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Flushes a directory's entries (the names created or renamed in it) on POSIX systems; a no-op on Windows, where NTFS journals them.</summary>
    public static void FlushDirectoryEntry(string directory)
    {
        if (OperatingSystem.IsWindows()) return;
        int fd = Open(directory, 0 /* O_RDONLY */);
        if (fd < 0) return; // best effort: some file systems refuse to open directories
        try
        {
            FSync(fd);
        }
        finally
        {
            Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
