using SdPipeline.Data;
using SdPipeline.Images;
using SdPipeline.Latents;
using SdPipeline.Models.Vae;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Latents;

public sealed class LatentsStageTests
{
    private static readonly string[] Chain = ["model", "download", "latents"];

    private static (string, byte[], string)[] Images() =>
    [
        ("a.png", DatasetFiles.Png(80, 64, 20), "a wide thing"),
        ("b.png", DatasetFiles.Png(64, 96, 140), "a tall thing"),
        ("c.png", DatasetFiles.Png(64, 64, 250), ""),
    ];

    [TestCase("builtin")]
    [TestCase("fixture")]
    public void CachedLatent_Should_EqualTheVaePosteriorOfThePreprocessedImage(string model)
    {
        // Given a small image folder encoded by the latents stage
        using var harness = new PipelineHarness();
        string modelBase = model == "builtin" ? "builtin:tiny" : Path.Combine(RepoPaths.Fixtures, "tiny-sd");
        string[] sets = [.. harness.ImageFolder(Images()), $"model.base={modelBase}", "model.builtin_autoencoder_steps=0", "latents.resolution=64", "latents.center_crop=true",
            "latents.random_flip=true", "latents.posterior_dtype=float32", "download.heldout_fraction=0"];
        var outcome = harness.RunChain(Chain, sets);

        // When one row is compared with a direct encode of the same image
        using var dataset = LatentDataset.Open(outcome.Directory);
        var row = dataset.Index.Rows.First(r => r.Id.EndsWith("b") && r.Flip);
        using var batch = dataset.Read([row]);
        string modelFolder = SdPipeline.BaseModel.ResolvedModel.Read(harness.Plan("model", sets).ArtifactDirectory!).Folder;
        using var vae = AutoencoderKL.FromFolder(DiffusersFolder.Open(modelFolder));
        var item = DatasetReader.Items(harness.Plan("download", sets).ArtifactDirectory!).Single(i => i.Id == row.Id);
        var (pixels, crop) = ImagePreprocessor.Transform(File.ReadAllBytes(Path.Combine(harness.Plan("download", sets).ArtifactDirectory!, item.File)),
            64, 64, Interpolation.Lanczos, centerCrop: true, flip: true);
        using var noGrad = torch.no_grad();
        using var posterior = vae.Encode(torch.tensor(pixels, [1, 3, 64, 64]));

        // Then mean and std are the posterior's, and mean + std·ε is the posterior's sample for the same ε
        Assert.That(row.Crop, Is.EqualTo(new[] { crop.Left, crop.Top, crop.Width, crop.Height }));
        Assert.That((batch.Mean - posterior.Mean).abs().max().item<float>(), Is.LessThan(1e-5));
        Assert.That((batch.Std - posterior.Std).abs().max().item<float>(), Is.LessThan(1e-5));
        using var epsilon = torch.randn(posterior.Mean.shape, generator: new torch.Generator(5));
        using var direct = posterior.Sample(epsilon);
        using var cached = batch.Mean + batch.Std * epsilon;
        Assert.That((cached - direct).abs().max().item<float>(), Is.LessThan(1e-5));
        Assert.That(dataset.Index.ScalingFactor, Is.EqualTo(vae.Config.ScalingFactor));
    }

    [Test]
    public void LatentsStage_Should_SayWhichCaptionsTheTextEncoderCuts_When_TheyRunPast75Tokens()
    {
        // Given a caption of 80 one-token words beside two short ones
        using var harness = new PipelineHarness();
        var images = Images();
        images[1] = ("b.png", images[1].Item2, string.Join(" ", Enumerable.Repeat("cat", 80)));
        string[] sets = [.. harness.ImageFolder(images), $"model.base={Path.Combine(RepoPaths.Fixtures, "tiny-sd")}", "latents.resolution=64", "download.heldout_fraction=0"];

        // When the latents are made
        harness.RunChain(Chain, sets);

        // Then the log names it and how much of it is never trained, as diffusers would not
        Assert.That(harness.Log, Has.One.Contains("latents: warning: 1 of 3 captions are longer than the text encoder reads (75 tokens)").And.Contains("the caption of b.png, 5 tokens past"));
    }

    [Test]
    public void LatentsStage_Should_RunWithoutTheProjectsKernels_When_RuntimeKernelsIsOff_And_KeepItsCacheWhenTheSettingChanges()
    {
        try
        {
            // Given the tiny VAE's latents made with runtime.kernels=off (its 32- and 64-channel convolutions would run by Winograd)
            using var harness = new PipelineHarness();
            string[] sets = [.. harness.ImageFolder(Images()), $"model.base={Path.Combine(RepoPaths.Fixtures, "tiny-sd")}", "latents.resolution=64",
                "runtime.kernels=off"];
            var outcome = harness.RunChain(Chain, sets);

            // Then the stage ran with the kernels off and made its latents, and the setting, which changes results only by
            // float32 rounding, does not make the cache stale
            Assert.That(SdPipeline.Models.Shared.InferenceKernels.Enabled, Is.False);
            using var dataset = LatentDataset.Open(outcome.Directory);
            Assert.That(dataset.Index.Rows, Is.Not.Empty);
            Assert.That(harness.Plan("latents", [.. sets.Where(s => s != "runtime.kernels=off"), "runtime.kernels=auto"]).Status, Is.EqualTo(StageStatus.Cached));
        }
        finally
        {
            SdPipeline.Models.Shared.InferenceKernels.Use("auto");
        }
    }

    [Test]
    public void Fingerprint_Should_ChangeWithResolutionAndVaeWeights_AndNotWithUnetWeightsOrDownloadRetries()
    {
        using var harness = new PipelineHarness();
        string model = Path.Combine(harness.Root, "model");
        CopyFolder(Path.Combine(RepoPaths.Fixtures, "tiny-sd"), model);
        string[] sets = [.. harness.ImageFolder(Images()), $"model.base={model}", "latents.resolution=64"];
        harness.RunChain(Chain, sets);

        Assert.That(harness.Plan("latents", [.. sets, "latents.resolution=128"]).Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(harness.Plan("latents", [.. sets, "download.retries=9"]).Status, Is.EqualTo(StageStatus.Cached));
        Assert.That(harness.Plan("latents", [.. sets, "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0"]).Status, Is.EqualTo(StageStatus.Stale));

        Perturb(Path.Combine(model, "unet", "diffusion_pytorch_model.safetensors"));
        Assert.That(harness.Plan("model", sets).Status, Is.EqualTo(StageStatus.Stale), "a new UNet is a new model");
        Assert.That(harness.Plan("latents", sets).Status, Is.EqualTo(StageStatus.Cached), "but the latents only read the VAE and text encoder");

        Perturb(Path.Combine(model, "vae", "diffusion_pytorch_model.safetensors"));
        var plan = harness.Plan("latents", sets);
        Assert.That(plan.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(plan.Reasons, Has.Some.Contains("file:vae/diffusion_pytorch_model.safetensors changed content"));
    }

    [Test, Category("Slow")]
    public void KilledRun_Should_ResumeFromItsFinishedShards()
    {
        // Given the CLI encoding the shapes dataset in many small shards, killed once the first shard exists
        using var temp = new TempFolder();
        temp.CopyTinyProfile();
        string[] sets = ["--set", "download.count=64", "--set", "model.builtin_autoencoder_steps=0", "--set", "latents.shard_size=8", "--set", "latents.batch_size=8"];
        Assert.That(CliRunner.Sdpipe(temp.Path, null, ["run", "model", .. sets]).ExitCode, Is.EqualTo(0));
        Assert.That(CliRunner.Sdpipe(temp.Path, null, ["run", "download", .. sets]).ExitCode, Is.EqualTo(0));

        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { WorkingDirectory = temp.Path, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in new[] { RepoPaths.CliDll, "run", "latents" }.Concat(sets)) start.ArgumentList.Add(argument);
        using (var process = System.Diagnostics.Process.Start(start)!)
        {
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (DateTime.UtcNow < deadline && !process.HasExited && FinishedShards(temp.Path).Length == 0) Thread.Sleep(10);
            process.Kill(); // SIGKILL: no cleanup of any kind
            process.WaitForExit();
        }
        int finished = FinishedShards(temp.Path).Length;
        Assert.That(finished, Is.GreaterThan(0), "the first shard was written before the kill");

        // When it runs again
        var rerun = CliRunner.Sdpipe(temp.Path, null, ["run", "latents", .. sets]);

        // Then it reuses the finished shards and encodes only the rest
        Assert.That(rerun.ExitCode, Is.EqualTo(0), rerun.All);
        Assert.That(rerun.Output, Does.Contain("resuming an interrupted run"));
        Assert.That(rerun.Output, Does.Contain($"{finished} shards reused"));
        int rows = (64 + 64) * 2; // train + held-out items, each with its flipped variant
        Assert.That(rerun.Output, Does.Contain($"{rows} rows").And.Contain($"({rows - finished * 8} encoded"));
    }

    private static string[] FinishedShards(string root)
    {
        string stage = Path.Combine(root, "artifacts", "latents");
        return Directory.Exists(stage)
            ? Directory.GetFiles(stage, "shard-*.safetensors", SearchOption.AllDirectories)
            : [];
    }

    private static void Perturb(string file)
    {
        var bytes = File.ReadAllBytes(file);
        bytes[^1] ^= 0x20;
        File.WriteAllBytes(file, bytes);
    }

    private static void CopyFolder(string source, string target)
    {
        foreach (string file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            string destination = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
    }
}
