using SdPipeline.Models.Shared;
using TorchSharp;
using static SdPipeline.Tests.Support.Float64Checks;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The general GEMM on oneDNN's micro-kernel against float64: either operand transposed, overwriting or accumulating,
/// shapes with tails in every dimension, padded rows; and libtorch's own GEMM calls routed to it under AMD's rules (on
/// AMD's CPUs, and on any CPU with <c>runtime.kernels=amd</c>, so an Intel CPU checks the route too).
/// </summary>
[NonParallelizable] // the route follows the process-wide runtime.kernels
public sealed unsafe class GemmKernelTests
{
    [SetUp]
    public void RequireKernel() =>
        Assume.That(GemmKernel.IsSupported, "the kernel needs AVX-512 and libtorch's brgemm export; MKL computes libtorch's GEMMs everywhere else");

    [TearDown]
    public void Restore() => InferenceKernels.Use("auto");

    [TestCase(300, 200, 520, TestName = "Multiply_Should_MatchFloat64_When_EveryDimensionHasATail")]
    [TestCase(64, 10240, 256, TestName = "Multiply_Should_MatchFloat64_When_AWideOperandIsTransposed (a weight gradient at 8x8)")]
    [TestCase(1024, 40, 1100, TestName = "Multiply_Should_MatchFloat64_When_TheThreadsShareRows")]
    [TestCase(5, 7, 3, TestName = "Multiply_Should_MatchFloat64_When_EverySideIsBelowOneBlock")]
    public void Multiply_Should_MatchFloat64(int m, int n, int k)
    {
        foreach (bool aTransposed in new[] { false, true })
            foreach (bool bTransposed in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                    Check(m, n, k, aTransposed, bTransposed, accumulate);
    }

    private static void Check(int m, int n, int k, bool aTransposed, bool bTransposed, bool accumulate)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(m + 3 * n + 7 * k);
        const int Pad = 3;
        // Stored as the kernel reads them, each row padded: the padding must be neither read into C nor written.
        var aStored = torch.randn(aTransposed ? k : m, (aTransposed ? m : k) + Pad);
        var bStored = torch.randn(bTransposed ? n : k, (bTransposed ? k : n) + Pad);
        var c = accumulate ? torch.randn(m, n + Pad) : torch.full(m, n + Pad, float.NaN);
        if (!accumulate) c.narrow(1, n, Pad).fill_(7f);
        var a = aTransposed ? aStored.narrow(1, 0, m).t() : aStored.narrow(1, 0, k);
        var b = bTransposed ? bStored.narrow(1, 0, k).t() : bStored.narrow(1, 0, n);
        var expected = torch.matmul(a.to(ScalarType.Float64), b.to(ScalarType.Float64));
        if (accumulate) expected += c.narrow(1, 0, n).to(ScalarType.Float64);
        var padding = c.narrow(1, n, Pad).clone();
        double mklError = MklError(a, b, accumulate ? c.narrow(1, 0, n) : null, expected);

        Assert.That(OneDnn.TryEnterEnabled(), Is.True);
        try
        {
            GemmKernel.Multiply(m, n, k, KernelTensors.Address(aStored), aStored.shape[1], aTransposed,
                KernelTensors.Address(bStored), bStored.shape[1], bTransposed, KernelTensors.Address(c), c.shape[1], accumulate);
        }
        finally
        {
            OneDnn.ExitEnabled();
        }

        string name = $"{m}x{n}x{k}, A{(aTransposed ? "ᵀ" : "")}·B{(bTransposed ? "ᵀ" : "")}{(accumulate ? ", accumulating" : "")}";
        double error = (c.narrow(1, 0, n).to(ScalarType.Float64) - expected).abs().max().item<double>();
        TestContext.Out.WriteLine($"{name}: largest error against float64 {error:E2}, MKL's {mklError:E2}");
        // Both are float32 sums of the same k products in different orders; the kernel's blocks of 512 terms keep its
        // error near MKL's (1.0-2.1x of it over these cases on the Zen 4: its single chain of 256 terms at 64x10240x256).
        Assert.That(error, Is.LessThan(Math.Max(4 * mklError, 1e-6)), name);
        Assert.That(c.narrow(1, n, Pad).eq(padding).all().item<bool>(), Is.True, $"{name}: the padding past each row of C is left alone");
    }

    [Test]
    public void Multiply_Should_GiveTheSameBits_When_OneThreadTakesAnothersLastRows()
    {
        Assume.That(get_num_threads(), Is.GreaterThanOrEqualTo(2), "one thread has no other to take rows from");
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        // Two depth blocks (k = 700), A transposed: a taken block must be transposed and added to the first block's sums as
        // its owner would.
        const int M = 1000, N = 256, K = 700;
        var aStored = torch.randn(K, M);
        var b = torch.randn(K, N);
        var alone = torch.empty(M, N);
        var taken = torch.empty(M, N);
        float* a = KernelTensors.Address(aStored), bp = KernelTensors.Address(b);

        Assert.That(OneDnn.TryEnterEnabled(), Is.True);
        long before = GemmKernel.RowBlocksTaken;
        try
        {
            // Inside a part of another call the two parts run one after the other on this thread: neither takes the other's rows.
            var serial = new SerialProduct(a, bp, KernelTensors.Address(alone), M, N, K);
            KernelThreads.Run(2, ref serial);
            Assert.That(GemmKernel.RowBlocksTaken, Is.EqualTo(before), "no rows are taken when the parts run one after the other");
            GemmKernel.StalledPartForTests = 1;
            // The first thread takes rows only if the worker reached its last block first; a worker woken late (another
            // runtime's threads still spinning on the second core, as MKL's do for a few ms after a call) misses an attempt.
            for (int attempt = 0; attempt < 50 && GemmKernel.RowBlocksTaken == before; attempt++)
                GemmKernel.Multiply(M, N, K, a, M, true, bp, N, false, KernelTensors.Address(taken), N, false, threads: 2);
        }
        finally
        {
            GemmKernel.StalledPartForTests = -1;
            OneDnn.ExitEnabled();
        }

        var expected = aStored.t().to(ScalarType.Float64).matmul(b.to(ScalarType.Float64));
        Assert.Multiple(() =>
        {
            Assert.That(GemmKernel.RowBlocksTaken, Is.GreaterThan(before), "the first thread takes the stalled one's rows");
            Assert.That(taken.eq(alone).all().item<bool>(), Is.True, "the same bits whichever thread multiplied a block");
            Assert.That((taken.to(ScalarType.Float64) - expected).abs().max().item<double>(), Is.LessThan(1e-3));
        });
    }

    private readonly struct SerialProduct(float* a, float* b, float* c, int m, int n, int k) : IPartitionedWork
    {
        public void Run(int part)
        {
            if (part == 0) GemmKernel.Multiply(m, n, k, a, m, true, b, n, false, c, n, false, threads: 2);
        }
    }

    // The same product by libtorch with runtime.kernels off, which leaves it to MKL.
    private static double MklError(Tensor a, Tensor b, Tensor? c, Tensor expected)
    {
        InferenceKernels.Use("off");
        try
        {
            var mkl = torch.matmul(a, b);
            if (c is not null) mkl += c;
            return (mkl.to(ScalarType.Float64) - expected).abs().max().item<double>();
        }
        finally
        {
            InferenceKernels.Use("auto");
        }
    }

    [Test]
    public void Routes_Should_TakeLargeProducts_Only()
    {
        Assert.Multiple(() =>
        {
            Assert.That(LibtorchGemm.Routes((byte)'N', (byte)'T', 1280, 10240, 64, 1f, 0f), Is.True, "a weight gradient");
            Assert.That(LibtorchGemm.Routes((byte)'t', (byte)'n', 2880, 320, 1024, 1f, 1f), Is.True, "accumulating");
            Assert.That(LibtorchGemm.Routes((byte)'N', (byte)'N', 80, 512, 256, 0.158f, 1f), Is.True, "alpha other than 1 (flash attention's 1/√d)");
            Assert.That(LibtorchGemm.Routes((byte)'N', (byte)'N', 400, 512, 256, float.NaN, 0f), Is.False, "alpha not finite");
            Assert.That(LibtorchGemm.Routes((byte)'N', (byte)'N', 400, 512, 256, 1f, 0.5f), Is.False, "beta other than 0 and 1");
            Assert.That(LibtorchGemm.Routes((byte)'N', (byte)'N', 1280, 1280, 1, 1f, 0f), Is.False, "a side below 16");
            Assert.That(LibtorchGemm.Routes((byte)'N', (byte)'N', 64, 64, 64, 1f, 0f), Is.False, "below 2^20 multiply-adds");
            Assert.That(LibtorchGemm.Routes((byte)'C', (byte)'N', 400, 512, 256, 1f, 0f), Is.False, "a code other than N and T");
        });
    }

    [TestCase(0f, TestName = "Install_Should_RouteAScaledProduct_When_ItOverwrites")]
    [TestCase(1f, TestName = "Install_Should_RouteAScaledProduct_When_ItAccumulates")]
    public void Install_Should_RouteAScaledProduct(float beta)
    {
        RequireRoute();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(6);
        // C = β·C + α·A·B with α = 1/√80: libtorch hands α and β to the GEMM call as they are.
        var a = torch.randn(150, 200);
        var b = torch.randn(200, 90);
        var c = torch.randn(150, 90);
        const double alpha = 0.11180339887498948;

        long before = LibtorchGemm.Routed;
        var actual = torch.addmm(c, a, b, beta: beta, alpha: (float)alpha);
        long routed = LibtorchGemm.Routed - before;

        var expected = c.to(ScalarType.Float64) * beta + alpha * a.to(ScalarType.Float64).matmul(b.to(ScalarType.Float64));
        double error = RelativeError(actual, expected);
        TestContext.Out.WriteLine($"largest error {error:E2} of the largest magnitude");
        Assert.Multiple(() =>
        {
            Assert.That(routed, Is.EqualTo(1));
            Assert.That(error, Is.LessThan(1e-5));
        });
    }

    [Test]
    public void Install_Should_RouteLibtorchsMatmulsAndLinearGradients_UnderAmdsRules()
    {
        RequireRoute();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var x = torch.randn(96, 384, requires_grad: true);
        var w = torch.randn(640, 384, requires_grad: true);

        long before = LibtorchGemm.Routed;
        var y = nn.functional.linear(x, w);
        y.backward([torch.ones_like(y)]);
        long routed = LibtorchGemm.Routed - before;

        var x64 = x.detach().to(ScalarType.Float64);
        var w64 = w.detach().to(ScalarType.Float64);
        var ones = torch.ones(96, 640, dtype: ScalarType.Float64);
        Assert.Multiple(() =>
        {
            Assert.That(routed, Is.EqualTo(3), "forward, the input's gradient and the weight's gradient");
            Assert.That((y.to(ScalarType.Float64) - x64.matmul(w64.t())).abs().max().item<double>(), Is.LessThan(1e-3));
            Assert.That((x.grad!.to(ScalarType.Float64) - ones.matmul(w64)).abs().max().item<double>(), Is.LessThan(1e-3));
            Assert.That((w.grad!.to(ScalarType.Float64) - ones.t().matmul(x64)).abs().max().item<double>(), Is.LessThan(1e-3));
        });

        InferenceKernels.Use("off");
        try
        {
            before = LibtorchGemm.Routed;
            using var noGrad = torch.no_grad();
            _ = x.matmul(w.t());
            Assert.That(LibtorchGemm.Routed, Is.EqualTo(before), "runtime.kernels=off leaves every product to MKL");
        }
        finally
        {
            InferenceKernels.Use("auto");
        }
    }

    [Test]
    public void Install_Should_RouteFlashAttentionsBlockProducts_InsideLibtorchsParallelLoops()
    {
        RequireRoute();
        using var scope = torch.NewDisposeScope();
        // Each product made on the thread of libtorch's parallel loop that owns the block (SD 1.5's widest attention at
        // 512 px is 4096 tokens of this width).
        var (q, k, v, upstream) = AttentionInputs(seed: 11);

        long before = LibtorchGemm.Routed;
        var output = nn.functional.scaled_dot_product_attention(q, k, v);
        output.backward([upstream]);
        long routed = LibtorchGemm.Routed - before;

        var q64 = q.detach().to(ScalarType.Float64).requires_grad_();
        var k64 = k.detach().to(ScalarType.Float64).requires_grad_();
        var v64 = v.detach().to(ScalarType.Float64).requires_grad_();
        var expected = torch.softmax(q64.matmul(k64.transpose(-1, -2)) / Math.Sqrt(40), -1).matmul(v64);
        expected.backward([upstream.to(ScalarType.Float64)]);
        double Error(Tensor actual, Tensor reference) =>
            (actual.to(ScalarType.Float64) - reference).abs().max().item<double>() / reference.abs().max().item<double>();
        Assert.Multiple(() =>
        {
            // Two threads or more: every block's products are made inside the loop, and before the route none reached the kernel.
            if (torch.get_num_threads() > 1) Assert.That(routed, Is.GreaterThan(0), "flash attention's block products");
            Assert.That(Error(output, expected.detach()), Is.LessThan(1e-5));
            Assert.That(Error(q.grad!, q64.grad!), Is.LessThan(1e-5));
            Assert.That(Error(k.grad!, k64.grad!), Is.LessThan(1e-5));
            Assert.That(Error(v.grad!, v64.grad!), Is.LessThan(1e-5));
        });
    }

    [Test]
    public void Install_Should_RouteTheSameProducts_EveryTime_When_LibtorchsThreadsMeetAtTheSwitch()
    {
        RequireRoute();
        using var scope = torch.NewDisposeScope();
        // Flash attention's blocks here are made by both of libtorch's threads at once, each taking oneDNN's switch for its
        // product; a thread that gave up on the switch would hand its product to MKL, and the same inputs would round
        // differently from run to run.
        var (q, k, v, upstream) = AttentionInputs(seed: 12);
        Tensor[]? first = null;
        long? firstRouted = null;
        for (int run = 0; run < 12; run++)
        {
            q.grad = null;
            k.grad = null;
            v.grad = null;
            long before = LibtorchGemm.Routed;
            var output = nn.functional.scaled_dot_product_attention(q, k, v);
            output.backward([upstream]);
            long routed = LibtorchGemm.Routed - before;
            Tensor[] results = [output.detach(), q.grad!, k.grad!, v.grad!];
            if (first is null)
            {
                (first, firstRouted) = (results, routed);
                Assert.That(routed, Is.GreaterThan(0), "the blocks' products reach the kernel");
                continue;
            }
            Assert.That(routed, Is.EqualTo(firstRouted), $"products routed in run {run}");
            for (int i = 0; i < results.Length; i++)
                Assert.That(results[i].eq(first[i]).all().item<bool>(), Is.True, $"result {i} of run {run} bit for bit");
        }
    }

    // Queries, keys and values of 1024 tokens in 2 heads 40 wide, with grad, and an output gradient: flash attention's
    // blocks of 256 queries by 512 keys.
    private static (Tensor Q, Tensor K, Tensor V, Tensor Upstream) AttentionInputs(int seed)
    {
        torch.manual_seed(seed);
        var q = torch.randn(1, 2, 1024, 40, requires_grad: true);
        var k = torch.randn(1, 2, 1024, 40, requires_grad: true);
        var v = torch.randn(1, 2, 1024, 40, requires_grad: true);
        return (q, k, v, torch.randn(1, 2, 1024, 40));
    }

    // AMD's rules route libtorch's GEMMs (auto does so on AMD's CPUs only: MKL runs its own AVX-512 path on Intel's).
    private static void RequireRoute()
    {
        InferenceKernels.Use("amd");
        Assert.That(LibtorchGemm.Installed, Is.True, LibtorchGemm.Failure);
    }

    [Test]
    public void IntelsRules_Should_LeaveEveryProductToMkl_When_TheRouteIsInPlace()
    {
        // Given the route in place (AMD's rules)
        RequireRoute();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(6);
        var x = torch.randn(96, 384);
        var w = torch.randn(640, 384);
        long before = LibtorchGemm.Routed;
        var routedProduct = x.matmul(w.t());
        Assert.That(LibtorchGemm.Routed, Is.EqualTo(before + 1));

        // When Intel's rules choose
        InferenceKernels.Use("intel");
        before = LibtorchGemm.Routed;
        var mklProduct = x.matmul(w.t());

        // Then MKL computes the product, to the route's result within float32 rounding
        Assert.Multiple(() =>
        {
            Assert.That(LibtorchGemm.Routed, Is.EqualTo(before), "runtime.kernels=intel leaves every product to MKL");
            Assert.That(LibtorchGemm.Describe(), Is.EqualTo("MKL"));
            Assert.That((routedProduct - mklProduct).abs().max().item<float>(), Is.LessThan(1e-4));
        });
    }

    [Test]
    public void PltSlot_Should_FindLibtorchsSgemmSlot_HoldingMklOrTheRoute()
    {
        var slot = PltSlot.Find("libtorch_cpu.so", "sgemm_", out string? failure);
        Assert.That(slot, Is.Not.Null, failure);
        Assert.That(PltSlot.Find("libtorch_cpu.so", "no_such_symbol_", out failure), Is.Null);
        Assert.That(failure, Does.Contain("no PLT slot for no_such_symbol_"));
        Assert.That(PltSlot.Find("libnot_loaded_here.so", "sgemm_", out failure), Is.Null);
        Assert.That(failure, Does.Contain("not mapped"));
    }
}
