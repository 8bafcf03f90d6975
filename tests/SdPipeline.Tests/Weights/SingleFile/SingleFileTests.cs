using Newtonsoft.Json.Linq;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using SdPipeline.SingleFileCheckpoints;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Weights.SingleFile;

/// <summary>
/// Single-file checkpoints against what diffusers' own conversion script made (../shared/fixtures/single-file):
/// the SD 1.5 key list name for name and shape, the tiny model value for value in both directions.
/// </summary>
public sealed class SingleFileTests
{
    private static string SingleFileFixtures => Path.Combine(RepoPaths.Fixtures, "single-file");
    private static string TinyCheckpoint => Path.Combine(SingleFileFixtures, "tiny-sd.safetensors");
    private static string TinySd => Path.Combine(RepoPaths.Fixtures, "tiny-sd");

    private static Dictionary<string, long[]> Keys(string file) =>
        ((JObject)JObject.Parse(File.ReadAllText(file))["keys"]!).Properties().ToDictionary(p => p.Name, p => p.Value.Values<long>().ToArray());

    [Test]
    public void Sd15DiffusersKeys_Should_GetExactlyTheNamesAndShapesOfDiffusersScript_When_Exported()
    {
        string sd15 = Path.Combine(RepoPaths.Fixtures, "sd15-keys");
        var unet = UNet2DConditionConfig.Load(Path.Combine(sd15, "unet", "config.json"));
        var vae = AutoencoderKLConfig.Load(Path.Combine(sd15, "vae", "config.json"));
        var expected = JObject.Parse(File.ReadAllText(Path.Combine(SingleFileFixtures, "sd15-original-keys.json")))
            .Properties().ToDictionary(p => p.Name, p => p.Value.Values<long>().ToArray());

        var produced = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (key, shape) in Keys(Path.Combine(sd15, "unet_keys.json")))
            produced.Add(SingleFileNames.Unet(key, unet).Name, shape);
        foreach (var (key, shape) in Keys(Path.Combine(sd15, "vae_keys.json")))
            produced.Add(SingleFileNames.Vae(key, vae.BlockOutChannels.Count).Name,
                LdmNames.IsVaeAttentionProjection(key) ? [.. shape, 1, 1] : shape);
        foreach (var (key, shape) in Keys(Path.Combine(sd15, "text_encoder_keys.json")))
            produced.Add(SingleFileNames.TextEncoder(key, SingleFileFamily.StableDiffusion1).Name, shape);

        Assert.That(produced.Keys.Order(StringComparer.Ordinal), Is.EqualTo(expected.Keys.Order(StringComparer.Ordinal)));
        foreach (var (name, shape) in expected)
            Assert.That(produced[name], Is.EqualTo(shape), name);
    }

    [Test]
    public void TinyCheckpoint_Should_LoadToTheDiffusersWeightsBitForBit_When_ImportedWithItsConfigFolder()
    {
        using var temp = new TempFolder();
        string output = temp.File("model");
        var import = SingleFileImporter.Import(TinyCheckpoint, output, TinySd);

        Assert.That(import.Family, Is.EqualTo(SingleFileFamily.StableDiffusion1));
        Assert.That(import.Ignored, Is.Empty, "diffusers' script writes only the three models");
        AssertSameTensors(Path.Combine(output, "unet", "diffusion_pytorch_model.safetensors"), Path.Combine(TinySd, "unet", "diffusion_pytorch_model.safetensors"));
        AssertSameTensors(Path.Combine(output, "vae", "diffusion_pytorch_model.safetensors"), Path.Combine(TinySd, "vae", "diffusion_pytorch_model.safetensors"));
        AssertSameTensors(Path.Combine(output, "text_encoder", "model.safetensors"), Path.Combine(TinySd, "text_encoder", "model.safetensors"));
        Assert.That(DiffusersFolder.Open(output).WeightFiles("unet"), Has.Count.EqualTo(1));
    }

    [Test]
    public void TinyCheckpoint_Should_InferTheUnetAndVaeArchitecture_When_NoConfigIsGiven()
    {
        using var file = SafeTensorsFile.Open(TinyCheckpoint);
        var family = SingleFileArchitecture.Family(file);
        var unet = UNet2DConditionConfig.Parse(SingleFileArchitecture.Unet(file, family, yaml: null), "inferred");
        var reference = UNet2DConditionConfig.Load(Path.Combine(TinySd, "unet", "config.json"));
        Assert.Multiple(() =>
        {
            Assert.That(unet.BlockOutChannels, Is.EqualTo(reference.BlockOutChannels));
            Assert.That(unet.LayersPerBlock, Is.EqualTo(reference.LayersPerBlock));
            Assert.That(unet.DownBlockTypes, Is.EqualTo(reference.DownBlockTypes));
            Assert.That(unet.UpBlockTypes, Is.EqualTo(reference.UpBlockTypes));
            Assert.That(unet.CrossAttentionDim, Is.EqualTo(reference.CrossAttentionDim));
            Assert.That(unet.HeadsOfDownBlock(1), Is.EqualTo(reference.HeadsOfDownBlock(1)), "SD 1.x's 8 heads");
            Assert.That(unet.UseLinearProjection, Is.EqualTo(reference.UseLinearProjection));
        });
        var vae = AutoencoderKLConfig.Parse(SingleFileArchitecture.Vae(file, yaml: null), "inferred");
        var referenceVae = AutoencoderKLConfig.Load(Path.Combine(TinySd, "vae", "config.json"));
        Assert.That(vae.BlockOutChannels, Is.EqualTo(referenceVae.BlockOutChannels));
        Assert.That(vae.LayersPerBlock, Is.EqualTo(referenceVae.LayersPerBlock));
        Assert.That(vae.LatentChannels, Is.EqualTo(referenceVae.LatentChannels));
        Assert.That(vae.ScalingFactor, Is.EqualTo(referenceVae.ScalingFactor));

        // The tiny text encoder is 32 wide: its 4 heads are in no tensor, so inference refuses rather than guess.
        var error = Assert.Throws<WeightsException>(() => SingleFileArchitecture.TextEncoder(file, family));
        Assert.That(error!.Message, Does.Contain("model.single_file_config"));
    }

    [Test]
    public void TinyDiffusersModel_Should_ExportToTheFixtureNamesAndValues_When_WrittenAsOneFile()
    {
        using var temp = new TempFolder();
        string output = temp.File("model.safetensors");
        var folder = DiffusersFolder.Open(TinySd);
        SingleFileExporter.Write(new SingleFileExporter.Components(
            folder.WeightFiles("unet"), UNet2DConditionConfig.Load(Path.Combine(TinySd, "unet", "config.json")),
            folder.WeightFiles("vae"), AutoencoderKLConfig.Load(Path.Combine(TinySd, "vae", "config.json")),
            folder.WeightFiles("text_encoder"), ClipTextConfig.Load(Path.Combine(TinySd, "text_encoder", "config.json")),
            "epsilon"), output, ScalarType.Float32);

        using var exported = SafeTensorsFile.Open(output);
        using var fixture = SafeTensorsFile.Open(TinyCheckpoint);
        var ours = exported.Entries.Select(e => e.Name).ToHashSet();
        var theirs = fixture.Entries.Select(e => e.Name).ToHashSet();
        // diffusers' script assumes SD's layout (four levels; no attention in up level 0). For the tiny model it leaves
        // up level 0's attentions under diffusers names, numbers that level's upsampler .1 instead of .2, and numbers the
        // two-level VAE decoder's levels up.2/up.3 instead of up.0/up.1. This export follows the LDM model's own
        // numbering (identical to the script's for SD 1.x/2.x: the test above), so exactly those names differ.
        static string? Theirs(string ours)
        {
            const string unet = "model.diffusion_model.output_blocks.", decoder = "first_stage_model.decoder.up.";
            if (ours.StartsWith(unet + "2.2.conv.", StringComparison.Ordinal)) return unet + "2.1.conv." + ours[(unet + "2.2.conv.").Length..];
            if (ours.StartsWith(unet, StringComparison.Ordinal) && ours[unet.Length] is '0' or '1' or '2' && ours[(unet.Length + 1)..].StartsWith(".1.", StringComparison.Ordinal))
                return "model.diffusion_model.up_blocks.0.attentions." + ours[unet.Length] + "." + ours[(unet.Length + 4)..];
            if (ours.StartsWith(decoder, StringComparison.Ordinal))
                return decoder + (ours[decoder.Length] - '0' + 2) + ours[(decoder.Length + 1)..];
            return null;
        }
        var renamed = ours.Where(n => Theirs(n) is not null).ToList();
        Assert.That(renamed.Count(n => n.StartsWith("model.", StringComparison.Ordinal)),
            Is.EqualTo(theirs.Count(n => n.StartsWith("model.diffusion_model.up_blocks.0.attentions.", StringComparison.Ordinal)) + 2), "3 attentions and the upsampler's weight and bias");
        Assert.That(ours.Except(renamed).Order(StringComparer.Ordinal), Is.EqualTo(theirs.Except(renamed.Select(n => Theirs(n)!)).Order(StringComparer.Ordinal)));
        Assert.That(renamed.Select(n => Theirs(n)!).All(theirs.Contains), Is.True);
        Assert.That(ours, Has.Count.EqualTo(theirs.Count));
        foreach (string name in ours)
            AssertEqual(exported, name, fixture, Theirs(name) ?? name);
    }

    [Test]
    public void ExportedFile_Should_ImportToTheSameWeights_When_Fp16AndV2()
    {
        // SD 2.x's OpenCLIP layout (fused q/k/v) and fp16, on the tiny model with a GELU text encoder.
        using var temp = new TempFolder();
        string configs = temp.File("configs");
        CopyTree(TinySd, configs);
        var te = JObject.Parse(File.ReadAllText(Path.Combine(configs, "text_encoder", "config.json")));
        te["hidden_act"] = "gelu";
        File.WriteAllText(Path.Combine(configs, "text_encoder", "config.json"), te.ToString());
        var folder = DiffusersFolder.Open(configs);
        string file = temp.File("v2.safetensors");
        SingleFileExporter.Write(new SingleFileExporter.Components(
            folder.WeightFiles("unet"), UNet2DConditionConfig.Load(Path.Combine(configs, "unet", "config.json")),
            folder.WeightFiles("vae"), AutoencoderKLConfig.Load(Path.Combine(configs, "vae", "config.json")),
            folder.WeightFiles("text_encoder"), ClipTextConfig.Load(Path.Combine(configs, "text_encoder", "config.json")),
            "v_prediction"), file, ScalarType.Float16);
        using (var written = SafeTensorsFile.Open(file))
        {
            Assert.That(written.Contains("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"));
            Assert.That(written.Entry("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight").Shape, Is.EqualTo(new long[] { 96, 32 }));
            Assert.That(written.Entry("model.diffusion_model.out.2.weight").DType, Is.EqualTo(ScalarType.Float16));
            Assert.That(written.Contains("v_pred"));
        }

        var import = SingleFileImporter.Import(file, temp.File("back"), configs);
        Assert.That(import.Family, Is.EqualTo(SingleFileFamily.StableDiffusion2));
        Assert.That(import.PredictionType, Is.EqualTo("v_prediction"));
        AssertSameTensors(Path.Combine(temp.File("back"), "text_encoder", "model.safetensors"), Path.Combine(TinySd, "text_encoder", "model.safetensors"), halfPrecision: true);
        AssertSameTensors(Path.Combine(temp.File("back"), "unet", "diffusion_pytorch_model.safetensors"), Path.Combine(TinySd, "unet", "diffusion_pytorch_model.safetensors"), halfPrecision: true);
    }

    [Test]
    public void Checkpoint_Should_NameTheMissingWeight_When_ATensorIsAbsent()
    {
        using var temp = new TempFolder();
        string cut = temp.File("cut.safetensors");
        using (var source = SafeTensorsFile.Open(TinyCheckpoint))
        {
            var tensors = source.ReadAll();
            tensors.Remove("model.diffusion_model.middle_block.1.proj_in.weight", out var removed);
            removed!.Dispose();
            SafeTensorsWriter.Write(cut, tensors);
            foreach (var t in tensors.Values) t.Dispose();
        }
        var error = Assert.Throws<WeightsException>(() => SingleFileImporter.Import(cut, temp.File("out"), TinySd));
        Assert.That(error!.Message, Does.Contain("model.diffusion_model.middle_block.1.proj_in.weight"));
    }

    // A checkpoint from a model site whose architecture is read from its tensors (no config folder's unet/ or vae/): a shape
    // of the wrong rank was an IndexOutOfRangeException, and a size of 0 (a tensor of no bytes) let 2^31 channels through as int.MinValue.
    [TestCase("model.diffusion_model.input_blocks.0.0.weight", new long[] { 32 }, "has shape [32]")]
    [TestCase("model.diffusion_model.input_blocks.1.0.out_layers.3.weight", new long[] { 2147483648, 0, 3, 3 }, "has shape [2147483648, 0, 3, 3]")]
    [TestCase("first_stage_model.encoder.conv_out.weight", new long[] { 8, 64 }, "has shape [8, 64]")]
    public void InferredArchitecture_Should_NameTheTensor_When_ItsShapeIsNoCheckpoints(string key, long[] shape, string expected)
    {
        using var temp = new TempFolder();
        string hostile = Tampered(temp, tensors =>
        {
            tensors[key].Dispose();
            tensors[key] = zeros(shape);
        });

        using var file = SafeTensorsFile.Open(hostile);
        var error = Assert.Throws<WeightsException>(() =>
        {
            SingleFileArchitecture.Unet(file, SingleFileFamily.StableDiffusion1, yaml: null);
            SingleFileArchitecture.Vae(file, yaml: null);
        })!;

        Assert.That(error.Message, Does.Contain("hostile.safetensors").And.Contain($"'{key}'").And.Contain(expected));
    }

    [TestCase("model.diffusion_model.input_blocks.4.1.transformer_blocks.2000000000.attn1.to_q.weight")]
    [TestCase("model.diffusion_model.input_blocks.99999999999.0.weight")]
    [TestCase("first_stage_model.encoder.down.0.block.4000000.norm1.weight")]
    public void InferredArchitecture_Should_NameTheTensor_When_ItNumbersABlockTheFileCannotHold(string key)
    {
        // These were inferred as a UNet with two billion transformer blocks per attention, or an int.Parse overflow
        using var temp = new TempFolder();
        string hostile = Tampered(temp, tensors => tensors[key] = zeros(1));

        using var file = SafeTensorsFile.Open(hostile);
        var error = Assert.Throws<WeightsException>(() =>
        {
            SingleFileArchitecture.Unet(file, SingleFileFamily.StableDiffusion1, yaml: null);
            SingleFileArchitecture.Vae(file, yaml: null);
        })!;

        Assert.That(error.Message, Does.Contain("hostile.safetensors").And.Contain($"'{key}'").And.Contain("no block"));
    }

    private static string Tampered(TempFolder temp, Action<Dictionary<string, Tensor>> change)
    {
        string path = temp.File("hostile.safetensors");
        using var source = SafeTensorsFile.Open(TinyCheckpoint);
        var tensors = source.ReadAll();
        change(tensors);
        SafeTensorsWriter.Write(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return path;
    }

    [Test]
    public void SidecarYaml_Should_SetVPredictionAndHeads_When_BesideTheFile()
    {
        var yaml = LdmYaml.Parse("""
            model:
              target: ldm.models.diffusion.ddpm.LatentDiffusion
              params:
                parameterization: "v"
                scale_factor: 0.18215
                unet_config:
                  params:
                    num_head_channels: 64
                    num_heads: -1
            """, "v2-inference-v.yaml");
        Assert.That(yaml.Parameterization, Is.EqualTo("v"));
        Assert.That(yaml.NumHeadChannels, Is.EqualTo(64));
        Assert.That(yaml.NumHeads, Is.Null);
        Assert.That(yaml.ScaleFactor, Is.EqualTo(0.18215));
    }

    private static void AssertSameTensors(string actualPath, string expectedPath, bool halfPrecision = false)
    {
        using var actual = SafeTensorsFile.Open(actualPath);
        using var expected = SafeTensorsFile.Open(expectedPath);
        Assert.That(actual.Entries.Select(e => e.Name).Order(StringComparer.Ordinal), Is.EqualTo(expected.Entries.Select(e => e.Name).Order(StringComparer.Ordinal)));
        foreach (var entry in expected.Entries)
        {
            using var a = actual.Read(entry.Name).to(ScalarType.Float32);
            using var e = expected.Read(entry.Name);
            using var want = halfPrecision ? e.to(ScalarType.Float16).to(ScalarType.Float32) : e.alias();
            Assert.That(a.shape, Is.EqualTo(want.shape), entry.Name);
            Assert.That(a.eq(want).all().item<bool>(), Is.True, entry.Name);
        }
    }

    private static void AssertEqual(SafeTensorsFile a, string aName, SafeTensorsFile b, string bName)
    {
        using var x = a.Read(aName);
        using var y = b.Read(bName);
        Assert.That(x.shape, Is.EqualTo(y.shape), aName);
        Assert.That(x.eq(y).all().item<bool>(), Is.True, $"{aName} vs {bName}");
    }

    private static void CopyTree(string from, string to)
    {
        foreach (string dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        Directory.CreateDirectory(to);
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }
}
