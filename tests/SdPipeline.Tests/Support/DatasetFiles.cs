using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Parquet;
using Parquet.Schema;
using SdPipeline.Images;

namespace SdPipeline.Tests.Support;

/// <summary>Builds small dataset files (images, archives, parquet) for download tests.</summary>
public static class DatasetFiles
{
    public static byte[] Png(int width, int height, byte shade)
    {
        var image = new RgbImage(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                image.Set(x, y, shade, (byte)(255 - shade), (byte)(x * 255 / Math.Max(1, width - 1)));
        return ImageCodec.EncodePng(image);
    }

    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>A zip holding an image folder: files plus metadata.jsonl lines for the captioned ones.</summary>
    public static byte[] ImageFolderZip(IEnumerable<(string Name, byte[] Bytes, string? Caption)> files, IEnumerable<(string Name, byte[] Bytes)>? extra = null)
    {
        using var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            var metadata = new StringBuilder();
            foreach (var (name, bytes, caption) in files)
            {
                using (var entry = zip.CreateEntry(name).Open()) entry.Write(bytes);
                if (caption is not null) metadata.Append($"{{\"file_name\": \"{name}\", \"text\": \"{caption}\"}}\n");
            }
            using (var entry = zip.CreateEntry("metadata.jsonl").Open()) entry.Write(Encoding.UTF8.GetBytes(metadata.ToString()));
            foreach (var (name, bytes) in extra ?? [])
                using (var entry = zip.CreateEntry(name).Open()) entry.Write(bytes);
        }
        return stream.ToArray();
    }

    /// <summary>A tar.gz holding the same image-folder layout.</summary>
    public static byte[] ImageFolderTarGz(IEnumerable<(string Name, byte[] Bytes, string Caption)> files)
    {
        using var stream = new MemoryStream();
        using (var gzip = new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true))
        {
            var metadata = new StringBuilder();
            foreach (var (name, bytes, caption) in files)
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(bytes) });
                metadata.Append($"{{\"file_name\": \"{name}\", \"text\": \"{caption}\"}}\n");
            }
            tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "metadata.jsonl") { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(metadata.ToString())) });
        }
        return stream.ToArray();
    }

    /// <summary>A parquet file laid out as Hugging Face writes image datasets: image {bytes, path} and a caption column.</summary>
    public static byte[] Parquet(IReadOnlyList<(byte[] Image, string Caption)> rows, string captionColumn)
    {
        var bytesField = new DataField("bytes", typeof(byte[]), true);
        var pathField = new DataField("path", typeof(string), true);
        var captionField = new DataField(captionColumn, typeof(string), true);
        var schema = new ParquetSchema(new StructField("image", bytesField, pathField), captionField);
        using var stream = new MemoryStream();
        var writer = ParquetWriter.CreateAsync(schema, stream).GetAwaiter().GetResult();
        try
        {
            using var group = writer.CreateRowGroup();
            group.WriteAsync(bytesField, rows.Select(r => r.Image).ToArray(), null).GetAwaiter().GetResult();
            group.WriteAsync(pathField, rows.Select((_, i) => $"{i}.png").ToArray(), null).GetAwaiter().GetResult();
            group.WriteAsync(captionField, rows.Select(r => r.Caption).ToArray(), null).GetAwaiter().GetResult();
        }
        finally
        {
            writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return stream.ToArray();
    }
}
