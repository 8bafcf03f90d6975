using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Stages;
using SdPipeline.Config;
using SdPipeline.Data;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Data;

/// <summary><c>download.source</c>: a folder, archive or URL without a registry entry, with captions wherever they are kept.</summary>
[NonParallelizable] // sets SDPIPE_RETRY_DELAY_MS
public sealed class DownloadSourceTests
{
    private TempFolder _temp = null!;
    private List<string> _log = null!;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempFolder();
        _log = [];
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private BuildOutcome Run(params string[] sets)
    {
        // A registry that does not exist: download.source must not need one.
        var config = ConfigLoader.Load(null, [$"download.registry={_temp.File("no-registry.json")}", .. sets]);
        var store = new ArtifactStore(_temp.File("artifacts"));
        return new StageExecutor(ProjectStages.Graph, store, new FileHashCache(null))
            .Run("download", config, false, _log.Add, NullProgress.Instance, CancellationToken.None);
    }

    private static Dictionary<string, string> Captions(BuildOutcome outcome) =>
        File.ReadLines(Path.Combine(outcome.Directory, DatasetWriter.ItemsFile)).Select(l => JsonConvert.DeserializeObject<DatasetItem>(l)!)
            .ToDictionary(i => i.Source, i => i.Caption);

    private static List<string> Skipped(BuildOutcome outcome) =>
        File.ReadLines(Path.Combine(outcome.Directory, DatasetWriter.SkippedFile)).Select(JObject.Parse).Select(j => $"{j["source"]}: {j["reason"]}").ToList();

    private string Folder()
    {
        string root = _temp.File("photos");
        Directory.CreateDirectory(Path.Combine(root, "portraits", "old"));
        File.WriteAllBytes(Path.Combine(root, "a.png"), DatasetFiles.Png(64, 64, 10));
        File.WriteAllText(Path.Combine(root, "a.txt"), "  a red thing \n");
        File.WriteAllBytes(Path.Combine(root, "b.png"), DatasetFiles.Png(64, 64, 60));
        File.WriteAllText(Path.Combine(root, "b.caption"), "a green thing");
        File.WriteAllBytes(Path.Combine(root, "portraits", "c.png"), DatasetFiles.Png(64, 64, 110));
        File.WriteAllText(Path.Combine(root, "portraits", "c.txt"), "a portrait, oil");
        File.WriteAllBytes(Path.Combine(root, "portraits", "old", "d.png"), DatasetFiles.Png(64, 64, 160));
        File.WriteAllText(Path.Combine(root, "portraits", "old", "d.txt"), "an old portrait");
        File.WriteAllBytes(Path.Combine(root, "portraits", "e.png"), DatasetFiles.Png(64, 64, 210)); // no caption
        return root;
    }

    [Test]
    public void FolderSource_Should_ReadSidecarCaptionsInSubfolders_AsOneDataset_WithoutARegistry()
    {
        var outcome = Run($"download.source={Folder()}");

        Assert.That(Captions(outcome), Is.EquivalentTo(new Dictionary<string, string>
        {
            ["a.png"] = "a red thing",
            ["b.png"] = "a green thing",
            ["portraits/c.png"] = "a portrait, oil",
            ["portraits/old/d.png"] = "an old portrait",
        }));
        Assert.That(Skipped(outcome), Is.EqualTo(new[] { "portraits/e.png: missing caption" }), "skip is the default");
    }

    [Test]
    public void MissingCaption_Should_StopNamingTheImage_When_Error_AndTrainItUncaptioned_When_Empty()
    {
        string root = Folder();
        var error = Assert.Throws<StageFailedException>(() => Run($"download.source={root}", "download.missing_caption=error"));
        Assert.That(error!.Message, Does.Contain("portraits/e.png").And.Contain("download.missing_caption"));

        var outcome = Run($"download.source={root}", "download.missing_caption=empty");
        Assert.That(Captions(outcome)["portraits/e.png"], Is.EqualTo(""));
    }

    [Test]
    public void Captions_Should_ComeFromJsonlThenCsvThenTxtThenCaption_When_SeveralExist()
    {
        string root = _temp.File("mixed");
        Directory.CreateDirectory(root);
        foreach (string name in new[] { "j.png", "c.png", "t.png", "k.png" })
        {
            File.WriteAllBytes(Path.Combine(root, name), DatasetFiles.Png(64, 64, (byte)name[0]));
            File.WriteAllText(Path.ChangeExtension(Path.Combine(root, name), ".txt"), $"txt of {name}");
            File.WriteAllText(Path.ChangeExtension(Path.Combine(root, name), ".caption"), $"caption of {name}");
        }
        File.Delete(Path.Combine(root, "k.txt"));
        File.WriteAllText(Path.Combine(root, "metadata.jsonl"), """{"file_name": "j.png", "text": "jsonl of j"}""" + "\n");
        File.WriteAllText(Path.Combine(root, "metadata.csv"), "file_name,text\nj.png,csv of j\nc.png,\"csv of c, with a comma and \"\"quotes\"\"\"\n");

        var outcome = Run($"download.source={root}");

        Assert.That(Captions(outcome), Is.EquivalentTo(new Dictionary<string, string>
        {
            ["j.png"] = "jsonl of j",
            ["c.png"] = "csv of c, with a comma and \"quotes\"",
            ["t.png"] = "txt of t.png",
            ["k.png"] = "caption of k.png",
        }));
    }

    [Test]
    public void ArchiveSource_Should_ReadSidecarCaptions_When_GivenAsAPath()
    {
        string zip = _temp.File("set.zip");
        using (var archive = System.IO.Compression.ZipFile.Open(zip, System.IO.Compression.ZipArchiveMode.Create))
        {
            using (var stream = archive.CreateEntry("set/x.png").Open()) stream.Write(DatasetFiles.Png(64, 64, 30));
            using (var writer = new StreamWriter(archive.CreateEntry("set/x.txt").Open())) writer.Write("an archived thing");
        }
        var outcome = Run($"download.source={zip}");
        Assert.That(Captions(outcome).Values, Is.EqualTo(new[] { "an archived thing" }));
    }

    [Test]
    public void SingleImageSource_Should_BeRefused_RatherThanReadItsWholeFolder()
    {
        // One image of a folder: reading it as an image folder would bring in its siblings, which the fingerprint does not cover
        string image = Path.Combine(Folder(), "a.png");

        var error = Assert.Throws<StageInputException>(() => Run($"download.source={image}"))!;

        Assert.That(error.Message, Does.Contain(image).And.Contain("neither an archive").And.Contain("point it at the folder"));
    }

    [Test]
    public void MissingSource_Should_NameTheWorkingDirectory_And_TheHfForm_When_ItIsWrittenAsAHubId()
    {
        // diffusers' --dataset_name takes a Hub id bare; here that is a relative path, which does not exist
        var error = Assert.Throws<StageInputException>(() => Run("download.source=lambdalabs/naruto-blip-captions"))!;

        Assert.That(error.Message, Does.Contain(Directory.GetCurrentDirectory())
            .And.Contain("download.source=hf:lambdalabs/naruto-blip-captions"));
    }

    [Test]
    public void BrokenArchive_Should_FailNamingIt_WithoutAStackTrace()
    {
        string tgz = _temp.File("set.tar.gz");
        using (var file = File.Create(tgz))
        using (var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest))
            gzip.Write(Enumerable.Range(0, 200_000).Select(i => (byte)(i * 7)).ToArray());
        File.WriteAllBytes(tgz, File.ReadAllBytes(tgz)[..2000]); // a download cut short

        var error = Assert.Throws<StageFailedException>(() => Run($"download.source={tgz}"))!;

        Assert.That(error.Message, Does.Contain(tgz).And.Contain("not a readable archive").And.Contain("fetch or pack it again"));
    }

    [Test]
    public void ZipWithAFileAndAFolderOfOneName_Should_FailNamingTheEntry()
    {
        string zip = _temp.File("clash.zip");
        using (var archive = System.IO.Compression.ZipFile.Open(zip, System.IO.Compression.ZipArchiveMode.Create))
        {
            using (var writer = new StreamWriter(archive.CreateEntry("ds").Open())) writer.Write("a file");
            using (var stream = archive.CreateEntry("ds/x.png").Open()) stream.Write(DatasetFiles.Png(64, 64, 30));
        }

        var error = Assert.Throws<StageFailedException>(() => Run($"download.source={zip}"))!;

        Assert.That(error.Message, Does.Contain(zip).And.Contain("'ds/x.png' needs a folder where the archive has a file ('ds')"));
    }

    [Test]
    public void ZipWithOneNameTwice_Should_FailNamingTheEntry_RatherThanKeepTheLastSilently()
    {
        // Two images under one name: the second replaced the first without a word, under whatever caption was read for it
        string zip = _temp.File("twice.zip");
        using (var archive = System.IO.Compression.ZipFile.Open(zip, System.IO.Compression.ZipArchiveMode.Create))
        {
            using (var stream = archive.CreateEntry("set/x.png").Open()) stream.Write(DatasetFiles.Png(64, 64, 30));
            using (var stream = archive.CreateEntry("set/x.png").Open()) stream.Write(DatasetFiles.Png(64, 64, 200));
        }

        var error = Assert.Throws<StageFailedException>(() => Run($"download.source={zip}"))!;

        Assert.That(error.Message, Does.Contain(zip).And.Contain("'set/x.png' names a file an earlier entry already wrote"));
    }

    [Test]
    public void TarWithOneNameTwice_Should_FailNamingTheEntry()
    {
        string tar = _temp.File("twice.tar");
        using (var file = File.Create(tar))
        using (var writer = new System.Formats.Tar.TarWriter(file))
            foreach (byte shade in new byte[] { 30, 200 })
                writer.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "set/x.png")
                    { DataStream = new MemoryStream(DatasetFiles.Png(64, 64, shade)) });

        var error = Assert.Throws<StageFailedException>(() => Run($"download.source={tar}"))!;

        Assert.That(error.Message, Does.Contain(tar).And.Contain("'set/x.png' names a file an earlier entry already wrote"));
    }

    [Test]
    public void ArchiveWithANameTooLongForTheFileSystem_Should_FailNamingTheEntry_WithoutAStackTrace()
    {
        // A 300-byte name: the file system refuses it, which was a PathTooLongException with a stack trace
        string name = "set/" + new string('n', 296) + ".png";
        string zip = _temp.File("long.zip");
        using (var archive = System.IO.Compression.ZipFile.Open(zip, System.IO.Compression.ZipArchiveMode.Create))
        using (var stream = archive.CreateEntry(name).Open())
            stream.Write(DatasetFiles.Png(64, 64, 30));

        var error = Assert.Throws<StageFailedException>(() => Run($"download.source={zip}"))!;

        Assert.That(error.Message, Does.Contain(zip).And.Contain($"'{name}' has a name of 300 bytes").And.Contain("repack it"));
    }

    [Test]
    public void TarWithAPathTooLongForTheFileSystem_Should_FailNamingTheArchive()
    {
        // Twenty 250-byte folders: each name fits, the whole path (over PATH_MAX) does not
        string name = string.Join('/', Enumerable.Repeat(new string('d', 250), 20)) + "/x.png";
        string tar = _temp.File("deep.tar");
        using (var file = File.Create(tar))
        using (var writer = new System.Formats.Tar.TarWriter(file))
            writer.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, name)
                { DataStream = new MemoryStream(DatasetFiles.Png(64, 64, 30)) });

        var error = Assert.Throws<StageFailedException>(() => Run($"download.source={tar}"))!;

        Assert.That(error.Message, Does.Contain(tar).And.Contain("too long for this file system").And.Contain("repack it"));
    }

    [Test]
    public void FolderSource_Should_BeStale_When_ASidecarCaptionChanges()
    {
        string root = Folder();
        var config = ConfigLoader.Load(null, [$"download.source={root}"]);
        var planner = new Planner(ProjectStages.Graph, new ArtifactStore(_temp.File("artifacts")), new FileHashCache(null));
        string before = planner.Plan(config).Single(p => p.Stage.Name == "download").Fingerprint!;
        File.WriteAllText(Path.Combine(root, "a.txt"), "a blue thing");
        Assert.That(planner.Plan(config).Single(p => p.Stage.Name == "download").Fingerprint, Is.Not.EqualTo(before));
    }

    [Test]
    public void VerifiedPlan_Should_SeeACaptionEditedInPlace_When_SizeAndTimeWereKept()
    {
        // Given a planned folder source, whose caption is then rewritten at the same length and given back its time (touch -r)
        string root = Folder();
        var config = ConfigLoader.Load(null, [$"download.source={root}"]);
        var planner = new Planner(ProjectStages.Graph, new ArtifactStore(_temp.File("artifacts")), new FileHashCache(_temp.File("hashes.json")));
        string before = planner.Plan(config).Single(p => p.Stage.Name == "download").Fingerprint!;
        string caption = Path.Combine(root, "a.txt");
        var written = File.GetLastWriteTimeUtc(caption);
        File.WriteAllText(caption, "  a RED thing \n");
        File.SetLastWriteTimeUtc(caption, written);

        // Then plan --verify rehashes the inputs and finds the change
        Assert.That(planner.Plan(config, verify: true).Single(p => p.Stage.Name == "download").Fingerprint, Is.Not.EqualTo(before));
    }

    [Test]
    public void HubSource_Should_BecomeAnEntryWithItsRevision()
    {
        var entry = DatasetSelection.Entry("hf:lambdalabs/naruto-blip-captions@abc123");
        Assert.That(entry.Value<string>("source"), Is.EqualTo("hf:lambdalabs/naruto-blip-captions"));
        Assert.That(entry.Value<string>("revision"), Is.EqualTo("abc123"));
        Assert.Throws<StageInputException>(() => DatasetSelection.Entry("hf:justaname"));
    }
}
