using SdPipeline.Benchmarks;
using SdPipeline.Runtime;

namespace SdPipeline.Tests.Benchmarks;

public sealed class PyTorchFiguresTests
{
    private static readonly CpuIdentity Zen4 = new("AMD EPYC", 25, 17);
    private static readonly CpuIdentity Zen5 = new("AMD EPYC 9B45", 26, 2);
    private static readonly CpuIdentity Xeon = new("Intel(R) Xeon(R) Processor", 6, 207);

    private static BenchmarkRow Row(string model, string @case, int latent, int batch, double seconds) =>
        BenchmarkRow.Measured(model, @case, latent, latent * 8, batch, new BenchmarkHarness(warmup: 1, repeats: 1),
            new Timing([seconds], 2L << 30, true), new FlopCount(1e9, 0, 0, 1e9, 0, 0), 100);

    [Test]
    public void CpuIdentity_Should_ReadTheFirstProcessor_When_ParsingCpuinfo()
    {
        string[] cpuinfo =
        [
            "processor\t: 0", "vendor_id\t: AuthenticAMD", "cpu family\t: 25", "model\t\t: 17", "model name\t: AMD EPYC", "",
            "processor\t: 1", "cpu family\t: 99", "model\t\t: 1", "model name\t: other",
        ];

        var cpu = CpuIdentity.Parse(cpuinfo);

        Assert.That(cpu, Is.EqualTo(Zen4));
        Assert.That(cpu.ToString(), Is.EqualTo("AMD EPYC (family 25, model 17)"));
    }

    [Test]
    public void BelongsTo_Should_MatchNamePrefixFamilyAndModel_When_Given()
    {
        Assert.That(Zen5.BelongsTo("AMD EPYC (family 26)"), Is.True);
        Assert.That(Zen4.BelongsTo("AMD EPYC (family 26)"), Is.False, "Zen 4 is family 25: Zen 5's figures are not its peer");
        Assert.That(Zen4.BelongsTo("AMD EPYC (family 25, model 17)"), Is.True);
        Assert.That(Zen4.BelongsTo("AMD EPYC (family 25, model 1)"), Is.False);
        Assert.That(Xeon.BelongsTo("Intel Xeon"), Is.True, "Intel's cpuinfo writes Intel(R) Xeon(R) Processor");
        Assert.That(Xeon.BelongsTo("Intel Xeon (family 6, model 207)"), Is.True);
        Assert.That(Xeon.BelongsTo("Intel Xeon (family 6, model 143)"), Is.False);
        Assert.That(Zen4.BelongsTo("Intel Xeon"), Is.False);
    }

    [Test]
    public void Table_Should_GiveEachBenchmarkedCase_ForIntelAndAmd()
    {
        // The compiled-in docs/performance.md: every CPU class the project has measured PyTorch on has the three cases
        // the speed goals are set for, so bench can show the ratio wherever it runs on such a machine.
        var works = new[] { "train_step step 32x32 batch 1", "unet forward 64x64 batch 2", "vae encode 32x32 batch 1" };
        foreach (var cpu in new[] { Xeon, Zen5 })
            foreach (string work in works)
                Assert.That(PyTorchFigures.All.Any(f => f.Work == work && cpu.BelongsTo(f.Cpu)), Is.True, $"{cpu}: {work}");
        // and on the AMX Xeon, where the anonymous peaks were measured, memory is compared without the page cache's say
        foreach (string work in works)
            Assert.That(PyTorchFigures.All.Single(f => f.Work == work && f.Cpu == "Intel Xeon (family 6, model 207)").AnonymousPeakGib, Is.Not.Null, work);
    }

    [Test]
    public void For_Should_PreferTheMostSpecificClass_And_CompareOnlyMatchingWork()
    {
        PyTorchFigure[] figures =
        [
            new("AMD EPYC", "train_step step 32x32 batch 1", 20, null, "any EPYC"),
            new("AMD EPYC (family 25, model 17)", "train_step step 32x32 batch 1", 10, 13.9, "Zen 4"),
            new("AMD EPYC (family 26)", "train_step step 32x32 batch 1", 9, null, "Zen 5"),
        ];
        var step = Row("train_step", "step", 32, 1, 8);

        var comparisons = PyTorchComparison.Of([step, Row("train_step", "forward", 32, 1, 2), Row("train_step", "step", 64, 1, 30)], Zen4, figures);

        Assert.That(comparisons, Has.Count.EqualTo(1));
        Assert.That(comparisons[0].PyTorchSetting, Is.EqualTo("Zen 4"));
        Assert.That(comparisons[0].TimeRatio, Is.EqualTo(0.8).Within(1e-12));
        Assert.That(comparisons[0].PeakGib, Is.EqualTo(2).Within(1e-12));
    }

    [Test]
    public void For_Should_CompareABf16OrFusedStepOnlyWithPyTorchsStepRunTheSameWay()
    {
        var step = Row("train_step", "step", 32, 1, 2.1);
        var bf16 = new BenchmarkOptions { MixedPrecision = "bf16" };
        var fused = new BenchmarkOptions { FusedBackwardPass = true };
        var fp16 = new BenchmarkOptions { MixedPrecision = "fp16" };

        // The compiled-in table: on the AMX Xeon PyTorch was measured plain, under bf16 autocast and stepping in backward
        Assert.That(PyTorchFigures.VariantOf(new BenchmarkOptions()), Is.Empty);
        Assert.That(PyTorchFigures.For(Xeon, step)!.Seconds, Is.EqualTo(2.62));
        Assert.That(PyTorchFigures.For(Xeon, step, variant: PyTorchFigures.VariantOf(bf16))!.Work, Is.EqualTo("train_step step 32x32 batch 1 bf16"));
        Assert.That(PyTorchFigures.For(Xeon, step, variant: PyTorchFigures.VariantOf(fused))!.PeakGib, Is.EqualTo(10.49));
        // fp16 was never measured there, so no ratio rather than one against another precision's figure
        Assert.That(PyTorchFigures.For(Xeon, step, variant: PyTorchFigures.VariantOf(fp16)), Is.Null);
        Assert.That(PyTorchComparison.Of([step], Zen4, variant: PyTorchFigures.VariantOf(bf16)), Is.Empty);
    }

    [Test]
    public void For_Should_CompareAClippedStepWithAnEmaOnlyWithPyTorchsStepRunTheSameWay()
    {
        var step = Row("train_step", "step", 32, 1, 3.4);
        var trainerLike = new BenchmarkOptions { MaxGradNorm = 1, Ema = true };

        Assert.That(PyTorchFigures.VariantOf(trainerLike), Is.EqualTo(" max_grad_norm 1 ema"));
        // The compiled-in table: on the Zen 4 PyTorch was measured clipping and keeping an EMA too; clipping alone was not
        Assert.That(PyTorchFigures.For(Zen4, step, variant: PyTorchFigures.VariantOf(trainerLike))!.Seconds, Is.EqualTo(4.36));
        Assert.That(PyTorchFigures.For(Zen4, step, variant: PyTorchFigures.VariantOf(new BenchmarkOptions { MaxGradNorm = 1 })), Is.Null);
    }

    [Test]
    public void Validate_Should_RefuseClippingWithTheFusedBackwardPass_NamingBothOptions()
    {
        var options = new BenchmarkOptions { MaxGradNorm = 1, FusedBackwardPass = true };

        var error = Assert.Throws<ArgumentException>(options.Validate)!;
        Assert.That(error.Message, Does.Contain("--max-grad-norm").And.Contain("--fused-backward-pass"));
        Assert.Throws<ArgumentException>(new BenchmarkOptions { MaxGradNorm = -1 }.Validate);
    }

    [Test]
    public void Parse_Should_ReadBothPeaks_And_TheComparison_Should_CarryThem()
    {
        string markdown = $"{PyTorchFigures.Heading}\n\n| CPU | work | PyTorch s | peak GiB | anonymous peak GiB | setting |\n| --- | --- | --- | --- | --- | --- |\n" +
            "| AMD EPYC | unet forward 64x64 batch 2 | 4.5 | 3.78 | 3.65 | no_grad |\n| AMD EPYC | vae encode 32x32 batch 1 | 0.6 | 0.77 | | no_grad |\n";

        var figures = PyTorchFigures.Parse(markdown);
        var ours = BenchmarkRow.Measured("unet", "forward", 64, 512, 2, new BenchmarkHarness(1, 1), new Timing([4.0], 4L << 30, true, 3L << 30),
            new FlopCount(1e9, 0, 0, 1e9, 0, 0), 100);
        var comparison = PyTorchComparison.Of([ours], Zen4, figures).Single();

        Assert.That(figures.Select(f => f.AnonymousPeakGib), Is.EqualTo(new double?[] { 3.65, null }));
        Assert.That(figures[0].Setting, Is.EqualTo("no_grad"));
        Assert.That(comparison.AnonymousPeakGib, Is.EqualTo(3.0));
        Assert.That(comparison.PyTorchAnonymousPeakGib, Is.EqualTo(3.65));
    }

    [Test]
    public void Parse_Should_NameTheRow_When_ItCannotBeRead()
    {
        string markdown = $"# x\n\n{PyTorchFigures.Heading}\n\n| CPU | work | PyTorch s | peak GiB | anonymous peak GiB | setting |\n| --- | --- | --- | --- | --- | --- |\n| AMD EPYC | unet forward 64x64 batch 2 | fast | | | x |\n";

        var error = Assert.Throws<InvalidDataException>(() => PyTorchFigures.Parse(markdown));

        Assert.That(error!.Message, Does.Contain("fast"));
    }
}
