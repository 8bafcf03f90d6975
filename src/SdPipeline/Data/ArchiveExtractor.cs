using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// Unpacks zip and tar.gz archives, refusing any entry that would land outside the target folder
/// ("zip slip": <c>../x</c>, absolute paths) and any link entry, whose target could point anywhere.
/// </summary>
public static class ArchiveExtractor
{
    /// <summary>Whether <paramref name="path"/> names an archive this class unpacks.</summary>
    public static bool IsArchive(string path) =>
        path.EndsWith(".zip", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".tar.gz", StringComparison.OrdinalIgnoreCase)
        || path.EndsWith(".tgz", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".tar", StringComparison.OrdinalIgnoreCase);

    /// <summary>The most entries an archive may have.</summary>
    public const int MaxEntries = 1_000_000;

    /// <summary>Unpacked bytes always allowed, whatever the archive's size.</summary>
    public const long BaseUnpackedBytes = 1L << 30;

    /// <summary>
    /// Unpacked bytes allowed per archive byte beyond <see cref="BaseUnpackedBytes"/>. Image datasets are already
    /// compressed (PNG, JPEG), so they unpack to about their own size; a bomb unpacks to thousands of times it.
    /// </summary>
    public const long MaxExpansion = 20;

    /// <summary>Unpacks <paramref name="archive"/> into <paramref name="destination"/>.</summary>
    /// <exception cref="StageFailedException">An entry escapes the folder, the archive unpacks to too much, or it is unreadable.</exception>
    /// <param name="archive">The archive.</param>
    /// <param name="destination">The folder to unpack into.</param>
    /// <param name="maxBytes">Unpacked bytes allowed; by default <see cref="BaseUnpackedBytes"/> + <see cref="MaxExpansion"/> × the archive's size.</param>
    /// <param name="maxEntries">Entries allowed.</param>
    public static void Extract(string archive, string destination, long? maxBytes = null, int maxEntries = MaxEntries)
    {
        Directory.CreateDirectory(destination);
        // The archive's own length, through a link (FileInfo.Length would be the link's).
        long archiveBytes;
        using (var handle = File.OpenHandle(archive)) archiveBytes = RandomAccess.GetLength(handle);
        var budget = new Budget(archive, maxBytes ?? BaseUnpackedBytes + MaxExpansion * archiveBytes, maxEntries);
        try
        {
            if (archive.EndsWith(".zip", StringComparison.OrdinalIgnoreCase))
                ExtractZip(archive, destination, budget);
            else
                ExtractTar(archive, destination, budget);
        }
        catch (PathTooLongException e)
        {
            // Each name is checked for length; this is the whole path, past the file system's limit.
            throw new StageFailedException($"{archive}: an entry's path is too long for this file system: {e.Message} (repack it with shorter names)", e);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            // A truncated gzip or tar ends early. (Errors writing the destination, a full disk, pass as they are.)
            throw new StageFailedException($"{archive}: not a readable archive: {e.Message} (a truncated download or a damaged archive: fetch or pack it again)", e);
        }
    }

    private static void ExtractZip(string archive, string destination, Budget budget)
    {
        using var zip = ZipFile.OpenRead(archive);
        var written = new HashSet<string>(FileNames);
        foreach (var entry in zip.Entries)
        {
            budget.CountEntry();
            string target = SafeTarget(archive, destination, entry.FullName);
            // A Unix symbolic link stored by zip -y: its mode's file type sits in the high half of the external attributes.
            if (((entry.ExternalAttributes >> 16) & 0xF000) == 0xA000)
                throw new StageFailedException($"{archive}: entry '{entry.FullName}' is a link; links in dataset archives are refused");
            if (entry.FullName.EndsWith('/'))
            {
                CreateFolder(archive, target, entry.FullName);
                continue;
            }
            CreateFolder(archive, Path.GetDirectoryName(target)!, entry.FullName, target);
            ClaimFile(archive, written, target, entry.FullName);
            using var source = entry.Open();
            budget.Copy(source, target, entry.FullName);
        }
    }

    private static void ExtractTar(string archive, string destination, Budget budget)
    {
        using var file = File.OpenRead(archive);
        using Stream stream = archive.EndsWith(".tar", StringComparison.OrdinalIgnoreCase) ? file : new GZipStream(file, CompressionMode.Decompress);
        using var tar = new TarReader(stream);
        var written = new HashSet<string>(FileNames);
        while (tar.GetNextEntry() is { } entry)
        {
            budget.CountEntry();
            string target = SafeTarget(archive, destination, entry.Name);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    CreateFolder(archive, target, entry.Name);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    CreateFolder(archive, Path.GetDirectoryName(target)!, entry.Name, target);
                    ClaimFile(archive, written, target, entry.Name);
                    if (entry.DataStream is null) File.WriteAllBytes(target, []);
                    else budget.Copy(entry.DataStream, target, entry.Name);
                    break;
                case TarEntryType.SymbolicLink or TarEntryType.HardLink:
                    throw new StageFailedException($"{archive}: entry '{entry.Name}' is a link to '{entry.LinkName}'; links in dataset archives are refused");
                default:
                    break; // metadata entries (PAX headers, global extended attributes) carry no file
            }
        }
    }

    /// <summary>
    /// The folder an entry is or goes into, and, for a file entry, that no folder has its name: an archive holding a file
    /// and a folder of one name cannot be laid out.
    /// </summary>
    private static void CreateFolder(string archive, string folder, string entryName, string? file = null)
    {
        if (file is not null && Directory.Exists(file))
            throw new StageFailedException($"{archive}: entry '{entryName}' is a file where the archive has a folder; repack it");
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (IOException) when (FileAbove(folder) is { } blocking)
        {
            throw new StageFailedException($"{archive}: entry '{entryName}' needs a folder where the archive has a file ('{Path.GetFileName(blocking)}'); repack it");
        }
    }

    /// <summary>
    /// How this file system compares names: two entries that name one file (the same name twice, or on Windows and macOS
    /// the same name in another case) would leave only the last one's bytes, under the first one's caption.
    /// </summary>
    private static StringComparer FileNames => OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    private static void ClaimFile(string archive, HashSet<string> written, string target, string entryName)
    {
        if (!written.Add(target))
            throw new StageFailedException($"{archive}: entry '{entryName}' names a file an earlier entry already wrote; which of the two is meant " +
                "is not the tool's to guess (repack it with one entry per file)");
    }

    private static string? FileAbove(string folder)
    {
        for (string? path = folder; !string.IsNullOrEmpty(path); path = Path.GetDirectoryName(path))
            if (File.Exists(path)) return path;
        return null;
    }

    /// <summary>
    /// What an archive may still unpack, counted from the bytes actually written (a zip's declared sizes can lie).
    /// </summary>
    private sealed class Budget(string archive, long maxBytes, int maxEntries)
    {
        private long _bytes;
        private int _entries;

        public void CountEntry()
        {
            if (++_entries > maxEntries)
                throw new StageFailedException($"{archive}: more than {maxEntries:N0} entries; the archive is refused");
        }

        public void Copy(Stream source, string target, string entryName)
        {
            using var output = File.Create(target);
            var buffer = new byte[81920];
            int read;
            while ((read = source.Read(buffer)) > 0)
            {
                _bytes += read;
                if (_bytes > maxBytes)
                    throw new StageFailedException($"{archive}: unpacks to more than {maxBytes:N0} bytes (at entry '{entryName}'); " +
                        $"refused as a decompression bomb (the limit is {BaseUnpackedBytes >> 30} GiB + {MaxExpansion}× the archive's size)");
                output.Write(buffer, 0, read);
            }
        }
    }

    private static readonly char[] InvalidNameCharacters = Path.GetInvalidFileNameChars();

    // NAME_MAX on Linux and macOS (Windows allows 255 UTF-16 units, which is at least as many).
    private const int MaxNameBytes = 255;

    private static string SafeTarget(string archive, string destination, string entryName)
    {
        string target = Path.GetFullPath(Path.Combine(destination, entryName));
        if (target.TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(destination).TrimEnd(Path.DirectorySeparatorChar))
            return target; // "./" names the folder itself
        if (Path.IsPathRooted(entryName) || !ImageFolderSource.IsInside(destination, target))
            throw new StageFailedException($"{archive}: entry '{entryName}' would be written outside the extraction folder; the archive is refused");
        foreach (string name in entryName.Split(['/', Path.DirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries))
        {
            if (name.IndexOfAny(InvalidNameCharacters) >= 0)
                throw new StageFailedException($"{archive}: entry '{entryName}' has a character this file system does not allow in a name; repack it");
            if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
                throw new StageFailedException($"{archive}: entry '{entryName}' has a name of {Encoding.UTF8.GetByteCount(name)} bytes, " +
                    $"more than the {MaxNameBytes} file systems allow; repack it with shorter names");
        }
        return target;
    }
}
