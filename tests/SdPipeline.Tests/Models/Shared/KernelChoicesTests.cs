using SdPipeline.Benchmarks;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// What the models report of their inference kernel choices (<see cref="KernelChoices"/>, read by <c>sdpipe bench
/// kernels</c>): one report per call, the path the call took, nothing when unwatched or training, and watching changes
/// no result.
/// </summary>
public sealed class KernelChoicesTests
{
    private static UNet2DConditionModel TinyUnet() => UNet2DConditionModel.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));

    // A guided sampling step's inputs (batch 2), as the benchmarks make them.
    internal static (Tensor Sample, Tensor Timestep, Tensor Text) UnetInputs(UNet2DConditionModel unet, int size, ulong seed = 7)
    {
        using var generator = new Generator(seed);
        return UnetBenchmark.Inputs(unet.Config, 2, size, generator, CPU);
    }

    [Test]
    public void Watch_Should_ReportEveryInferenceCall_WithThePathItTook_And_ChangeNoResult()
    {
        // Given the tiny UNet in eval mode, its convolutions and attentions counted by forward hooks in a first run
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var unet = TinyUnet();
        unet.eval();
        var (sample, timestep, text) = UnetInputs(unet, 32);
        var unwatched = unet.call(sample, timestep, text);

        // When a forward is watched
        var calls = new List<KernelCall>();
        Tensor watched;
        using (KernelChoices.Watch(calls.Add)) watched = unet.call(sample, timestep, text);

        // Then the output is the unwatched one to the bit
        Assert.That(watched.eq(unwatched).all().item<bool>(), Is.True);
        // and every resnet and upsampler convolution, every GroupNorm and every attention reported each call
        var convolutions = calls.OfType<ConvolutionCall>().ToList();
        int resnetConvolutions = unet.modules().OfType<ResnetBlock2D>().Count() * 2 + unet.modules().OfType<Upsample2D>().Count();
        Assert.That(convolutions, Has.Count.EqualTo(resnetConvolutions));
        Assert.That(calls.OfType<AttentionCall>().Count(), Is.EqualTo(unet.modules().OfType<Attention>().Count()));
        Assert.That(calls.OfType<GroupNormCall>().Count(), Is.GreaterThanOrEqualTo(unet.modules().OfType<ResnetBlock2D>().Count() * 2));
        // each with the path it took: on AVX-512 the 32×32 level by Winograd, the 16×16 one not (on AMD's CPUs by the
        // channels-last kernel)
        if (WinogradConvolution.IsSupported)
        {
            Assert.That(convolutions.Where(c => c.InputShape[2] == 32).Select(c => c.Path), Is.All.EqualTo(ConvolutionPath.PlainWinograd));
            if (Convolutions.OnAmd)
                Assert.That(convolutions.Where(c => c.InputShape[2] == 16).Select(c => c.Path), Is.All.EqualTo(ConvolutionPath.ChannelsLastWinograd));
            else
                Assert.That(convolutions.Where(c => c.InputShape[2] == 16).Select(c => c.Path), Has.None.EqualTo(ConvolutionPath.PlainWinograd));
            Assert.That(calls.OfType<GroupNormCall>().Select(c => c.Path), Is.All.EqualTo(GroupNormPath.Kernel));
        }
        // and every linear layer of the transformers: the attentions' four projections, the GEGLU's and the feed-forward's
        // output, by the brgemm kernel from 32 rows on AMD's CPUs (here the 16×16 level's 512 tokens, the mid block's 128
        // and the 154 of the text's keys and values), else by libtorch
        var linears = calls.OfType<LinearCall>().ToList();
        Assert.That(linears, Has.Count.EqualTo(unet.modules().OfType<Attention>().Count() * 4 + unet.modules().OfType<BasicTransformerBlock>().Count() * 2));
        bool kernel = LinearKernel.IsSupported && Convolutions.OnAmd;
        Assert.That(linears.Select(c => c.Path), Is.All.EqualTo(kernel ? LinearPath.Kernel : LinearPath.Layer));
    }

    [Test]
    public void Watch_Should_ReportNothing_When_TrainingOrUnwatched_And_RestoreTheWatcherBefore()
    {
        using var scope = NewDisposeScope();
        using var unet = TinyUnet();
        var (sample, timestep, text) = UnetInputs(unet, 16);
        var outer = new List<KernelCall>();
        var inner = new List<KernelCall>();
        using (KernelChoices.Watch(outer.Add))
        {
            // A training forward (train mode, autograd on) chooses nothing
            unet.train();
            unet.call(sample, timestep, text);
            Assert.That(outer, Is.Empty);

            // A nested watcher takes the calls while it lives, then the outer one has them again
            unet.eval();
            using (no_grad())
            {
                using (KernelChoices.Watch(inner.Add)) unet.call(sample, timestep, text);
                Assert.That(inner, Is.Not.Empty);
                Assert.That(outer, Is.Empty);
                unet.call(sample, timestep, text);
            }
            Assert.That(outer, Has.Count.EqualTo(inner.Count));
        }
        // Unwatched, nothing is reported to either
        using (no_grad()) unet.call(sample, timestep, text);
        Assert.That(outer, Has.Count.EqualTo(inner.Count));
    }

    [Test]
    public void Candidates_Should_EachComputeWhatApplyComputes_ToFloat32Rounding()
    {
        // Given an SD-width convolution on a plain and on a channels-last input
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(3);
        var conv = nn.Conv2d(320, 320, 3, padding: 1);
        conv.eval();
        var plain = randn(1, 320, 32, 32);
        var channelsLast = plain.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        foreach (var input in new[] { plain, channelsLast })
        {
            // Every candidate path computes what Apply computes, to float32 rounding
            var applied = Convolutions.Apply(conv, input, inference: true);
            var candidates = Convolutions.Candidates(input, conv);
            Assert.That(candidates.Contains(ConvolutionPath.LibtorchsOwn), Is.EqualTo(OneDnn.Enabled), "libtorch's own path is offered where oneDNN is on");
            if (WinogradConvolution.IsSupported)
                Assert.That(candidates, ReferenceEquals(input, plain)
                    ? Does.Contain(ConvolutionPath.PlainWinograd).And.Contain(ConvolutionPath.ChannelsLastWinograd)
                    : Does.Contain(ConvolutionPath.Winograd).And.Not.Contain(ConvolutionPath.ChannelsLastWinograd));
            foreach (var path in candidates)
                Assert.That((Convolutions.Run(path, conv, input) - applied).abs().max().item<float>(), Is.LessThan(1e-4), path.ToString());
        }
    }

    [Test]
    public void Vae_Should_ReportChannelsLastCalls_When_EncodingInInference()
    {
        // Given the tiny VAE in eval mode (on AVX-512 its activations are channels-last in inference)
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var vae = AutoencoderKL.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        vae.eval();
        manual_seed(2);
        var image = rand(1, 3, 64, 64) * 2 - 1;

        var calls = new List<KernelCall>();
        using (KernelChoices.Watch(calls.Add)) vae.Encode(image).Mode();

        Assert.That(calls.OfType<ConvolutionCall>(), Is.Not.Empty);
        Assert.That(calls.OfType<AttentionCall>(), Is.Not.Empty, "the mid block's attention");
        if (GroupNormKernel.IsSupported)
            Assert.That(calls.OfType<ConvolutionCall>().Count(c => c.Path == ConvolutionPath.Winograd), Is.GreaterThan(0), "channels-last, by Winograd");
    }
}
