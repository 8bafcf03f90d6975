using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using Newtonsoft.Json.Linq;
using SdPipeline.Data;
using SdPipeline.Images;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Data;

/// <summary>Inputs that are small on the wire and huge in memory or on disk are refused before they are.</summary>
public sealed class SizeLimitTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    [Test]
    public void Extract_Should_RefuseAZipBomb_CountingTheBytesWritten()
    {
        // 8 MiB of zeros compress to a few KiB; the budget is 1 MiB
        string zip = _temp.File("bomb.zip");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Create))
        using (var entry = archive.CreateEntry("zeros.png").Open())
            entry.Write(new byte[8 << 20]);

        var error = Assert.Throws<StageFailedException>(() => ArchiveExtractor.Extract(zip, _temp.File("out"), maxBytes: 1 << 20))!;

        Assert.That(error.Message, Does.Contain("bomb.zip").And.Contain("zeros.png").And.Contain("decompression bomb"));
        Assert.That(new FileInfo(_temp.File("out/zeros.png")).Length, Is.LessThanOrEqualTo(1 << 20));
    }

    [Test]
    public void Extract_Should_RefuseATarGzBomb()
    {
        string tgz = _temp.File("bomb.tar.gz");
        using (var file = File.Create(tgz))
        using (var gzip = new GZipStream(file, CompressionLevel.SmallestSize))
        using (var tar = new TarWriter(gzip))
            tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "zeros.png") { DataStream = new MemoryStream(new byte[8 << 20]) });

        var error = Assert.Throws<StageFailedException>(() => ArchiveExtractor.Extract(tgz, _temp.File("out"), maxBytes: 1 << 20))!;

        Assert.That(error.Message, Does.Contain("bomb.tar.gz").And.Contain("decompression bomb"));
    }

    [Test]
    public void Extract_Should_RefuseTooManyEntries()
    {
        string zip = _temp.File("many.zip");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Create))
            for (int i = 0; i < 20; i++) archive.CreateEntry($"f{i}.txt");

        var error = Assert.Throws<StageFailedException>(() => ArchiveExtractor.Extract(zip, _temp.File("out"), maxEntries: 10))!;

        Assert.That(error.Message, Does.Contain("many.zip").And.Contain("more than 10 entries"));
    }

    [Test]
    public void DecodeRgb_Should_Refuse_When_ThePixelBufferWouldOverflowAnInt()
    {
        // A PNG header claiming 30000 x 20000 pixels: 2.4e9 RGBA bytes wrapped to a small int before.
        byte[] png = PngHeader(30000, 20000);

        var error = Assert.Throws<InvalidDataException>(() => ImageCodec.DecodeRgb(png))!;

        Assert.That(error.Message, Does.Contain("30000x20000").And.Contain("too large to decode"));
    }

    [Test]
    public void CaptionedFolder_Should_RefuseAnImageFileTooLargeToRead_When_CaptionsAreSidecars()
    {
        // Given a folder without metadata.jsonl (kohya-style sidecars) holding a 300 MiB (sparse) big.png
        string folder = _temp.File("sidecars");
        Directory.CreateDirectory(folder);
        using (var big = File.Create(Path.Combine(folder, "big.png"))) big.SetLength(300L << 20);
        File.WriteAllText(Path.Combine(folder, "big.txt"), "huge");

        // When its candidate's image is read
        var candidate = CaptionedFolderSource.Read(folder, "text").Single();

        // Then it is refused before 300 MiB are read into memory, as with metadata.jsonl
        var error = Assert.Throws<IOException>(() => candidate.ReadImage!())!;
        Assert.That(error.Message, Does.Contain("over the 256 MiB"));
    }

    [Test]
    public void RunDownload_Should_SkipAnImageFileTooLargeToRead_And_Exit0()
    {
        // Given an image folder with one good image and a 300 MiB (sparse) file called big.png
        string folder = _temp.File("data");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "a.png"), DatasetFiles.Png(64, 64, 10));
        using (var big = File.Create(Path.Combine(folder, "big.png"))) big.SetLength(300L << 20);
        File.WriteAllLines(Path.Combine(folder, "metadata.jsonl"),
            ["""{"file_name": "a.png", "text": "fine"}""", """{"file_name": "big.png", "text": "huge"}"""]);
        File.WriteAllText(_temp.File("datasets.json"), new JObject { ["datasets"] = new JObject { ["test"] = new JObject { ["source"] = folder } } }.ToString());

        var result = CliRunner.Sdpipe(RepoPaths.Root, null, "run", "download", "--set", "download.dataset=test",
            "--set", $"download.registry={_temp.File("datasets.json")}", "--artifacts", _temp.File("artifacts"));

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        string skipped = File.ReadAllText(Directory.GetFiles(_temp.File("artifacts/download"), DatasetWriter.SkippedFile, SearchOption.AllDirectories).Single());
        Assert.That(skipped, Does.Contain("big.png").And.Contain("over the 256 MiB"));
    }

    /// <summary>A PNG signature and IHDR chunk (with its CRC) for an 8-bit RGB image, and an empty IDAT.</summary>
    private static byte[] PngHeader(int width, int height)
    {
        var stream = new MemoryStream();
        stream.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        Chunk(stream, "IHDR", ihdr);
        Chunk(stream, "IDAT", []);
        Chunk(stream, "IEND", []);
        return stream.ToArray();
    }

    private static void Chunk(Stream stream, string type, byte[] data)
    {
        var length = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        stream.Write(length);
        byte[] typeAndData = [.. Encoding.ASCII.GetBytes(type), .. data];
        stream.Write(typeAndData);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typeAndData));
        stream.Write(crc);
    }

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    [Test]
    public void ParquetSource_Should_RefuseARowGroupDeclaringMoreRowsThanTheCap_BeforeReadingIt()
    {
        // One row group of MaxRowsPerGroup + 1 one-byte rows: a few MB on disk, but the reader sizes its buffers from the
        // group's declared row count, so a hostile footer could make it allocate billions of entries.
        byte[] pixel = [0];
        var rows = Enumerable.Repeat((pixel, "c"), (int)ParquetSource.MaxRowsPerGroup + 1).ToList();
        string file = _temp.File("many.parquet");
        File.WriteAllBytes(file, DatasetFiles.Parquet(rows, "text"));

        var error = Assert.Throws<StageFailedException>(() => ParquetSource.Read([(file, "many.parquet")], "image", "text").ToList());

        Assert.That(error!.Message, Does.Contain("many.parquet: row group 0 declares 1000001 rows"));
        // At the cap itself the file reads (the limit is not off by one).
        rows.RemoveAt(0);
        File.WriteAllBytes(file, DatasetFiles.Parquet(rows, "text"));
        Assert.That(ParquetSource.Read([(file, "many.parquet")], "image", "text").Count(), Is.EqualTo(ParquetSource.MaxRowsPerGroup));
    }
}
