using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// <c>runtime.kernels=off</c> (<see cref="InferenceKernels"/>): every inference layer runs as libtorch runs it — no
/// Winograd, GroupNorm or attention kernel, no libtorch-own rule, no channels-last VAE — with the kernels' results to
/// float32 rounding; a bad value is refused by name.
/// </summary>
[NonParallelizable] // a process-wide switch
public sealed class InferenceKernelsTests
{
    [TearDown]
    public void Restore() => InferenceKernels.Use("auto");

    private static DiffusersFolder TinySd => DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd"));

    [Test]
    public void Off_Should_RunEveryUnetLayerAsLibtorchDoes_WithTheKernelsResultToRounding()
    {
        // Given the tiny UNet in eval mode at 32×32 latents, run with the kernels (on AVX-512 Winograd and the GroupNorm kernel)
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var unet = UNet2DConditionModel.FromFolder(TinySd);
        unet.eval();
        var (sample, timestep, text) = KernelChoicesTests.UnetInputs(unet, 32, seed: 11);
        var withKernels = unet.call(sample, timestep, text);

        // When the kernels are off
        InferenceKernels.Use("off");
        var calls = new List<KernelCall>();
        Tensor withoutKernels;
        using (KernelChoices.Watch(calls.Add)) withoutKernels = unet.call(sample, timestep, text);

        // Then every choice was libtorch's, and the outputs agree to float32 rounding (and differ, where the kernels ran)
        Assert.That(calls.OfType<ConvolutionCall>().Select(c => c.Path), Is.Not.Empty.And.All.EqualTo(ConvolutionPath.Layer));
        Assert.That(calls.OfType<GroupNormCall>().Select(c => c.Path), Is.Not.Empty.And.All.EqualTo(GroupNormPath.Layer));
        Assert.That(calls.OfType<AttentionCall>().Select(c => c.Path), Is.Not.Empty.And.All.EqualTo(AttentionPath.ScaledDotProduct));
        Assert.That(calls.OfType<LinearCall>().Select(c => c.Path), Is.Not.Empty.And.All.EqualTo(LinearPath.Layer));
        double difference = (withKernels - withoutKernels).abs().max().item<float>();
        Assert.That(difference, Is.LessThan(1e-4 * withoutKernels.abs().max().item<float>()));
        if (WinogradConvolution.IsSupported) Assert.That(difference, Is.GreaterThan(0));

        // and turned back on, the rules choose again
        InferenceKernels.Use("auto");
        calls.Clear();
        using (KernelChoices.Watch(calls.Add)) unet.call(sample, timestep, text);
        if (WinogradConvolution.IsSupported)
            Assert.That(calls.OfType<ConvolutionCall>().Select(c => c.Path),
                Has.Some.EqualTo(Convolutions.OnAmd ? ConvolutionPath.ChannelsLastWinograd : ConvolutionPath.PlainWinograd));
    }

    [Test]
    public void Off_Should_KeepTheVaesWeightsInThePlainLayout()
    {
        Assume.That(GroupNormKernel.IsSupported, "without AVX-512 the VAE never takes the channels-last layout");
        // Given the kernels off, a tiny VAE encodes in inference
        InferenceKernels.Use("off");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var vae = AutoencoderKL.FromFolder(TinySd);
        vae.eval();
        manual_seed(2);
        var calls = new List<KernelCall>();
        using (KernelChoices.Watch(calls.Add)) vae.Encode(rand(1, 3, 64, 64) * 2 - 1).Mode();

        // Then no weight was rewritten channels-last for the kernels, and no convolution got a channels-last input
        Assert.That(vae.parameters().Where(p => p.dim() == 4).Select(p => p.is_contiguous()), Is.All.True);
        Assert.That(calls.OfType<ConvolutionCall>().Select(c => c.ChannelsLast), Is.Not.Empty.And.All.False);
    }

    [TestCase("amd", true, "AMD's rules")]
    [TestCase("intel", false, "Intel's rules")]
    public void VendorSetting_Should_ApplyThatVendorsRules_OnAnyCpu(string setting, bool amd, string described)
    {
        // When one vendor's rules are asked for
        InferenceKernels.Use(setting);

        // Then they choose, whatever this CPU is, and bench's header says whose they are and whether they are this CPU's
        Assert.Multiple(() =>
        {
            Assert.That(InferenceKernels.Enabled, Is.True);
            Assert.That(InferenceKernels.AmdRules, Is.EqualTo(amd));
            Assert.That(InferenceKernels.Describe(), Does.StartWith(described));
            Assert.That(InferenceKernels.Describe(), amd == Convolutions.OnAmd ? Does.EndWith("this CPU's") : Does.Not.EndWith("this CPU's"));
        });

        // and auto returns to this CPU's vendor's
        InferenceKernels.Use("auto");
        Assert.That(InferenceKernels.AmdRules, Is.EqualTo(Convolutions.OnAmd));
    }

    [Test]
    public void VendorSettings_Should_ChooseTheirOwnPaths_ForTheUnet_WithTheSameOutputToRounding()
    {
        Assume.That(WinogradConvolution.IsSupported, "without AVX-512 neither vendor's rules take a Winograd kernel");
        // Given the tiny UNet in eval mode at 32×32 latents (its second level at 16×16)
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var unet = UNet2DConditionModel.FromFolder(TinySd);
        unet.eval();
        var (sample, timestep, text) = KernelChoicesTests.UnetInputs(unet, 32, seed: 12);

        // When it runs under AMD's rules and under Intel's
        var (amd, amdCalls) = Forward("amd");
        var (intel, intelCalls) = Forward("intel");

        // Then AMD's take the channels-last Winograd kernel at 16×16 and Intel's never do, and both give the same output
        // to float32 rounding
        Assert.That(amdCalls.Select(c => c.Path), Has.Some.EqualTo(ConvolutionPath.ChannelsLastWinograd));
        Assert.That(intelCalls.Select(c => c.Path), Has.None.EqualTo(ConvolutionPath.ChannelsLastWinograd).And.Some.EqualTo(ConvolutionPath.PlainWinograd));
        Assert.That((amd - intel).abs().max().item<float>(), Is.LessThan(1e-4 * intel.abs().max().item<float>()));

        (Tensor Output, List<ConvolutionCall> Calls) Forward(string setting)
        {
            InferenceKernels.Use(setting);
            var calls = new List<KernelCall>();
            Tensor output;
            using (KernelChoices.Watch(calls.Add)) output = unet.call(sample, timestep, text);
            return (output, calls.OfType<ConvolutionCall>().ToList());
        }
    }

    [Test]
    public void Use_Should_RefuseAnUnknownSetting_ByName()
    {
        var error = Assert.Throws<ArgumentException>(() => InferenceKernels.Use("fast"));
        Assert.That(error!.Message, Does.Contain("runtime.kernels 'fast'").And.Contain("auto, off, amd, intel"));
        Assert.That(InferenceKernels.Enabled, Is.True, "the switch is unchanged");
    }
}
