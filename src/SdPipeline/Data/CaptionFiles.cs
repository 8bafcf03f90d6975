using CsvHelper;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// Captions of an image folder beyond <c>metadata.jsonl</c>, in the order they are consulted for an image that no
/// <c>metadata.jsonl</c> line describes: a <c>metadata.csv</c> (Hugging Face imagefolder: a header with
/// <c>file_name</c> and the caption column, paths relative to the csv's folder), then kohya-style sidecar files
/// beside the image (<c>photo.txt</c>, then <c>photo.caption</c> for <c>photo.png</c>). Subfolders are read
/// recursively into the one dataset. A sidecar's caption is its first line, trimmed, as kohya's sd-scripts read it
/// (<c>read_caption</c>: <c>lines[0].strip()</c>); a byte-order mark is dropped; an empty sidecar is an empty caption. Every
/// file is read as UTF-8 text (<see cref="CaptionText"/>).
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
            foreach (var (file, caption) in Rows(csv, captionColumn))
            {
                string path = Path.GetFullPath(Path.Combine(folder, file));
                if (ImageFolderSource.IsInside(root, path)) captions._csv.TryAdd(path, caption);
            }
        }
        return captions;
    }

    /// <summary>
    /// The file name and caption of each row of an RFC 4180 file (commas; quoted fields may hold commas, doubled quotes and
    /// line breaks; blank lines skipped). A quote inside an unquoted caption (<c>a 12" record</c>) is text, as pandas, which
    /// Hugging Face's imagefolder reads it with, takes it. A quoted field that never closes or runs into text, or a row whose
    /// field count is not the header's (a caption with an unquoted comma), is an error naming the line: there pandas would
    /// shift captions to other columns or merge rows into one caption.
    /// </summary>
    private static List<(string File, string Caption)> Rows(string csv, string captionColumn)
    {
        var options = new CsvReaderOptions
        {
            Separator = ',',
            HasHeader = true,
            MalformedData = CsvMalformedDataHandling.Recover,
            OnMalformedRecord = record =>
            {
                if (record.Reason != CsvMalformedReason.StrayQuote)
                    throw new CsvFormatException($"Malformed CSV at line {record.LineNumber}: {Describe(record.Reason)}.", record.RecordNumber, record.ByteOffset);
            },
            FieldCountMismatch = CsvFieldCountHandling.Throw,
            TrackLineNumbers = true,
            DetectSeparatorHint = false,
        };
        var rows = new List<(string, string)>();
        try
        {
            using var reader = CsvReader.FromText(CaptionText.ReadAll(csv), options);
            var header = reader.Headers.ToList();
            if (header.Count == 0) return rows;
            int file = header.IndexOf("file_name"), caption = header.IndexOf(captionColumn);
            if (file < 0 || caption < 0)
                throw new StageFailedException($"{csv}: the header needs the columns file_name and {captionColumn} (found: {string.Join(", ", header)})");
            while (reader.Read()) rows.Add((reader.GetString(file), reader.GetString(caption)));
        }
        catch (CsvFormatException e)
        {
            throw new StageFailedException($"{csv}: {e.Message} Quote a caption that holds commas, quotes or line breaks, " +
                "and double the quotes inside it (\"a cat, on a \"\"red\"\" sofa\")", e);
        }
        return rows;
    }

    private static string Describe(CsvMalformedReason reason) => reason switch
    {
        CsvMalformedReason.TextAfterClosingQuote => "text after the closing quote of a quoted field (a quote left open earlier?)",
        CsvMalformedReason.UnterminatedQuote => "a quoted field that is never closed",
        _ => reason.ToString(),
    };

    /// <summary>The caption of <paramref name="image"/> from a csv or a sidecar, and where it came from; null when none has one.</summary>
    public (string Caption, string From)? Find(string image)
    {
        string full = Path.GetFullPath(image);
        if (_csv.TryGetValue(full, out var fromCsv)) return (fromCsv, CsvFile);
        foreach (string extension in SidecarExtensions)
        {
            string sidecar = Path.ChangeExtension(full, extension);
            if (File.Exists(sidecar)) return (FirstLine(CaptionText.ReadAll(sidecar)), Path.GetFileName(sidecar));
        }
        return null;
    }

    /// <summary>The caption of a sidecar's text: its first line (ended by \n, \r or \r\n), trimmed.</summary>
    private static string FirstLine(string text) => (new StringReader(text).ReadLine() ?? "").Trim();
}
