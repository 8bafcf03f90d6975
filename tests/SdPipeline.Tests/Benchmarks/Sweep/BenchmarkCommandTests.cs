using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Benchmarks.Sweep;

/// <summary><c>sdpipe benchmark</c>'s interface for CI matrices: list the cells, locate one, merge.</summary>
public sealed class BenchmarkCommandTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private ProcessResult Sdpipe(params string[] arguments) =>
        CliRunner.Sdpipe(RepoPaths.Root, null, [.. arguments, "--artifacts", _temp.File("artifacts")]);

    [Test]
    public void ListCells_Should_PrintTheMatrixAsOneJsonArray()
    {
        var result = Sdpipe("benchmark", "--list-cells", "--json", "--set", "benchmark.mixed_precision=no,bf16", "--set", "benchmark.method=full");

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output.Trim().Split('\n'), Has.Length.EqualTo(1), "one line, for $GITHUB_OUTPUT");
        var cells = JArray.Parse(result.Output);
        Assert.That(cells.Select(c => c.Value<string>("id")), Is.EqualTo(new[]
        {
            "no-off-full", "no-off-half", "no-on-full", "no-on-half", "bf16-off-full", "bf16-off-half", "bf16-on-full", "bf16-on-half",
        }));
        Assert.That(cells[2]!.ToString(Newtonsoft.Json.Formatting.None),
            Is.EqualTo("""{"id":"no-on-full","mixed_precision":"no","gradient_checkpointing":true,"resolution":"full","method":"full"}"""));
    }

    [Test]
    public void PrintPath_Should_NameTheCellsFolderInTheStore_BeforeItIsBuilt()
    {
        var result = Sdpipe("benchmark", "--cell", "bf16-on-half", "--print-path");

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        string path = result.Output.Trim();
        Assert.That(Path.GetDirectoryName(path), Is.EqualTo(Path.Combine(_temp.File("artifacts"), "benchmark")));
        Assert.That(Path.GetFileName(path), Has.Length.EqualTo(16));
        Assert.That(Directory.Exists(path), Is.False);
    }

    [TestCase("fp32-off-full")]
    [TestCase("no-off")]
    public void Cell_Should_ExitWith2_When_TheIdIsNotACell(string id)
    {
        var result = Sdpipe("benchmark", "--cell", id, "--print-path");

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain(id));
    }

    [Test]
    public void Merge_Should_WriteATableOfCellsNotRun_When_NoCellHasRun()
    {
        var result = Sdpipe("benchmark", "--merge", "--set", "benchmark.mixed_precision=no");

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Contain("no-off-full (baseline)").And.Contain("8 cell(s) not run"), "2 checkpointing × 2 resolutions × 2 methods");
        var json = JObject.Parse(File.ReadAllText(_temp.File("artifacts/benchmark/benchmark.json")));
        Assert.That(json["cells"]!.Select(c => c.Value<string>("status")), Is.All.EqualTo("not_run"));
        Assert.That(File.Exists(_temp.File("artifacts/benchmark/benchmark.md")), Is.True);
    }
}
