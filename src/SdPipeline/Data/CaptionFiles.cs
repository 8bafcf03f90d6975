using System.Text;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// Captions of an image folder beyond <c>metadata.jsonl</c>, in the order they are consulted for an image that no
/// <c>metadata.jsonl</c> line describes: a <c>metadata.csv</c> (Hugging Face imagefolder: a header with
/// <c>file_name</c> and the caption column, paths relative to the csv's folder), then kohya-style sidecar files
/// beside the image (<c>photo.txt</c>, then <c>photo.caption</c> for <c>photo.png</c>). Subfolders are read
/// recursively into the one dataset. Sidecars are read as UTF-8, trimmed; an empty sidecar is an empty caption.
/// </summary>
public sealed class CaptionFiles
{
    /// <summary>The csv metadata file's name.</summary>
    public const string CsvFile = "metadata.csv";

    /// <summary>Sidecar extensions, in the order they are tried.</summary>
    public static IReadOnlyList<string> SidecarExtensions { get; } = [".txt", ".caption"];

    private readonly Dictionary<string, string> _csv = new(StringComparer.Ordinal);

    private CaptionFiles() { }

    /// <summary>Reads every <c>metadata.csv</c> under <paramref name="root"/>.</summary>
    /// <exception cref="StageFailedException">A csv without <c>file_name</c> or the caption column, or with a broken row.</exception>
    public static CaptionFiles Read(string root, string captionColumn)
    {
        var captions = new CaptionFiles();
        foreach (string csv in Directory.EnumerateFiles(root, CsvFile, SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string folder = Path.GetDirectoryName(csv)!;
            var rows = CsvRows(File.ReadAllText(csv, Encoding.UTF8), csv).ToList();
            if (rows.Count == 0) continue;
            int file = rows[0].IndexOf("file_name"), caption = rows[0].IndexOf(captionColumn);
            if (file < 0 || caption < 0)
                throw new StageFailedException($"{csv}: the header needs the columns file_name and {captionColumn} (found: {string.Join(", ", rows[0])})");
            for (int i = 1; i < rows.Count; i++)
            {
                var row = rows[i];
                if (row.Count == 1 && row[0].Length == 0) continue; // blank line
                if (row.Count <= Math.Max(file, caption))
                    throw new StageFailedException($"{csv}: row {i + 1} has {row.Count} fields; the header has {rows[0].Count}");
                string path = Path.GetFullPath(Path.Combine(folder, row[file]));
                if (ImageFolderSource.IsInside(root, path)) captions._csv.TryAdd(path, row[caption]);
            }
        }
        return captions;
    }

    /// <summary>The caption of <paramref name="image"/> from a csv or a sidecar, and where it came from; null when none has one.</summary>
    public (string Caption, string From)? Find(string image)
    {
        string full = Path.GetFullPath(image);
        if (_csv.TryGetValue(full, out var fromCsv)) return (fromCsv, CsvFile);
        foreach (string extension in SidecarExtensions)
        {
            string sidecar = Path.ChangeExtension(full, extension);
            if (File.Exists(sidecar)) return (File.ReadAllText(sidecar, Encoding.UTF8).Trim(), Path.GetFileName(sidecar));
        }
        return null;
    }

    /// <summary>RFC 4180 rows: fields separated by commas, quoted fields may hold commas, doubled quotes and line breaks.</summary>
    public static IEnumerable<List<string>> CsvRows(string text, string source)
    {
        var row = new List<string>();
        var field = new StringBuilder();
        bool quoted = false, any = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            any = true;
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
                continue;
            }
            switch (c)
            {
                case '"' when field.Length == 0: quoted = true; break;
                case ',': row.Add(field.ToString()); field.Clear(); break;
                case '\r': break;
                case '\n':
                    row.Add(field.ToString());
                    field.Clear();
                    yield return row;
                    row = [];
                    any = false;
                    break;
                default: field.Append(c); break;
            }
        }
        if (quoted) throw new StageFailedException($"{source}: a quoted field is not closed before the end of the file");
        if (any)
        {
            row.Add(field.ToString());
            yield return row;
        }
    }
}
