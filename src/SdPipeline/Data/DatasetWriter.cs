using System.Security.Cryptography;
using System.Text;
using Newtonsoft.Json;
using SdPipeline.Progress;

namespace SdPipeline.Data;

/// <summary>Figures of a normalised dataset.</summary>
/// <param name="Items">Items written.</param>
/// <param name="Train">Of which in the training split.</param>
/// <param name="Heldout">Of which held out.</param>
/// <param name="Skipped">Items skipped, by reason.</param>
public sealed record DatasetCounts(int Items, int Train, int Heldout, IReadOnlyDictionary<string, int> Skipped);

/// <summary>
/// Writes the normalised form of a dataset: <c>images/ID.EXT</c> (the source's bytes, not re-encoded),
/// <c>items.jsonl</c> (id, file, caption, sha256, size, split, source) and <c>skipped.jsonl</c>.
/// </summary>
public sealed class DatasetWriter(string folder, int minSide, long maxPixels, double heldoutFraction)
{
    /// <summary>File listing the items.</summary>
    public const string ItemsFile = "items.jsonl";

    /// <summary>File listing the skipped source items.</summary>
    public const string SkippedFile = "skipped.jsonl";

    /// <summary>Folder of the image files.</summary>
    public const string ImagesFolder = "images";

    /// <summary>Validates and writes every candidate, at most <paramref name="limit"/> (0: all).</summary>
    public DatasetCounts Write(IEnumerable<CandidateItem> candidates, int limit, IProgressSink progress, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.Combine(folder, ImagesFolder));
        var ids = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var skippedByReason = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int train = 0, heldout = 0, taken = 0;

        using var items = new StreamWriter(Path.Combine(folder, ItemsFile), append: false, new UTF8Encoding(false)) { NewLine = "\n" };
        using var skipped = new StreamWriter(Path.Combine(folder, SkippedFile), append: false, new UTF8Encoding(false)) { NewLine = "\n" };
        using var bar = progress.Start("normalise images", limit > 0 ? limit : null);

        foreach (var candidate in candidates)
        {
            cancellation.ThrowIfCancellationRequested();
            if (limit > 0 && taken >= limit) break;
            taken++;
            bar.Advance(1);

            string? problem = null;
            byte[]? bytes = null;
            if (candidate.Problem is not null) problem = candidate.Problem;
            else if (candidate.Caption is null) problem = "missing caption";
            else if (candidate.ReadImage is null) problem = "image file not found";
            else
            {
                try { bytes = candidate.ReadImage(); }
                catch (IOException e) { problem = $"unreadable: {e.Message}"; }
            }

            Images.ImageInfo? facts = null;
            if (problem is null)
                (facts, problem) = ImageInspector.Inspect(bytes!, minSide, maxPixels);

            if (problem is not null)
            {
                skipped.WriteLine(JsonConvert.SerializeObject(new SkippedItem(candidate.Source, problem)));
                string category = problem.Split(':')[0];
                skippedByReason[category] = skippedByReason.GetValueOrDefault(category) + 1;
                continue;
            }

            string id = UniqueId(StableId(candidate.Source), ids);
            string file = $"{ImagesFolder}/{id}.{facts!.Extension}";
            File.WriteAllBytes(Path.Combine(folder, file), bytes!);
            string split = candidate.Split ?? SplitByHash(id, heldoutFraction);
            if (split == DatasetItem.HeldoutSplit) heldout++; else train++;
            items.WriteLine(JsonConvert.SerializeObject(new DatasetItem(
                id, file, candidate.Caption!, Convert.ToHexStringLower(SHA256.HashData(bytes!)), facts.Width, facts.Height, split, candidate.Source)));
        }
        return new DatasetCounts(train + heldout, train, heldout, skippedByReason);
    }

    /// <summary>An id made of the source location's safe characters: <c>data/train-0.parquet#12</c> → <c>data-train-0-12</c>.</summary>
    public static string StableId(string source)
    {
        string withoutExtension = System.Text.RegularExpressions.Regex.Replace(source, @"\.(png|jpe?g|webp|bmp|gif|tiff?|parquet)(?=$|#)", "", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
        var builder = new StringBuilder();
        foreach (char c in withoutExtension)
            builder.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' ? c : '-');
        string id = System.Text.RegularExpressions.Regex.Replace(builder.ToString(), "-{2,}", "-").Trim('-', '.');
        return id.Length == 0 ? "item" : id;
    }

    /// <summary>The split of an item without one from its source: a fixed share by a hash of its id, so it never moves.</summary>
    public static string SplitByHash(string id, double heldoutFraction)
    {
        ulong hash = BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(id)), 0);
        return hash / (double)ulong.MaxValue < heldoutFraction ? DatasetItem.HeldoutSplit : DatasetItem.TrainSplit;
    }

    private static string UniqueId(string id, HashSet<string> taken)
    {
        string unique = id;
        for (int n = 2; !taken.Add(unique); n++) unique = $"{id}-{n}";
        return unique;
    }
}
