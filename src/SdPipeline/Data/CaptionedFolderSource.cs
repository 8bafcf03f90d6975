using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// An image folder with captions from any of the places practitioners keep them, consulted in this order for each
/// image: its <c>metadata.jsonl</c> line (<see cref="ImageFolderSource"/>), a <c>metadata.csv</c> row, a
/// <c>NAME.txt</c> sidecar, a <c>NAME.caption</c> sidecar (<see cref="CaptionFiles"/>). Subfolders belong to the same
/// dataset. An image none of them captions is handled as <c>download.missing_caption</c> says.
/// </summary>
public static class CaptionedFolderSource
{
    /// <summary>The candidates of <paramref name="root"/>, in path order.</summary>
    public static IEnumerable<CandidateItem> Read(string root, string captionColumn)
    {
        var captions = CaptionFiles.Read(root, captionColumn);
        bool jsonl = Directory.EnumerateFiles(root, ImageFolderSource.MetadataFile, SearchOption.AllDirectories).Any();
        var candidates = jsonl
            ? ImageFolderSource.Read(root, captionColumn)
            : Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(ImageFolderSource.IsImageFile).Order(StringComparer.Ordinal)
                .Select(image => new CandidateItem(Path.GetRelativePath(root, image).Replace('\\', '/'), null, () => ImageFolderSource.ReadImageFile(image)));
        foreach (var candidate in candidates)
        {
            if (candidate.Caption is null && candidate.ReadImage is not null && captions.Find(Path.Combine(root, candidate.Source)) is { } found)
                yield return candidate with { Caption = found.Caption };
            else
                yield return candidate;
        }
    }

    /// <summary>Applies <c>download.missing_caption</c> to images that still have no caption.</summary>
    /// <exception cref="StageFailedException">With <c>error</c>: the first uncaptioned image, and where captions are looked for.</exception>
    public static IEnumerable<CandidateItem> WithMissingCaptions(IEnumerable<CandidateItem> candidates, string policy)
    {
        foreach (var candidate in candidates)
        {
            if (candidate.Caption is not null || candidate.ReadImage is null || policy == "skip") yield return candidate;
            else if (policy == "empty") yield return candidate with { Caption = "" };
            else throw new StageFailedException($"{candidate.Source}: no caption (looked for a metadata.jsonl line, a metadata.csv row, and {Path.GetFileNameWithoutExtension(candidate.Source)}.txt / .caption beside it); " +
                "add one, or set download.missing_caption=skip (leave it out) or empty (train it with the empty caption)");
        }
    }
}
