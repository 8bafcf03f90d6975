using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// A Hugging Face "imagefolder": image files with a <c>metadata.jsonl</c> whose lines give <c>file_name</c>
/// and the caption (field <c>text</c>, or the registry's <c>caption_column</c>). Metadata files in
/// sub-folders apply to that sub-folder.
/// </summary>
public static class ImageFolderSource
{
    /// <summary>The metadata file's name.</summary>
    public const string MetadataFile = "metadata.jsonl";

    /// <summary>The candidates of <paramref name="root"/>, in path order.</summary>
    public static IEnumerable<CandidateItem> Read(string root, string captionColumn)
    {
        var metadataFiles = Directory.EnumerateFiles(root, MetadataFile, SearchOption.AllDirectories)
            .OrderBy(p => p, StringComparer.Ordinal).ToList();
        if (metadataFiles.Count == 0)
            throw new StageFailedException($"{root}: no {MetadataFile} found; an image folder needs one line per image: {{\"file_name\": \"a.png\", \"{captionColumn}\": \"a caption\"}}");

        var described = new HashSet<string>(StringComparer.Ordinal);
        foreach (string metadata in metadataFiles)
        {
            string folder = Path.GetDirectoryName(metadata)!;
            int lineNumber = 0;
            foreach (string line in CaptionText.ReadLines(metadata))
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                JObject row;
                try { row = JObject.Parse(line, StrictJson); }
                catch (JsonReaderException e)
                {
                    // Duplicate keys land here too: which of two captions was meant is not ours to guess.
                    throw new StageFailedException($"{metadata}:{lineNumber}: invalid JSON: {e.Message}");
                }
                string source = Relative(root, metadata) + $":{lineNumber}";
                var fileNameToken = row["file_name"];
                if (fileNameToken is null)
                {
                    yield return new CandidateItem(source, null, null, Problem: "bad metadata: no file_name");
                    continue;
                }
                if (fileNameToken.Type != JTokenType.String)
                {
                    yield return new CandidateItem(source, null, null, Problem: $"bad metadata: file_name is {Describe(fileNameToken)}, not a string");
                    continue;
                }
                string fileName = fileNameToken.Value<string>()!;
                string path = Path.GetFullPath(Path.Combine(folder, fileName));
                if (fileName.Length == 0 || !IsInside(root, path))
                {
                    yield return new CandidateItem(source, null, null, Problem: $"bad metadata: file_name '{fileName}' is not a file inside the dataset folder");
                    continue;
                }
                if (!described.Add(path))
                {
                    yield return new CandidateItem(source, null, null, Problem: $"bad metadata: file_name '{fileName}' is described twice");
                    continue;
                }
                string relative = Relative(root, path);
                var captionToken = row[captionColumn];
                if (captionToken is not null && captionToken.Type is not (JTokenType.String or JTokenType.Null))
                {
                    yield return new CandidateItem(relative, null, null, Problem: $"bad metadata: {captionColumn} is {Describe(captionToken)}, not a string");
                    continue;
                }
                yield return new CandidateItem(relative, captionToken?.Value<string>(),
                    File.Exists(path) ? () => ReadImageFile(path) : null);
            }
        }

        // Images no metadata line describes have no caption: list them as skipped rather than drop them silently.
        foreach (string image in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                     .Where(IsImageFile).Select(Path.GetFullPath).Where(p => !described.Contains(p)).OrderBy(p => p, StringComparer.Ordinal))
            yield return new CandidateItem(Relative(root, image), null, () => ReadImageFile(image));
    }

    /// <summary>The largest image file read into memory; the pixel limit applies only after the header is read.</summary>
    public const long MaxImageFileBytes = 256L * 1024 * 1024;

    /// <summary>Reads an image file whole, refusing (as an unreadable item) one too large to hold in memory.</summary>
    public static byte[] ReadImageFile(string path)
    {
        long length = new FileInfo(path).Length;
        if (length > MaxImageFileBytes)
            throw new IOException($"{length} bytes, over the {MaxImageFileBytes / (1024 * 1024)} MiB an image file may have");
        return File.ReadAllBytes(path);
    }

    private static readonly JsonLoadSettings StrictJson = new() { DuplicatePropertyNameHandling = DuplicatePropertyNameHandling.Error };

    private static string Describe(JToken token) => token.Type switch
    {
        JTokenType.Integer or JTokenType.Float => "a number",
        JTokenType.Boolean => "a boolean",
        JTokenType.Array => "a list",
        JTokenType.Object => "an object",
        JTokenType.Null => "null",
        _ => token.Type.ToString(),
    };

    /// <summary>
    /// The folders to read as image-folder roots: those not inside another of them. Each root's metadata files
    /// are found recursively, so reading a sub-folder as a root of its own would yield its items twice.
    /// </summary>
    public static IReadOnlyList<string> OutermostFolders(IEnumerable<string> folders)
    {
        var full = folders.Select(f => Path.GetFullPath(f)).Distinct(StringComparer.Ordinal).ToList();
        return full.Where(folder => !full.Any(other => other != folder && IsInside(other, folder))).ToList();
    }

    /// <summary>Whether a file name has a common image extension.</summary>
    public static bool IsImageFile(string path) =>
        Path.GetExtension(path).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg" or ".webp" or ".bmp" or ".gif" or ".tif" or ".tiff";

    /// <summary>Whether <paramref name="path"/> lies inside <paramref name="root"/>.</summary>
    public static bool IsInside(string root, string path)
    {
        string fullRoot = Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        return Path.GetFullPath(path).StartsWith(fullRoot, StringComparison.Ordinal);
    }

    private static string Relative(string root, string path) => Path.GetRelativePath(root, path).Replace('\\', '/');
}
