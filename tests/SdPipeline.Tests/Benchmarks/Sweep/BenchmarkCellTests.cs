using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Config;

namespace SdPipeline.Tests.Benchmarks.Sweep;

public sealed class BenchmarkCellTests
{
    private static IEnumerable<BenchmarkCell> AllCells() =>
        from precision in BenchmarkCell.Precisions
        from checkpointing in new[] { false, true }
        from resolution in BenchmarkCell.Resolutions
        from method in BenchmarkCell.Methods
        select new BenchmarkCell(precision, checkpointing, resolution, method);

    [TestCaseSource(nameof(AllCells))]
    public void Parse_Should_GiveBackTheCell_When_GivenItsId(BenchmarkCell cell)
    {
        Assert.That(BenchmarkCell.Parse(cell.Id), Is.EqualTo(cell));
    }

    [Test]
    public void Id_Should_ReadPrecisionCheckpointingResolution()
    {
        Assert.That(new BenchmarkCell("bf16", true, "half").Id, Is.EqualTo("bf16-on-half"));
        Assert.That(BenchmarkCell.Baseline.Id, Is.EqualTo("no-off-full"));
        Assert.That(new BenchmarkCell("no", false, "full", "lora").Id, Is.EqualTo("no-off-full-lora"));
        Assert.That(new BenchmarkCell("no", false, "full", "lora").Differences, Is.EqualTo(new[] { "method=lora" }));
    }

    [TestCase("")]
    [TestCase("no-off")]
    [TestCase("fp32-off-full")]
    [TestCase("no-yes-full")]
    [TestCase("no-off-full-dora")]
    [TestCase("no-off-full-full")]
    [TestCase("no-off-quarter")]
    [TestCase("no-off-full-x")]
    public void Parse_Should_Refuse_And_ShowTheForm_When_TheIdIsMalformed(string id)
    {
        var error = Assert.Throws<ConfigException>(() => BenchmarkCell.Parse(id));
        Assert.That(error!.Message, Does.Contain("PRECISION-CHECKPOINTING-RESOLUTION").And.Contain("--list-cells"));
    }

    [TestCase(512, 256)]
    [TestCase(64, 32)]
    [TestCase(200, 96)]
    [TestCase(8, 8)]
    public void Pixels_Should_HalveToAMultipleOf8_When_TheResolutionIsHalf(int full, int half)
    {
        Assert.That(BenchmarkCell.Parse("no-off-half").Pixels(full), Is.EqualTo(half));
        Assert.That(BenchmarkCell.Parse("no-off-full").Pixels(full), Is.EqualTo(full));
    }

    [Test]
    public void Differences_Should_NameEachSettingThatLeavesTheBaseline()
    {
        Assert.That(BenchmarkCell.Baseline.Differences, Is.Empty);
        Assert.That(BenchmarkCell.Parse("bf16-off-full").Differences, Is.EqualTo(new[] { "mixed_precision=bf16" }));
        Assert.That(BenchmarkCell.Parse("fp16-on-half").Differences,
            Is.EqualTo(new[] { "mixed_precision=fp16", "gradient_checkpointing=on", "resolution=half" }));
    }
}
