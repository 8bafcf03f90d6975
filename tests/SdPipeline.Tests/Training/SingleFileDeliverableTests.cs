using SdPipeline.Stages;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Weights;
using SdPipeline.SingleFileCheckpoints;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training;

/// <summary>A single-file checkpoint in, a single-file fine-tune out: the practitioner's path through the stages.</summary>
public sealed class SingleFileDeliverableTests
{
    private static string Fixture => Path.Combine(RepoPaths.Fixtures, "single-file", "tiny-sd.safetensors");
    private static string TinySd => Path.Combine(RepoPaths.Fixtures, "tiny-sd");

    private static string[] Sets(params string[] more) =>
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", $"model.base={Fixture}", $"model.single_file_config={TinySd}",
        "download.dataset=shapes-small", "latents.resolution=64", "latents.center_crop=true",
        "train.train_batch_size=4", "train.max_train_steps=2", "train.lr_warmup_steps=0", "train.learning_rate=1e-3",
        "train.validation_steps=0", "train.heldout_max_items=4", .. more,
    ];

    [Test]
    public void SingleFileBase_Should_TrainAndExportASingleFileThatLoadsBackToTheTrainedWeights()
    {
        using var harness = new PipelineHarness();
        var sets = Sets("train.export_dtype=fp32");
        var model = harness.Run("model", sets);
        Assert.That(harness.Log, Has.Some.Contains("tiny-sd.safetensors is Stable Diffusion 1.x"));
        harness.RunChain(["download", "latents"], sets);
        var outcome = new StageExecutor(ProjectStages.Graph, harness.Store, new FileHashCache(null))
            .Run("train", PipelineHarness.Config(sets), false, harness.Log.Add, NullProgress.Instance, CancellationToken.None);

        string exported = Path.Combine(outcome.Directory, SingleFileDeliverable.FileName);
        using (var file = SafeTensorsFile.Open(exported))
        {
            Assert.That(file.Contains("model.diffusion_model.input_blocks.4.1.proj_in.weight"));
            Assert.That(file.Contains("first_stage_model.decoder.mid.attn_1.q.weight"));
            Assert.That(file.Entry("first_stage_model.decoder.mid.attn_1.q.weight").Shape, Has.Length.EqualTo(4), "LDM's 1×1 convolution");
            Assert.That(file.Contains("cond_stage_model.transformer.text_model.final_layer_norm.weight"));
        }

        // Loading the exported file back gives the trained UNet exactly and the base's VAE and text encoder.
        using var temp = new TempFolder();
        SingleFileImporter.Import(exported, temp.Path, TinySd);
        AssertSame(Path.Combine(temp.Path, "unet", "diffusion_pytorch_model.safetensors"), Path.Combine(outcome.Directory, "unet", "diffusion_pytorch_model.safetensors"));
        AssertSame(Path.Combine(temp.Path, "vae", "diffusion_pytorch_model.safetensors"), Path.Combine(TinySd, "vae", "diffusion_pytorch_model.safetensors"));
        AssertSame(Path.Combine(temp.Path, "text_encoder", "model.safetensors"), Path.Combine(TinySd, "text_encoder", "model.safetensors"));
    }

    [Test]
    public void Export_Should_TakeAVaeWithOldDiffusersAttentionNames()
    {
        // Given tiny-sd's VAE written with the mid-block attention names of old diffusers (query/key/value/proj_attn, as
        // SD 2.1-base's VAE file has them), which the loader accepts
        using var temp = new TempFolder();
        string vae = Path.Combine(TinySd, "vae", "diffusion_pytorch_model.safetensors");
        using (var file = SafeTensorsFile.Open(vae))
        {
            var renamed = SdPipeline.Models.Vae.AutoencoderKL.LegacyKeys.Aliases.ToDictionary(p => p.Value, p => p.Key);
            var tensors = file.ReadAll().ToDictionary(p => renamed.GetValueOrDefault(p.Key, p.Key), p => p.Value);
            Assert.That(tensors.Keys, Has.Some.EqualTo("encoder.mid_block.attentions.0.query.weight"));
            SafeTensorsWriter.Write(temp.File("legacy-vae.safetensors"), tensors);
        }

        // When the single file is exported from it and from the current names
        SingleFileExporter.Components Components(string vaeFile) => new(
            [Path.Combine(TinySd, "unet", "diffusion_pytorch_model.safetensors")], SdPipeline.Models.Unet.UNet2DConditionConfig.Load(Path.Combine(TinySd, "unet", "config.json")),
            [vaeFile], SdPipeline.Models.Vae.AutoencoderKLConfig.Load(Path.Combine(TinySd, "vae", "config.json")),
            [Path.Combine(TinySd, "text_encoder", "model.safetensors")], SdPipeline.Models.Clip.ClipTextConfig.Load(Path.Combine(TinySd, "text_encoder", "config.json")),
            "epsilon");
        SingleFileExporter.Write(Components(temp.File("legacy-vae.safetensors")), temp.File("legacy.safetensors"), ScalarType.Float32);
        SingleFileExporter.Write(Components(vae), temp.File("current.safetensors"), ScalarType.Float32);

        // Then both files are the same
        AssertSame(temp.File("legacy.safetensors"), temp.File("current.safetensors"));
    }

    [Test]
    public void SingleFileBase_Should_KeepItsFingerprint_When_TheFileMoves_AndChangeIt_When_TheContentChanges()
    {
        using var harness = new PipelineHarness();
        string copy = Path.Combine(harness.Root, "renamed.safetensors");
        File.Copy(Fixture, copy);
        string original = harness.Plan("model", Sets()).Fingerprint!;
        Assert.That(harness.Plan("model", [.. Sets(), $"model.base={copy}"]).Fingerprint, Is.EqualTo(original));

        using (var stream = new FileStream(copy, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Seek(-1, SeekOrigin.End);
            int last = stream.ReadByte();
            stream.Seek(-1, SeekOrigin.End);
            stream.WriteByte((byte)(last ^ 1));
        }
        Assert.That(harness.Plan("model", [.. Sets(), $"model.base={copy}"]).Fingerprint, Is.Not.EqualTo(original));
    }

    [Test]
    public void PickleCheckpoint_Should_BeRefused_When_GivenAsModelBase()
    {
        using var harness = new PipelineHarness();
        string pickle = Path.Combine(harness.Root, "model.ckpt");
        File.WriteAllBytes(pickle, [0x80, 0x02]);
        var error = Assert.Catch(() => harness.Run("model", [.. Sets(), $"model.base={pickle}"]));
        Assert.That(error!.Message, Does.Contain("pickle"));
    }

    private static void AssertSame(string actualPath, string expectedPath)
    {
        using var actual = SafeTensorsFile.Open(actualPath);
        using var expected = SafeTensorsFile.Open(expectedPath);
        Assert.That(actual.Entries.Select(e => e.Name).Order(StringComparer.Ordinal), Is.EqualTo(expected.Entries.Select(e => e.Name).Order(StringComparer.Ordinal)));
        foreach (var entry in expected.Entries)
        {
            using var a = actual.Read(entry.Name);
            using var e = expected.Read(entry.Name);
            Assert.That(a.eq(e).all().item<bool>(), Is.True, entry.Name);
        }
    }
}
