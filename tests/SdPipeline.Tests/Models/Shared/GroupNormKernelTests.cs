using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The inference GroupNorm(+SiLU) kernel against float64 GroupNorm in both layouts it serves: tails (positions past a
/// vector, channel blocks past four vectors), batches, flat regions (a group's mean far larger than its spread: where
/// libtorch's channels-last GroupNorm loses its accuracy), SiLU's extremes and NaN; when <see cref="Norms.Apply"/> uses it.
/// </summary>
public sealed class GroupNormKernelTests
{
    [SetUp]
    public void RequireAvx512() =>
        Assume.That(GroupNormKernel.IsSupported, "the kernel needs AVX-512; libtorch's GroupNorm runs everywhere else");

    // Measured on an Intel Xeon (family 6, model 207): the kernel's largest error against float64 on these inputs is
    // 4–9e-7 and libtorch's float32 plain-layout GroupNorm's 5–9e-7 (outputs of magnitude ≤ ~5); on flat groups both
    // 1–1.4e-5, whose bound is twice libtorch's.
    private const double Tolerance = 1e-5;

    private static Tensor ChannelsLast(Tensor x) => x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    private static GroupNorm Norm(long groups, long channels, double eps = 1e-6)
    {
        var norm = Norms.GroupNorm(groups, channels, eps);
        using var _ = no_grad();
        norm.weight!.copy_(1 + 0.3 * randn(channels));
        norm.bias!.copy_(0.2 * randn(channels));
        return norm;
    }

    private static Tensor Float64(Tensor x, GroupNorm norm, bool silu)
    {
        var y = nn.functional.group_norm(x.to(ScalarType.Float64), norm.num_groups, norm.weight!.to(ScalarType.Float64),
            norm.bias!.to(ScalarType.Float64), norm.eps);
        return silu ? nn.functional.silu(y) : y;
    }

    private static double Error(Tensor actual, Tensor expected) => (actual.to(ScalarType.Float64) - expected).abs().max().item<double>();

    [TestCase(1, 32, 8, 16, 16, true, false, TestName = "Normalize_Should_MatchFloat64_When_PlainLayout")]
    [TestCase(2, 24, 6, 5, 7, true, false, TestName = "Normalize_Should_MatchFloat64_When_PositionsEndMidVector (plain, two samples)")]
    [TestCase(1, 128, 32, 64, 64, false, false, TestName = "Normalize_Should_MatchFloat64_When_NoSiLU (plain, VAE width)")]
    [TestCase(2, 80, 16, 9, 11, true, true, TestName = "Normalize_Should_MatchFloat64_When_ChannelsLastLeavesASingleVectorBlock (two samples)")]
    [TestCase(1, 128, 32, 64, 64, true, true, TestName = "Normalize_Should_MatchFloat64_When_ChannelsLast (VAE width)")]
    [TestCase(1, 320, 32, 3, 70, false, true, TestName = "Normalize_Should_MatchFloat64_When_ChannelsLastWithoutSiLU (SD 1.5 width)")]
    public void Normalize_Should_MatchFloat64(int batch, int channels, int groups, int height, int width, bool silu, bool channelsLast)
    {
        using var scope = NewDisposeScope();
        manual_seed(21);
        var norm = Norm(groups, channels);
        var plain = randn(batch, channels, height, width) * 1.5 + 0.5;
        var x = channelsLast ? ChannelsLast(plain) : plain;

        var expected = Float64(plain, norm, silu);
        var actual = GroupNormKernel.Normalize(x, norm, silu);

        Assert.That(actual.shape, Is.EqualTo(x.shape));
        Assert.That(actual.stride(), Is.EqualTo(x.stride()), "the result keeps the input's layout");
        var libTorch = silu ? nn.functional.silu(norm.call(plain)) : norm.call(plain);
        double error = Error(actual, expected), libTorchError = Error(libTorch, expected);
        TestContext.Out.WriteLine($"largest error against float64: kernel {error:E2}, libtorch (plain layout) {libTorchError:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
    }

    [TestCase(false, TestName = "Normalize_Should_StayAccurate_When_AGroupIsFlat (plain)")]
    [TestCase(true, TestName = "Normalize_Should_StayAccurate_When_AGroupIsFlat (channels-last)")]
    public void Normalize_Should_StayAccurate_When_AGroupIsFlat(bool channelsLast)
    {
        using var scope = NewDisposeScope();
        manual_seed(22);
        // Sky and background: values near 3 that vary by 0.05. The variance is 1/3600 of the mean's square, so one pass of
        // sums and sums of squares in float32 loses about four of its digits; libtorch's channels-last GroupNorm did
        // (docs/performance.md; on this input libtorch 2.10's channels-last GroupNorm is 9.7e-3 from float64, measured on an
        // Intel Xeon, family 6 model 207, against 1.3e-5 for its plain layout).
        var norm = Norm(32, 128);
        var plain = randn(2, 128, 32, 32) * 0.05 + 3;
        var x = channelsLast ? ChannelsLast(plain) : plain;

        var expected = Float64(plain, norm, silu: true);
        double error = Error(GroupNormKernel.Normalize(x, norm, silu: true), expected);
        double libTorchError = Error(nn.functional.silu(norm.call(plain)), expected);
        TestContext.Out.WriteLine($"largest error against float64: kernel {error:E2}, libtorch (plain layout) {libTorchError:E2}");
        Assert.That(error, Is.LessThan(Math.Max(Tolerance, 2 * libTorchError)));
    }

    [Test]
    public void Normalize_Should_MatchFloat64_When_TheInputIsATransposedSequence()
    {
        using var scope = NewDisposeScope();
        manual_seed(23);
        // The VAE attention's group_norm reads tokens [B, N, C] as [B, C, N]: channels adjacent, a 3-D channels-last view.
        var norm = Norm(32, 64);
        var tokens = randn(2, 100, 64);
        var x = tokens.transpose(1, 2);
        using var _ = no_grad();
        Assert.That(GroupNormKernel.Applies(x, norm), Is.True);

        var actual = GroupNormKernel.Normalize(x, norm, silu: false);

        Assert.That(actual.stride(), Is.EqualTo(x.stride()));
        Assert.That(Error(actual, Float64(x.contiguous(), norm, silu: false)), Is.LessThan(Tolerance));
    }

    [TestCase(false, TestName = "Normalize_Should_MatchLibTorchSiLU_When_ValuesAreExtremeOrNaN (plain)")]
    [TestCase(true, TestName = "Normalize_Should_MatchLibTorchSiLU_When_ValuesAreExtremeOrNaN (channels-last)")]
    public void Normalize_Should_MatchLibTorchSiLU_When_ValuesAreExtremeOrNaN(bool channelsLast)
    {
        using var scope = NewDisposeScope();
        manual_seed(25);
        // Four channels per group and weights that spread the normalised values from about -1e4 to 1e4, where SiLU's
        // exponential overflows and underflows; a NaN stays in its own group.
        var norm = Norm(4, 16);
        using (no_grad())
        {
            norm.weight!.copy_(logspace(-2, 4, 16) * tensor(new float[] { 1, -1 }).repeat(8));
            norm.bias!.zero_();
        }
        var x = randn(1, 16, 4, 8);
        x[0, 15, 0, 0] = tensor(float.NaN);

        var actual = GroupNormKernel.Normalize(channelsLast ? ChannelsLast(x) : x, norm, silu: true);
        var expected = Float64(x, norm, silu: true);

        Assert.That(actual[0, ..12].isnan().any().item<bool>(), Is.False, "groups without the NaN stay finite");
        Assert.That(actual[0, 12..].isnan().all().item<bool>(), Is.True, "the NaN's group is NaN, as libtorch's");
        var finite = expected[0, ..12];
        var relative = ((actual[0, ..12].to(ScalarType.Float64) - finite).abs() / (finite.abs() + 1e-30)).max().item<double>();
        Assert.That(relative, Is.LessThan(1e-5));
    }

    [Test]
    public void Applies_Should_RefuseWhatItDoesNotServe()
    {
        using var scope = NewDisposeScope();
        var norm = Norm(4, 24);
        var plain = randn(1, 24, 8, 8);
        Assert.That(GroupNormKernel.Applies(plain, norm), Is.False, "autograd records the layer's parameters");
        using var _ = no_grad();
        Assert.That(GroupNormKernel.Applies(plain, norm), Is.True, "plain layout, any channel count");
        Assert.That(GroupNormKernel.Applies(ChannelsLast(plain), norm), Is.False, "channels-last needs channels in whole vectors");
        Assert.That(GroupNormKernel.Applies(plain.to(ScalarType.Float64), norm), Is.False, "float32 only");
        Assert.That(GroupNormKernel.Applies(plain[.., .., ..4], norm), Is.False, "neither layout");
    }

    [Test]
    public void Normalize_Should_Throw_When_TheInputIsInNeitherLayout()
    {
        using var scope = NewDisposeScope();
        var norm = Norm(4, 16);
        // Every other column: not dense, so neither layout; Applies refuses it, and the kernel does not read it anyway.
        var strided = randn(1, 16, 8, 16)[.., .., .., TensorIndex.Slice(0, 16, 2)];
        using var _ = no_grad();
        Assert.That(GroupNormKernel.Applies(strided, norm), Is.False);
        Assert.That(() => GroupNormKernel.Normalize(strided, norm, silu: false), Throws.Exception);
    }

    [Test]
    public void Apply_Should_CallTheLayer_When_NotInInference()
    {
        using var scope = NewDisposeScope();
        manual_seed(24);
        var norm = Norm(8, 32);
        var plain = randn(1, 32, 16, 16);
        using var _ = no_grad();

        var trained = Norms.Apply(norm, plain, inference: false, silu: true);
        var inferred = Norms.Apply(norm, plain, inference: true, silu: true);
        // libtorch's channels-last GroupNorm is not used at all: a channels-last input outside inference is normalised
        // in the plain layout (bit for bit the plain result).
        var channelsLast = Norms.Apply(norm, ChannelsLast(plain), inference: false, silu: true);
        // Also when the channels-last input is not dense (every other sample of a batch), which libtorch would still
        // give its channels-last kernel.
        var batch = ChannelsLast(randn(3, 32, 16, 16));
        var everyOther = batch[TensorIndex.Slice(0, 3, 2)];
        Assert.That(Norms.Apply(norm, everyOther, inference: false).eq(norm.call(everyOther.contiguous())).all().item<bool>(), Is.True);

        var libTorch = nn.functional.silu(norm.call(plain));
        Assert.That(trained.eq(libTorch).all().item<bool>(), Is.True);
        Assert.That(channelsLast.eq(libTorch).all().item<bool>(), Is.True);
        Assert.That(inferred.eq(GroupNormKernel.Normalize(plain, norm, silu: true)).all().item<bool>(), Is.True, "the kernel in inference");
        Assert.That((inferred - libTorch).abs().max().item<float>(), Is.LessThan(Tolerance));
    }
}
