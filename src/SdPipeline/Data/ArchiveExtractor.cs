using System.Formats.Tar;
using System.IO.Compression;
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

    /// <summary>Unpacks <paramref name="archive"/> into <paramref name="destination"/>.</summary>
    /// <exception cref="StageFailedException">An entry escapes the folder, or the archive is unreadable.</exception>
    public static void Extract(string archive, string destination)
    {
        Directory.CreateDirectory(destination);
        try
        {
            if (archive.EndsWith(".zip", StringComparison.OrdinalIgnoreCase))
                ExtractZip(archive, destination);
            else
                ExtractTar(archive, destination);
        }
        catch (InvalidDataException e)
        {
            throw new StageFailedException($"{archive}: not a readable archive: {e.Message}", e);
        }
    }

    private static void ExtractZip(string archive, string destination)
    {
        using var zip = ZipFile.OpenRead(archive);
        foreach (var entry in zip.Entries)
        {
            string target = SafeTarget(archive, destination, entry.FullName);
            if (entry.FullName.EndsWith('/'))
            {
                Directory.CreateDirectory(target);
                continue;
            }
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            entry.ExtractToFile(target, overwrite: true);
        }
    }

    private static void ExtractTar(string archive, string destination)
    {
        using var file = File.OpenRead(archive);
        using Stream stream = archive.EndsWith(".tar", StringComparison.OrdinalIgnoreCase) ? file : new GZipStream(file, CompressionMode.Decompress);
        using var tar = new TarReader(stream);
        while (tar.GetNextEntry() is { } entry)
        {
            string target = SafeTarget(archive, destination, entry.Name);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    Directory.CreateDirectory(target);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    entry.ExtractToFile(target, overwrite: true);
                    break;
                case TarEntryType.SymbolicLink or TarEntryType.HardLink:
                    throw new StageFailedException($"{archive}: entry '{entry.Name}' is a link to '{entry.LinkName}'; links in dataset archives are refused");
                default:
                    break; // metadata entries (PAX headers, global extended attributes) carry no file
            }
        }
    }

    private static string SafeTarget(string archive, string destination, string entryName)
    {
        string target = Path.GetFullPath(Path.Combine(destination, entryName));
        if (target.TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(destination).TrimEnd(Path.DirectorySeparatorChar))
            return target; // "./" names the folder itself
        if (Path.IsPathRooted(entryName) || !ImageFolderSource.IsInside(destination, target))
            throw new StageFailedException($"{archive}: entry '{entryName}' would be written outside the extraction folder; the archive is refused");
        return target;
    }
}
