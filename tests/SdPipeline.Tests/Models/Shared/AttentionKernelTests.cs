using SdPipeline.Models.Shared;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The inference attention kernel against float64 attention and libtorch's kernel: every tail (queries past a block of
/// 32, keys past a block of 12 and a chunk of 288, head widths cut into groups of 8 and 1), the rescaling when a
/// later chunk raises the maximum, NaN propagation, and when the Attention layer uses it.
/// </summary>
public sealed class AttentionKernelTests
{
    [SetUp]
    public void RequireAvx512() =>
        Assume.That(AttentionKernel.IsSupported, "the kernel needs AVX-512; libtorch's kernel runs everywhere else");

    // Measured on an Intel Xeon (family 6, model 207): the kernel's largest error against float64 on these inputs is
    // 0.6–3e-6 and libtorch's float32 kernel's 0.5–3e-6 (outputs of magnitude ≤ ~3, sums of ≤ 4096 terms).
    private const double Tolerance = 1e-5;

    [TestCase(2, 70, 300, 3, 40, TestName = "Attend_Should_MatchFloat64_When_QueriesAndKeysEndMidBlock (SD 1.5 head width)")]
    [TestCase(1, 33, 577, 2, 64, TestName = "Attend_Should_MatchFloat64_When_KeysSpanThreeChunks (SDXL head width)")]
    [TestCase(2, 40, 25, 4, 5, TestName = "Attend_Should_MatchFloat64_When_TheHeadWidthIsNotAMultipleOfEight")]
    [TestCase(1, 16, 13, 1, 18, TestName = "Attend_Should_MatchFloat64_When_GroupsOfEightLeaveSingleDimensions")]
    [TestCase(2, 4096, 4096, 8, 40, TestName = "Attend_Should_MatchFloat64_At_Sd15s64x64Level")]
    public void Attend_Should_MatchFloat64Attention(int batch, int queries, int keys, int heads, int headDim)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        var q = torch.randn(batch, queries, heads * headDim) * 2;
        var k = torch.randn(batch, keys, heads * headDim);
        var v = torch.randn(batch, keys, heads * headDim);

        var expected = LibTorch(q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), heads);
        var actual = AttentionKernel.Attend(q, k, v, heads);

        Assert.That(actual.shape, Is.EqualTo(q.shape));
        double error = (actual.to(ScalarType.Float64) - expected).abs().max().item<double>();
        double libTorchError = (LibTorch(q, k, v, heads).to(ScalarType.Float64) - expected).abs().max().item<double>();
        TestContext.Out.WriteLine($"largest error against float64: kernel {error:E2}, libtorch {libTorchError:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
    }

    [Test]
    public void Attend_Should_RescaleEarlierChunks_When_LaterKeysScoreHigher()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(12);
        // Every query scores the keys in increasing order, by up to 40 nats: each chunk of 288 keys raises the maximum,
        // and the first chunks' weights end up far below the last's.
        int keys = 1000, width = 16;
        var q = torch.ones(1, 50, width) + 0.1 * torch.randn(1, 50, width);
        var k = torch.linspace(-2.5, 2.5, keys).view(1, keys, 1).expand(1, keys, width).contiguous();
        var v = torch.randn(1, keys, width);

        var expected = LibTorch(q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), heads: 1);
        var actual = AttentionKernel.Attend(q, k, v, heads: 1);

        Assert.That((actual.to(ScalarType.Float64) - expected).abs().max().item<double>(), Is.LessThan(Tolerance));
    }

    [Test]
    public void Attend_Should_PropagateNaN_As_LibTorchDoes()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(13);
        var q = torch.randn(1, 40, 2 * 8);
        var k = torch.randn(1, 30, 2 * 8);
        var v = torch.randn(1, 30, 2 * 8);
        q[0, 5, 0] = torch.tensor(float.NaN);  // one query of head 0
        k[0, 7, 12] = torch.tensor(float.NaN); // one key of head 1

        var actual = AttentionKernel.Attend(q, k, v, heads: 2);
        var libTorch = LibTorch(q, k, v, heads: 2);

        Assert.That(actual.isnan().eq(libTorch.isnan()).all().item<bool>(), Is.True);
        Assert.That(actual[0, 5, ..8].isnan().all().item<bool>(), Is.True, "the NaN query's row of head 0");
        Assert.That(actual[0, TensorIndex.Slice(), 8..].isnan().all().item<bool>(), Is.True, "every row of head 1 sees the NaN key");
        Assert.That(actual[0, 6, ..8].isnan().any().item<bool>(), Is.False, "head 0's other rows stay finite");
    }

    [Test]
    public void Applies_Should_TakeOnlyLongInferenceSequencesOfNarrowHeads()
    {
        using var scope = torch.NewDisposeScope();
        var sd15 = torch.zeros(2, 4096, 320);
        Assert.That(AttentionKernel.Applies(sd15, sd15, sd15, heads: 8), Is.True, "SD 1.5's 64×64 self-attention");

        var sdxl = torch.zeros(2, 4096, 640);
        Assert.That(AttentionKernel.Applies(sdxl, sdxl, sdxl, heads: 10), Is.True, "SDXL's 64×64 self-attention");

        var shortSequence = torch.zeros(2, 1024, 640);
        Assert.That(AttentionKernel.Applies(shortSequence, shortSequence, shortSequence, heads: 8), Is.False, "1024 keys: libtorch's is faster");

        var text = torch.zeros(2, 77, 320);
        Assert.That(AttentionKernel.Applies(sd15, text, text, heads: 8), Is.False, "cross-attention over 77 tokens");

        var vae = torch.zeros(1, 4096, 512);
        Assert.That(AttentionKernel.Applies(vae, vae, vae, heads: 1), Is.False, "the VAE's single 512-wide head");

        var trained = torch.zeros(2, 4096, 320, requires_grad: true);
        Assert.That(AttentionKernel.Applies(trained, sd15, sd15, heads: 8), Is.False, "autograd needs libtorch's kernel");

        var doubles = torch.zeros(2, 4096, 320, ScalarType.Float64);
        Assert.That(AttentionKernel.Applies(doubles, doubles, doubles, heads: 8), Is.False);
    }

    [Test]
    public void AttentionLayer_Should_GiveTheSameValues_InInferenceAndInTraining()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(14);
        var layer = new Attention(queryDim: 128, crossAttentionDim: null, heads: 4, dimHead: 32, bias: false, upcast: false);
        var input = torch.randn(1, 2048, 128);

        Tensor inference, training;
        using (torch.no_grad())
        {
            layer.eval();
            inference = layer.call(input, null); // the kernel: eval mode, no gradient, 2048 keys
            layer.train();
            training = layer.call(input, null);  // the training kernel on AMD's CPUs, libtorch's elsewhere
        }
        var withGradient = layer.call(input, null);

        Assert.That(inference.allclose(training, rtol: 0, atol: 1e-5), Is.True);
        var projection = torch.zeros(1, 2048, 128);
        if (AttentionKernel.AppliesToTraining(projection, projection, projection, heads: 4))
            Assert.That(inference.eq(training).all().item<bool>(), Is.True, "the training kernel's forward is the inference kernel's arithmetic");
        else
            Assert.That(inference.eq(training).all().item<bool>(), Is.False, "the two paths differ in rounding, so the kernel did run");
        Assert.That(withGradient.requires_grad, Is.True);
        Assert.That(withGradient.eq(training).all().item<bool>(), Is.True, "training mode takes one path with and without gradients, bit for bit");
    }

    // libtorch's attention over heads side by side in the last dimension, the layout of the kernel.
    private static Tensor LibTorch(Tensor q, Tensor k, Tensor v, long heads)
    {
        long batch = q.shape[0], width = q.shape[2], headDim = width / heads;
        Tensor Split(Tensor t) => t.view(batch, -1, heads, headDim).transpose(1, 2);
        return nn.functional.scaled_dot_product_attention(Split(q), Split(k), Split(v)).transpose(1, 2).reshape(batch, -1, width);
    }
}
