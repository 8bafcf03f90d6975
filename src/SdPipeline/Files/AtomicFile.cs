namespace SdPipeline.Files;

/// <summary>Writes files through a temporary sibling, flushed to disk, and a rename, so a reader never sees half a file.</summary>
public static partial class AtomicFile
{
    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> atomically.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, temp => File.WriteAllText(temp, text));

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically.</summary>
    public static void WriteAllBytes(string path, byte[] bytes) =>
        Write(path, temp => File.WriteAllBytes(temp, bytes));

    /// <summary>
    /// Whether <paramref name="path"/> is the temporary sibling <see cref="Write"/> fills: one left behind by a killed process
    /// is half a file, never a finished one.
    /// </summary>
    public static bool IsTemporary(string path) => TemporaryName().IsMatch(Path.GetFileName(path));

    [System.Text.RegularExpressions.GeneratedRegex(@"\.tmp-[0-9]+-[0-9a-f]{32}$")]
    private static partial System.Text.RegularExpressions.Regex TemporaryName();

    /// <summary>Lets <paramref name="write"/> fill a temporary path, then renames it to <paramref name="path"/>.</summary>
    public static void Write(string path, Action<string> write)
    {
        string temp = $"{path}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            write(temp);
            // The rename is what readers trust, so the data must be on disk first (a power loss would otherwise leave the name and lose the bytes).
            Durability.FlushFile(temp);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
