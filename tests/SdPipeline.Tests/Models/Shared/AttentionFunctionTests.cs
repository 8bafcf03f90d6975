using SdPipeline.Models.Shared;
using TorchSharp;
using static SdPipeline.Tests.Support.Float64Checks;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The training attention kernel (<see cref="AttentionFunction"/>): its output and the gradients of the query, key and
/// value against float64 attention through libtorch's autograd, over every tail of its blocks (queries past a block of
/// 32, keys past a tile of 12 and a chunk of 288, head widths padded to whole vectors and cut into groups of 8 and 1),
/// and when the Attention layer takes it (under AMD's rules, on any CPU with AVX-512), and when it does not (Intel's).
/// </summary>
[NonParallelizable] // switches runtime.kernels for the whole process
public sealed class AttentionFunctionTests
{
    [SetUp]
    public void RequireAvx512() =>
        Assume.That(AttentionKernel.IsSupported, "the kernel needs AVX-512; libtorch's kernel runs everywhere else");

    [TearDown]
    public void Restore() => InferenceKernels.Use("auto");

    // Largest error relative to the largest magnitude of each reference tensor. Measured on an AMD EPYC Zen 4 (family 25,
    // model 17), over the three cases below: the kernel's 5.3e-7–1.6e-6, libtorch's float32 flash kernel's 5.8e-7–1.8e-6.
    private const double Tolerance = 1e-5;

    [TestCase(2, 45, 2100, 2, 40, TestName = "Gradients_Should_MatchFloat64_When_QueriesAndKeysEndMidBlock (SD 1.5 head width)")]
    [TestCase(1, 70, 2048, 3, 64, TestName = "Gradients_Should_MatchFloat64_At_TheSdxlHeadWidth")]
    [TestCase(1, 33, 2061, 2, 20, TestName = "Gradients_Should_MatchFloat64_When_GroupsOfEightLeaveSingleDimensions")]
    public void Gradients_Should_MatchFloat64Attention(int batch, int queries, int keys, int heads, int headDim)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(21);
        var q = (torch.randn(batch, queries, heads * headDim) * 2).requires_grad_();
        var k = torch.randn(batch, keys, heads * headDim).requires_grad_();
        var v = torch.randn(batch, keys, heads * headDim).requires_grad_();
        var upstream = torch.randn(batch, queries, heads * headDim);

        var (expected, expectedGrads) = Float64(q, k, v, upstream, heads);
        var actual = AttentionFunction.Attend(q, k, v, heads);
        actual.backward([upstream]);
        var (libTorch, libTorchGrads) = LibTorchFloat32(q, k, v, upstream, heads);

        Assert.That(actual.requires_grad, Is.True);
        var names = new[] { "output", "query", "key", "value" };
        var ours = new[] { actual, q.grad!, k.grad!, v.grad! };
        var theirs = new[] { libTorch, libTorchGrads[0], libTorchGrads[1], libTorchGrads[2] };
        var references = new[] { expected, expectedGrads[0], expectedGrads[1], expectedGrads[2] };
        for (int i = 0; i < 4; i++)
        {
            double error = RelativeError(ours[i], references[i]), libTorchError = RelativeError(theirs[i], references[i]);
            TestContext.Out.WriteLine($"{names[i]}: kernel {error:E2}, libtorch {libTorchError:E2} of the largest magnitude");
            Assert.That(error, Is.LessThan(Tolerance), names[i]);
        }
    }

    [Test]
    public void Backward_Should_FreeTheSavedTensors_When_ItHasRun()
    {
        // Given the kernel's output, alive (and with it the graph) while backward runs, as a loss keeps it
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(23);
        var q = torch.randn(1, 40, 64).requires_grad_();
        var k = torch.randn(1, 600, 64).requires_grad_();
        var v = torch.randn(1, 600, 64).requires_grad_();
        var output = AttentionFunction.Attend(q, k, v, 2);
        long before = SavedTensors.Released;

        // When backward runs through it
        output.sum().backward();

        // Then the projections, output and log-sums it saved are freed as its backward returns, not with the graph
        Assert.That(SavedTensors.Released - before, Is.EqualTo(1));
        Assert.That(v.grad, Is.Not.Null);
    }

    [Test]
    public void AttentionLayer_Should_TrainThroughTheKernel_UnderAmdsRules()
    {
        InferenceKernels.Use("amd");
        Assert.That(AttentionKernel.AppliesToTraining(torch.zeros(1, 2048, 64), torch.zeros(1, 2048, 64), torch.zeros(1, 2048, 64), 2), Is.True,
            "AMD's rules give 32-wide heads over 2048 keys to the kernel");
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(22);
        var layer = new Attention(queryDim: 64, crossAttentionDim: null, heads: 2, dimHead: 32, bias: false, upcast: false);
        layer.train();
        var input = torch.randn(1, 2048, 64).requires_grad_();

        var output = layer.call(input, null);
        output.square().sum().backward();
        var kernelGrad = input.grad!.clone();
        var weightGrad = QueryWeight(layer).grad!.clone();

        input.grad!.zero_();
        layer.zero_grad();
        InferenceKernels.Use("off");
        Tensor reference;
        try
        {
            reference = layer.call(input, null);
            reference.square().sum().backward();
        }
        finally { InferenceKernels.Use("auto"); }

        Assert.That(output.eq(reference).all().item<bool>(), Is.False, "the two paths differ in rounding, so the kernel did run");
        Assert.That(output.allclose(reference, rtol: 0, atol: 1e-5), Is.True);
        Assert.That(RelativeError(kernelGrad, input.grad!.to(ScalarType.Float64)), Is.LessThan(Tolerance));
        Assert.That(RelativeError(weightGrad, QueryWeight(layer).grad!.to(ScalarType.Float64)), Is.LessThan(Tolerance));
    }

    [Test]
    public void AttentionLayer_Should_TrainThroughLibtorch_UnderIntelsRules()
    {
        InferenceKernels.Use("intel");
        Assert.That(AttentionKernel.AppliesToTraining(torch.zeros(1, 2048, 64), torch.zeros(1, 2048, 64), torch.zeros(1, 2048, 64), 2), Is.False,
            "runtime.kernels=intel: the Xeon's rules, where training's attention is libtorch's");
    }

    private static Tensor QueryWeight(Attention layer) => layer.named_parameters().Single(p => p.name == "to_q.weight").parameter;


    private static (Tensor Output, Tensor[] Grads) Float64(Tensor q, Tensor k, Tensor v, Tensor upstream, long heads)
    {
        var (q64, k64, v64) = (Leaf(q, ScalarType.Float64), Leaf(k, ScalarType.Float64), Leaf(v, ScalarType.Float64));
        var output = LibTorch(q64, k64, v64, heads);
        output.backward([upstream.to(ScalarType.Float64)]);
        return (output.detach(), [q64.grad!, k64.grad!, v64.grad!]);
    }

    private static (Tensor Output, Tensor[] Grads) LibTorchFloat32(Tensor q, Tensor k, Tensor v, Tensor upstream, long heads)
    {
        var (q32, k32, v32) = (Leaf(q, ScalarType.Float32), Leaf(k, ScalarType.Float32), Leaf(v, ScalarType.Float32));
        var output = LibTorch(q32, k32, v32, heads);
        output.backward([upstream]);
        return (output.detach(), [q32.grad!, k32.grad!, v32.grad!]);
    }

    private static Tensor Leaf(Tensor t, ScalarType dtype) => t.detach().to(dtype).requires_grad_();

    // libtorch's attention over heads side by side in the last dimension, the layout of the kernel.
    private static Tensor LibTorch(Tensor q, Tensor k, Tensor v, long heads)
    {
        long batch = q.shape[0], width = q.shape[2], headDim = width / heads;
        Tensor Split(Tensor t) => t.view(batch, -1, heads, headDim).transpose(1, 2);
        return nn.functional.scaled_dot_product_attention(Split(q), Split(k), Split(v)).transpose(1, 2).reshape(batch, -1, width);
    }
}
