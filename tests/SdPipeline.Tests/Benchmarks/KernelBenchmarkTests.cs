using Newtonsoft.Json.Linq;
using SdPipeline.Benchmarks;
using SdPipeline.Tests.Support;
using TorchSharp;

namespace SdPipeline.Tests.Benchmarks;

/// <summary>
/// <c>sdpipe bench kernels</c>: every distinct inference call of a model, timed by each path that can make it, with the
/// rule's choice and each output's difference from libtorch's; run on the tiny fixture models so that it takes seconds.
/// </summary>
public sealed class KernelBenchmarkTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private static string TinyConfig(string component) => BenchCommandTests.TinyConfig(component);

    [Test]
    public void Run_Should_TimeEveryDistinctCall_ByEveryPath_WithTheChosenOneAmongThem_And_OutputsAgreeing()
    {
        // When the tiny UNet's forward at 32×32 latents (its first level 32×32, its second 16×16) is examined
        var options = new KernelBenchmarkOptions { Models = ["unet"], Sizes = [32], Repeats = 2, ConfigFile = TinyConfig("unet") };
        var report = KernelBenchmark.Run(options, torch.CPU);

        // Then convolutions, norms, attentions and linear layers are listed, each case timed twice by each of its paths
        Assert.That(report.Cases.Select(c => c.Kind).Distinct(), Is.EquivalentTo(new[] { "convolution", "group_norm", "attention", "linear" }));
        Assert.That(report.Cases.Select(c => c.Work), Is.All.EqualTo("unet forward 32x32 batch 2"));
        foreach (var c in report.Cases)
        {
            Assert.That(c.Paths.SelectMany(p => p.Seconds), Has.All.GreaterThan(0));
            Assert.That(c.Paths.Select(p => p.Seconds.Count), Is.All.EqualTo(2));
            // every path is libtorch's result to float32 rounding
            Assert.That(c.OutputsAgree, Is.True, c.Describe());
        }
        // the calls alike are counted once, with their number: two 3×3 convolutions in each resnet (two down blocks of two,
        // the mid block's two, two up blocks of three) and one upsampler
        Assert.That(report.Cases.Where(c => c.Kind == "convolution").Sum(c => c.Count), Is.EqualTo(2 * (2 * 2 + 2 + 2 * 3) + 1));
        Assert.That(report.Cases.Where(c => c.Kind == "convolution").Select(c => c.Shape).Distinct().Count(),
            Is.EqualTo(report.Cases.Count(c => c.Kind == "convolution")));
        if (SdPipeline.Models.Shared.WinogradConvolution.IsSupported)
        {
            var first = report.Cases.First(c => c.Kind == "convolution" && c.Shape.StartsWith("2x32x32x32"));
            Assert.That(first.Paths.Select(p => p.Path),
                Is.EqualTo(new[] { "onednn", "libtorch", "plain_winograd", "cl_winograd" }).Or.EqualTo(new[] { "libtorch", "plain_winograd", "cl_winograd" }));
            string chosen = "plain_winograd";
            Assert.That(first.Chosen, Is.EqualTo(chosen));
            Assert.That(first.Paths.Single(p => p.Path == chosen).RelativeDifference, Is.GreaterThan(0).And.LessThan(1e-5));
        }
        if (SdPipeline.Models.Shared.LinearKernel.IsSupported)
        {
            // the 16×16 level's projections (512 tokens) by libtorch and the brgemm kernel, the kernel chosen on AMD's CPUs
            var projection = report.Cases.First(c => c.Kind == "linear" && c.Shape.StartsWith("2x256x64 * 64x64"));
            Assert.That(projection.Paths.Select(p => p.Path), Is.EqualTo(new[] { "libtorch", "brgemm" }));
            Assert.That(projection.Chosen, Is.EqualTo(SdPipeline.Models.Shared.Convolutions.OnAmd ? "brgemm" : "libtorch"));
        }
        Assert.That(report.Disagreements, Is.Empty);
    }

    [Test]
    public void Format_Should_MarkTheChoice_TheFasterPath_And_AWrongOutput()
    {
        // Given a case where the rule chose a path 20% slower than another, and one whose kernel output is off
        KernelCase Case(string kind, string chosen, double kernelDifference) => new()
        {
            Work = "unet forward 64x64 batch 2", Kind = kind, Layer = "down_blocks.0.resnets.0.conv1", Count = 4, Shape = "2x320x64x64",
            ChannelsLast = false, Chosen = chosen,
            Paths = [new PathTiming("onednn", [0.010], 0.010, 0), new PathTiming("plain_winograd", [0.012], 0.012, kernelDifference)],
        };
        var report = new KernelReport
        {
            CreatedUtc = DateTime.UtcNow, Machine = MachineInfo.Capture(torch.CPU), ModelConfig = "sd15", OneDnn = true, Seed = 0, Repeats = 1,
            Cases = [Case("convolution", "plain_winograd", 2e-6), Case("convolution", "onednn", 3e-3), Case("convolution", "onednn", double.NaN)],
        };

        // Then the slower choice is counted with the time it loses, and the wrong outputs are named
        Assert.That(report.SlowerChoices, Has.Count.EqualTo(1));
        Assert.That(report.SlowerChoices[0].SecondsLost, Is.EqualTo(4 * 0.002).Within(1e-12));
        Assert.That(report.Disagreements, Has.Count.EqualTo(2), "a NaN output disagrees too");
        string text = report.Format();
        Assert.That(text, Does.Contain("*plain_winograd 12.00 ms").And.Contain("onednn is 20% faster"));
        Assert.That(text, Does.Contain("OUTPUT DIFFERS: plain_winograd 3.0e-3").And.Contain("plain_winograd NaN"));
        Assert.That(text, Does.Contain("1 of 3 choices are more than 5% slower"));
        Assert.That(text, Does.Contain("these calls: 128.00 ms as chosen, 120.00 ms by the fastest path of each, 120.00 ms by libtorch's paths on the same inputs"));
        Assert.That(JObject.Parse(report.ToJson())["cases"]![2]!["paths"]![1]!.Value<string>("relative_difference"), Is.EqualTo("NaN"));
    }

    [Test]
    public void BenchKernels_Should_WriteTheCasesOfEachWork_To_TheDefaultJson()
    {
        // When the tiny VAE's encode and decode at 8×8 latents (16 px images) are examined from the command line
        var result = CliRunner.Sdpipe(_temp.Path, null, "bench", "kernels", "--models", "vae", "--sizes", "8", "--repeats", "1",
            "--warmup", "0", "--threads", "1", "--config-file", TinyConfig("vae"));

        // Then it succeeds, prints a table per work, and writes artifacts/bench/kernels.json
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Contain("vae encode 16px batch 1").And.Contain("vae decode 16px batch 1").And.Contain("these calls:"));
        var json = JObject.Parse(File.ReadAllText(_temp.File("artifacts/bench/kernels.json")));
        Assert.That(json.Value<string>("benchmark"), Is.EqualTo("kernels"));
        Assert.That(json.Value<int>("schema_version"), Is.EqualTo(1));
        Assert.That(json.Value<string>("model_config"), Is.EqualTo(TinyConfig("vae")));
        Assert.That(json["machine"]!.Value<int>("threads"), Is.EqualTo(1));
        var cases = json["cases"]!;
        Assert.That(cases.Select(c => c.Value<string>("work")).Distinct(), Is.EqualTo(new[] { "vae encode 16px batch 1", "vae decode 16px batch 1" }));
        foreach (var c in cases)
        {
            Assert.That(c["paths"]!.Select(p => p.Value<string>("path")), Does.Contain(c.Value<string>("chosen")));
            Assert.That(c.Value<bool>("outputs_agree"), Is.True);
        }
    }

    [TestCase("--models", "unet,clip", "model 'clip' is not one of unet, vae")]
    [TestCase("--repeats", "0", "repeats 0 must be at least 1")]
    [TestCase("--kernels", "fast", "--kernels 'fast' is not one of auto, off")]
    public void BenchKernels_Should_ExitWith2_And_SayWhy_When_AnOptionIsWrong(string option, string value, string message)
    {
        var result = CliRunner.Sdpipe(_temp.Path, null, "bench", "kernels", option, value);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain(message));
    }

    [Test]
    public void BenchKernels_Should_ExitWith2_When_AskedForAnotherDevice()
    {
        var result = CliRunner.Sdpipe(_temp.Path, null, "bench", "kernels", "--device", "cuda");

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("--device cuda does not apply"));
    }

    [Test]
    public void BenchKernels_Should_ExitWith2_When_AConfigFileIsGivenForTwoModels()
    {
        var result = CliRunner.Sdpipe(_temp.Path, null, "bench", "kernels", "--config-file", TinyConfig("unet"));

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("--models unet or --models vae"));
    }
}
