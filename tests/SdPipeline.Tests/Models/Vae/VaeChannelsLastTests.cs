using SdPipeline.Models.Shared;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Vae;

/// <summary>
/// In inference on an AVX-512 CPU the VAE stores its 3×3 convolutions' weights channels-last (docs/performance.md): the
/// weights' values, the outputs' layout and the saved file stay what they were, and the results are the plain layout's
/// to float32 rounding.
/// </summary>
public sealed class VaeChannelsLastTests
{
    // Measured on an Intel Xeon (family 6, model 207): eval against training mode 1.6–2e-6 on the tiny VAE (oneDNN's
    // channels-last convolutions add in another order).
    private const double Tolerance = 1e-5;

    [SetUp]
    public void RequireAvx512() =>
        Assume.That(GroupNormKernel.IsSupported, "channels-last inference needs the AVX-512 GroupNorm kernel");

    [Test]
    public void EncodeAndDecode_Should_MatchThePlainLayout_When_InInference()
    {
        // Given the tiny VAE, its weights, and its plain-layout results (training mode: libtorch's layers as they are)
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var vae = AutoencoderKL.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        manual_seed(31);
        var image = rand(1, 3, 64, 64) * 2 - 1;
        var latents = randn(1, 4, 8, 8);
        var weights = vae.state_dict().ToDictionary(p => p.Key, p => p.Value.clone());
        var plainMoments = vae.Encode(image).Parameters;
        var plainImage = vae.Decode(latents);
        Assert.That(ConvWeightsChannelsLast(vae), Is.Zero, "training mode leaves the layout alone");

        // When it encodes and decodes in eval mode
        vae.eval();
        var moments = vae.Encode(image).Parameters;
        var decoded = vae.Decode(latents);

        // Then every 3×3 convolution's weight is channels-last with the same values, and the outputs are plain tensors
        // equal to the plain layout's within float32 rounding
        Assert.That(ConvWeightsChannelsLast(vae), Is.EqualTo(vae.modules().OfType<TorchSharp.Modules.Conv2d>().Count(c => c.weight!.shape[2] == 3)));
        foreach (var (name, value) in vae.state_dict())
            Assert.That(value.eq(weights[name]).all().item<bool>(), Is.True, $"{name} keeps its values");
        Assert.That(moments.is_contiguous() && decoded.is_contiguous(), Is.True);
        double encodeError = (moments - plainMoments).abs().max().item<float>();
        double decodeError = (decoded - plainImage).abs().max().item<float>();
        TestContext.Out.WriteLine($"eval against training mode: moments {encodeError:E2}, image {decodeError:E2}");
        Assert.That(encodeError, Is.LessThan(Tolerance));
        Assert.That(decodeError, Is.LessThan(Tolerance));
    }

    [Test]
    public void Save_Should_WriteTheSameFile_When_InferenceHasStoredWeightsChannelsLast()
    {
        using var scope = NewDisposeScope();
        using var vae = AutoencoderKL.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        using var folder = new TempFolder();
        vae.Save(Path.Combine(folder.Path, "before"));

        vae.eval();
        using (no_grad()) vae.Decode(zeros(1, 4, 8, 8));
        Assert.That(ConvWeightsChannelsLast(vae), Is.Positive);
        vae.Save(Path.Combine(folder.Path, "after"));

        foreach (var file in Directory.GetFiles(Path.Combine(folder.Path, "before")))
            Assert.That(File.ReadAllBytes(Path.Combine(folder.Path, "after", Path.GetFileName(file))), Is.EqualTo(File.ReadAllBytes(file)), Path.GetFileName(file));
    }

    [Test]
    public void Outputs_Should_StayPlain_When_TrainingModeFollowsInference()
    {
        // The weights stay channels-last once inference has stored them so; the outputs do not follow.
        using var scope = NewDisposeScope();
        using var vae = AutoencoderKL.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        vae.eval();
        using (no_grad()) vae.Decode(zeros(1, 4, 8, 8));
        vae.train();

        using var posterior = vae.Encode(rand(1, 3, 32, 32));
        var image = vae.Decode(randn(1, 4, 8, 8));

        Assert.That(ConvWeightsChannelsLast(vae), Is.Positive);
        Assert.That(posterior.Parameters.is_contiguous() && image.is_contiguous(), Is.True);
    }

    [Test]
    public void StoreChannelsLast_Should_KeepTheValues_InTheWeightsOwnMemory()
    {
        using var scope = NewDisposeScope();
        var weight = randn(8, 6, 3, 3);
        var values = weight.clone();
        var memory = weight.view(-1); // sees the weight's memory in storage order

        AutoencoderKL.StoreChannelsLast(weight);

        Assert.That(weight.stride(), Is.EqualTo(new long[] { 54, 1, 18, 6 }));
        Assert.That(weight.eq(values).all().item<bool>(), Is.True);
        Assert.That(memory.eq(values.permute(0, 2, 3, 1).reshape(-1)).all().item<bool>(), Is.True, "rewritten where it was, channels last");
    }

    [Test]
    public void StoreChannelsLast_Should_LeaveTheRestOfABuffer_When_TheWeightIsPartOfIt()
    {
        using var scope = NewDisposeScope();
        var buffer = randn(2 * 8 * 6 * 3 * 3);
        var original = buffer.clone();
        var weight = buffer[TensorIndex.Slice(8 * 6 * 3 * 3)].view(8, 6, 3, 3); // the buffer's second half
        var values = weight.clone();

        AutoencoderKL.StoreChannelsLast(weight);

        Assert.That(weight.stride(), Is.EqualTo(new long[] { 54, 1, 18, 6 }));
        Assert.That(weight.eq(values).all().item<bool>(), Is.True);
        Assert.That(buffer.eq(original).all().item<bool>(), Is.True, "the buffer is untouched: the weight got memory of its own");
    }

    private static int ConvWeightsChannelsLast(AutoencoderKL vae) =>
        vae.modules().OfType<TorchSharp.Modules.Conv2d>().Count(c => c.weight!.shape[2] == 3 && c.weight.stride(1) == 1);
}
