using Parquet;
using Parquet.Schema;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// Parquet files as Hugging Face datasets ship them: an image column (a struct with <c>bytes</c> and
/// <c>path</c>, or a plain binary column) and a caption column, both named in the registry.
/// </summary>
public static class ParquetSource
{
    /// <summary>The most rows one row group may declare (image datasets write hundreds to thousands).</summary>
    public const long MaxRowsPerGroup = 1_000_000;

    /// <summary>The candidates of every file in order, row by row.</summary>
    public static IEnumerable<CandidateItem> Read(IReadOnlyList<(string Path, string Name)> files, string imageColumn, string captionColumn)
    {
        foreach (var (path, name) in files)
            foreach (var item in ReadFile(path, name, imageColumn, captionColumn))
                yield return item;
    }

    private static IEnumerable<CandidateItem> ReadFile(string path, string name, string imageColumn, string captionColumn)
    {
        var reader = ParquetReader.CreateAsync(path).GetAwaiter().GetResult();
        try
        {
            var fields = reader.Schema.GetDataFields();
            var imageField = fields.FirstOrDefault(f => f.Path.ToList() is var parts && parts[0] == imageColumn && (parts.Count == 1 || parts[^1] == "bytes"))
                ?? throw new StageFailedException($"{name}: no image column '{imageColumn}' (columns: {Columns(fields)}); set image_column in datasets.json");
            var captionField = fields.FirstOrDefault(f => f.Path.ToString() == captionColumn)
                ?? throw new StageFailedException($"{name}: no caption column '{captionColumn}' (columns: {Columns(fields)}); set caption_column in datasets.json");

            long row = 0;
            for (int group = 0; group < reader.RowGroupCount; group++)
            {
                using var groupReader = reader.OpenRowGroupReader(group);
                // The arrays below are sized from the file's own claim; a damaged or hostile file could claim billions.
                if (groupReader.RowCount is < 0 or > MaxRowsPerGroup)
                    throw new StageFailedException($"{name}: row group {group} declares {groupReader.RowCount} rows; more than {MaxRowsPerGroup:N0} in one group is refused (damaged file?)");
                var images = new byte[]?[groupReader.RowCount];
                var captions = new string?[groupReader.RowCount];
                groupReader.ReadAsync(imageField, images.AsMemory(), null).AsTask().GetAwaiter().GetResult();
                groupReader.ReadAsync(captionField, captions.AsMemory(), null).AsTask().GetAwaiter().GetResult();
                for (int i = 0; i < images.Length; i++, row++)
                {
                    byte[]? image = images[i];
                    yield return new CandidateItem($"{name}#{row}", captions[i], image is null ? null : () => image);
                }
            }
        }
        finally
        {
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static string Columns(IEnumerable<DataField> fields) => string.Join(", ", fields.Select(f => f.Path.ToString()));
}
