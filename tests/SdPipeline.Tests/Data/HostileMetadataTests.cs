using Newtonsoft.Json.Linq;
using SdPipeline.Data;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Data;

/// <summary>
/// Image folders whose metadata.jsonl is wrong in the ways a hand-edited or hostile file is: each bad line is
/// skipped with its own reason (or, for an ambiguous line, the stage stops naming it), never a crash.
/// </summary>
public sealed class HostileMetadataTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private string Folder(string name, params string[] metadataLines)
    {
        string folder = _temp.File(name);
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        File.WriteAllBytes(Path.Combine(folder, "a.png"), DatasetFiles.Png(64, 64, 10));
        File.WriteAllBytes(Path.Combine(folder, "b.png"), DatasetFiles.Png(64, 64, 90));
        File.WriteAllBytes(Path.Combine(folder, "sub", "c.png"), DatasetFiles.Png(64, 64, 200));
        File.WriteAllLines(Path.Combine(folder, ImageFolderSource.MetadataFile), metadataLines);
        return folder;
    }

    private static string[] Registry(string folder, string registryPath)
    {
        File.WriteAllText(registryPath, new JObject { ["datasets"] = new JObject { ["test"] = new JObject { ["source"] = folder } } }.ToString());
        return ["--set", "download.dataset=test", "--set", $"download.registry={registryPath}", "--set", "latents.max_skipped_fraction=1"];
    }

    [Test]
    public void Read_Should_GiveEachBadLineItsOwnReason()
    {
        string folder = Folder("data",
            """{"file_name": 5, "text": "a number"}""",
            """{"file_name": "a.png", "text": {"nested": true}}""",
            """{"file_name": "../../../etc/passwd", "text": "escape"}""",
            """{"file_name": "b.png", "text": "fine"}""",
            """{"file_name": "b.png", "text": "again"}""",
            """{"text": "no file"}""",
            """{"file_name": "sub/c.png", "text": "in a sub-folder"}""");

        var items = ImageFolderSource.Read(folder, "text").ToList();

        Assert.That(items.Select(i => i.Problem), Is.EqualTo(new[]
        {
            "bad metadata: file_name is a number, not a string",
            "bad metadata: text is an object, not a string",
            "bad metadata: file_name '../../../etc/passwd' is not a file inside the dataset folder",
            null,
            "bad metadata: file_name 'b.png' is described twice",
            "bad metadata: no file_name",
            null,
        }));
        Assert.That(items.Where(i => i.Problem is null).Select(i => (i.Source, i.Caption)),
            Is.EqualTo(new[] { ("b.png", "fine"), ("sub/c.png", "in a sub-folder") }));
    }

    [Test]
    public void Read_Should_FailNamingTheLine_When_ACaptionIsNotUtf8()
    {
        // Given a metadata.jsonl whose second caption was saved in Windows-1252 ("café" with é as the one byte 0xE9)
        string folder = Folder("data", """{"file_name": "a.png", "text": "one"}""");
        using (var file = File.OpenWrite(Path.Combine(folder, ImageFolderSource.MetadataFile)))
        {
            file.Seek(0, SeekOrigin.End);
            file.Write("{\"file_name\": \"b.png\", \"text\": \"a caf"u8);
            file.WriteByte(0xE9);
            file.Write("\"}\n"u8);
        }

        // When the folder is read
        var error = Assert.Throws<StageFailedException>(() => ImageFolderSource.Read(folder, "text").ToList())!;

        // Then it stops naming the line and the fix, as Hugging Face datasets would, instead of captioning b.png "a caf\uFFFD"
        // (a caption transformers' CLIP tokenizer reads as "a caf")
        Assert.That(error.Message, Does.Contain("metadata.jsonl:2").And.Contain("not UTF-8").And.Contain("save the file as UTF-8"));
    }

    [Test]
    public void Read_Should_FailNamingTheLine_When_AKeyIsGivenTwice()
    {
        string folder = Folder("data", """{"file_name": "a.png", "text": "one"}""", """{"file_name": "b.png", "text": "two", "text": "three"}""");

        var error = Assert.Throws<StageFailedException>(() => ImageFolderSource.Read(folder, "text").ToList())!;

        Assert.That(error.Message, Does.Contain("metadata.jsonl:2").And.Contain("'text' already exists"));
    }

    [Test]
    public void OutermostFolders_Should_DropSubFoldersOfAnotherRoot_KeepingTheOrder()
    {
        string a = _temp.File("z"), b = _temp.File("z/sub"), c = _temp.File("a"), d = _temp.File("zz");

        Assert.That(ImageFolderSource.OutermostFolders([b, a, c, d, a]), Is.EqualTo(new[] { a, c, d }));
    }

    [Test]
    public void RunDownload_Should_SkipBadLinesWithTheirReasons_And_Exit0()
    {
        string folder = Folder("data",
            """{"file_name": 5, "text": "a number"}""",
            """{"file_name": "../../../etc/passwd", "text": "escape"}""",
            """{"file_name": "a.png", "text": "fine"}""",
            """{"file_name": "b.png", "text": "also fine"}""");

        var result = CliRunner.Sdpipe(RepoPaths.Root, null, ["run", "download", .. Registry(folder, _temp.File("datasets.json")), "--artifacts", _temp.File("artifacts")]);

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.All, Does.Contain("2 items").And.Contain("bad metadata"));
        string skipped = File.ReadAllText(Directory.GetFiles(_temp.File("artifacts/download"), DatasetWriter.SkippedFile, SearchOption.AllDirectories).Single());
        Assert.That(skipped, Does.Contain("file_name is a number").And.Contain("'../../../etc/passwd' is not a file inside"));
    }

    [Test]
    public void RunDownload_Should_Exit1NamingTheLine_When_MetadataHasADuplicateKey()
    {
        string folder = Folder("data", """{"file_name": "a.png", "text": "one", "file_name": "b.png"}""");

        var result = CliRunner.Sdpipe(RepoPaths.Root, null, ["run", "download", .. Registry(folder, _temp.File("datasets.json")), "--artifacts", _temp.File("artifacts")]);

        Assert.That(result.ExitCode, Is.EqualTo(1), result.All);
        Assert.That(result.Error, Does.Contain("metadata.jsonl:1").And.Contain("'file_name' already exists"));
        Assert.That(result.Error, Does.Not.Contain("   at "));
    }

    [Test]
    public void Plan_Should_Exit2NamingTheKey_When_TheProfileGivesAKeyTwice()
    {
        File.WriteAllText(_temp.File("p.json"), """{"train": {"learning_rate": 0.001, "learning_rate": 0.1}}""");

        var result = CliRunner.Sdpipe(_temp.Path, null, "plan", "--config", _temp.File("p.json"));

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("p.json").And.Contain("'learning_rate' already exists"));
    }
}
