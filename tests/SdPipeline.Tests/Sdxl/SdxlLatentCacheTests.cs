using SdPipeline.BaseModel;
using SdPipeline.Data;
using SdPipeline.Images;
using SdPipeline.Latents;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Vae;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;
using SdPipeline.Tokenization;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>The latent cache of an SDXL model: both encoders' states, the pooled embedding, and the micro-conditioning of diffusers' SDXL script.</summary>
public sealed class SdxlLatentCacheTests
{
    private static readonly string[] Chain = ["model", "download", "latents"];

    // Gradients in x and y, so a crop one pixel off or a flip shows in the pixels.
    private static byte[] Png(int width, int height, byte shade)
    {
        var image = new RgbImage(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                image.Set(x, y, shade, (byte)(y * 255 / Math.Max(1, height - 1)), (byte)(x * 255 / Math.Max(1, width - 1)));
        return ImageCodec.EncodePng(image);
    }

    private static (string, byte[], string)[] Images() =>
    [
        ("wide.png", Png(85, 64, 20), "a wide thing"),   // resized to 21×16 at 16 px: an odd margin of 5
        ("tall.png", Png(64, 100, 140), "a tall thing"), // resized to 16×25
        ("square.png", Png(40, 40, 250), ""),
    ];

    private static string[] Sets(PipelineHarness harness, string model, params string[] more) =>
    [
        .. harness.ImageFolder(Images()), $"model.base={model}", "latents.resolution=16", "latents.random_flip=true",
        "latents.embedding_dtype=float32", "latents.posterior_dtype=float32", "download.heldout_fraction=0", .. more,
    ];

    [TestCase(true)]
    [TestCase(false)]
    public void Row_Should_HoldBothEncodersStates_ThePooledEmbedding_AndTheSizeAndCropOfItsPixels(bool centerCrop)
    {
        // Given an SDXL model's cache of three images, with flips and centre or random crops
        using var harness = new PipelineHarness();
        string[] sets = Sets(harness, TinySdxl.Folder, $"latents.center_crop={(centerCrop ? "true" : "false")}", "latents.variants=4");
        var outcome = harness.RunChain(Chain, sets);
        string downloaded = harness.Plan("download", sets).ArtifactDirectory!;
        var model = DiffusersFolder.Open(ResolvedModel.Read(harness.Plan("model", sets).ArtifactDirectory!).Folder);
        using var vae = AutoencoderKL.FromFolder(model);
        using var encoders = new EncodersOf(model);
        using var dataset = LatentDataset.Open(outcome.Directory);
        Assert.That(dataset.Index.Sdxl, Is.True);

        foreach (var row in dataset.Index.Rows)
        {
            using var scope = NewDisposeScope();
            using var batch = dataset.Read([row]);
            var item = DatasetReader.Items(downloaded).Single(i => i.Id == row.Id);
            var columns = batch.Sdxl!;

            // Then the text columns are what diffusers' encode_prompt gives the caption
            var ids = encoders.Tokenizer.EncodeBatch([row.Caption]);
            var ids2 = encoders.Tokenizer2.EncodeBatch([row.Caption]);
            var (promptEmbeds, pooled) = encoders.Pair.Encode(ids, ids2);
            Assert.That(batch.InputIds.data<long>().ToArray(), Is.EqualTo(ids.data<long>().ToArray()), row.Id);
            Assert.That(columns.InputIds2.data<long>().ToArray(), Is.EqualTo(ids2.data<long>().ToArray()), row.Id);
            Assert.That(batch.TextEmbeddings.shape, Is.EqualTo(new long[] { 1, 77, 56 }), "32 + 24 channels, the first encoder's first");
            Assert.That((batch.TextEmbeddings - promptEmbeds).abs().max().item<float>(), Is.LessThan(1e-6), row.Id);
            Assert.That((columns.PooledTextEmbeddings - pooled).abs().max().item<float>(), Is.LessThan(1e-6), row.Id);

            // And the original size is the image's (height, width); the crop's (top, left) says where diffusers' script
            // (resize, flip, crop) took the pixels that were encoded
            Assert.That(columns.OriginalSize.data<long>().ToArray(), Is.EqualTo(new long[] { item.Height, item.Width }), row.Id);
            var topLeft = columns.CropTopLeft.data<long>().ToArray();
            var image = ImageCodec.DecodeRgb(File.ReadAllBytes(Path.Combine(downloaded, item.File)));
            var (width, height) = ImagePreprocessor.CoverSize(image.Width, image.Height, 16, 16);
            var resized = PilResampler.Resize(image, width, height, PilResampler.Lanczos);
            var flippedWhole = torch.tensor(ImagePreprocessor.ToTensorData(resized, new CropBox(0, 0, width, height), row.Flip), [1, 3, height, width]);
            var pixels = flippedWhole[.., .., (int)topLeft[0]..((int)topLeft[0] + 16), (int)topLeft[1]..((int)topLeft[1] + 16)];
            using (torch.no_grad())
            using (var posterior = vae.Encode(pixels))
                Assert.That((batch.Mean - posterior.Mean).abs().max().item<float>(), Is.LessThan(1e-5), $"{row.Id} flip {row.Flip} crop {string.Join(",", topLeft)}");
            if (centerCrop)
                Assert.That(topLeft, Is.EqualTo(new long[]
                {
                    (int)Math.Round((height - 16) / 2.0, MidpointRounding.ToEven), (int)Math.Round((width - 16) / 2.0, MidpointRounding.ToEven),
                }), $"{row.Id}: torchvision's centre crop of the (flipped) image");
        }
        if (centerCrop)
            Assert.That(dataset.Index.Rows.Where(r => r.Id.EndsWith("wide")).Select(r => r.Crop[0]), Is.EquivalentTo(new[] { 2, 3 }),
                "the odd margin: the flipped row's box, in the unflipped image, is on the other side");
    }

    [Test]
    public void Fingerprint_Should_IncludeTheSecondTextEncoderAndTokenizer_AndNotTheUnet()
    {
        // Given a cache of a copy of the tiny SDXL model
        using var harness = new PipelineHarness();
        string model = Path.Combine(harness.Root, "model");
        CopyFolder(TinySdxl.Folder, model);
        string[] sets = Sets(harness, model);
        harness.RunChain(Chain, sets);

        // When the UNet changes, then the cache stays; when text_encoder_2's weights or tokenizer_2's files change, it does not
        Perturb(Path.Combine(model, "unet", "diffusion_pytorch_model.safetensors"));
        Assert.That(harness.Plan("latents", sets).Status, Is.EqualTo(StageStatus.Cached));
        Perturb(Path.Combine(model, "text_encoder_2", "model.safetensors"));
        Assert.That(harness.Plan("latents", sets).Reasons, Has.Some.Contains("file:text_encoder_2/model.safetensors changed content"));
        harness.Run("model", sets);
        harness.Run("latents", sets);
        File.AppendAllText(Path.Combine(model, "tokenizer_2", "special_tokens_map.json"), "\n");
        Assert.That(harness.Plan("latents", sets).Reasons, Has.Some.Contains("file:tokenizer_2/special_tokens_map.json changed content"));
    }

    [Test]
    public void SdxlModel_Should_RefuseClipSkip_NamingTheKey()
    {
        using var harness = new PipelineHarness();
        string[] sets = Sets(harness, TinySdxl.Folder, "model.clip_skip=1");
        harness.RunChain(["model", "download"], sets);

        var error = Assert.Throws<SdPipeline.Config.ConfigException>(() => harness.Run("latents", sets));
        Assert.That(error!.Message, Does.Contain("model.clip_skip = 1").And.Contain("model.clip_skip=0"));
    }

    private sealed class EncodersOf : IDisposable
    {
        public EncodersOf(DiffusersFolder model)
        {
            Tokenizer = ClipTokenizer.FromFolder(model.Component("tokenizer"));
            Tokenizer2 = ClipTokenizer.FromFolder(model.Component("tokenizer_2"));
            Pair = new SdxlTextEncoders(ClipTextModel.FromPretrained(model), ClipTextModelWithProjection.FromPretrained(model));
            Pair.TextEncoder.eval();
            Pair.TextEncoder2.eval();
        }

        public ClipTokenizer Tokenizer { get; }

        public ClipTokenizer Tokenizer2 { get; }

        public SdxlTextEncoders Pair { get; }

        public void Dispose()
        {
            Pair.TextEncoder.Dispose();
            Pair.TextEncoder2.Dispose();
        }
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
