using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace SdPipeline.Models.Shared;

/// <summary>
/// libtorch's own float32 GEMM calls on AMD's CPUs, routed to <see cref="GemmKernel"/>. libtorch hands every float32
/// matrix product outside oneDNN to the Fortran <c>sgemm_</c> of the MKL it links: linear layers and matmuls forward and
/// backward, and im2col convolutions forward and backward, which is how a training step on the CPU spends about 78% of
/// its time (perf, AMD EPYC Zen 4). MKL runs its generic code path on AMD's CPUs; oneDNN's micro-kernel, which compiles
/// for the instruction set it finds, ran the step's large products in 0.44–0.88× MKL's time (docs/performance.md,
/// fifteenth session). libtorch_cpu.so calls <c>sgemm_</c> through its PLT slot, so writing this class's function into
/// that slot (<see cref="PltSlot"/>) routes libtorch's calls, and only libtorch's.
/// </summary>
/// <remarks>
/// <para>A call goes to MKL as before unless it is a large product (<see cref="Routes"/>) made outside the project's own
/// kernels, with <see cref="InferenceKernels"/> on. A product made inside one of libtorch's parallel loops (flash attention's
/// blocks of 256 queries by 512 keys) is computed on the thread that makes it: SD 1.5's attention at 4096 tokens, forward
/// and backward, took 0.91× MKL's time so, and the same at 1024 and 256 tokens (docs/performance.md, sixteenth session).
/// Its products scaled by 1/√d (α) are routed too; its blocks under 2²⁰ multiply-adds (over 77 keys, at 64–256 tokens),
/// 0.87–0.97× MKL's time on the kernel, were not kept (eighteenth session).</para>
/// <para>libtorch runs the micro-kernel only while its oneDNN switch is on, so a routed call holds the switch on
/// (<see cref="OneDnn.TryEnterEnabled"/>, several threads at once); where it cannot, the call goes to MKL.</para>
/// <para>Results agree with MKL's to float32 rounding (another order of additions); the parity tests and the numerics
/// self-check run with the route in place.</para>
/// </remarks>
public static unsafe class LibtorchGemm
{
    private const string Library = LibTorchCpu.FileName;
    private const string Symbol = "sgemm_";
    private const long LeastProduct = 1 << 20; // m·n·k below this stays with MKL (at most ~10 µs of work)
    private const int LeastSide = 16;

    private static readonly Lock Gate = new();
    private static delegate* unmanaged<byte*, byte*, int*, int*, int*, float*, float*, int*, float*, int*, float*, float*, int*, void> s_mkl;
    private static delegate* unmanaged<byte> s_inParallelRegion;
    private static long s_routed;
    [ThreadStatic] private static bool t_inside;

    /// <summary>Whether libtorch's GEMM is routed here: under AMD's rules, with AVX-512 and the micro-kernel exported.</summary>
    public static bool Preferred => InferenceKernels.AmdRules && GemmKernel.IsSupported;

    /// <summary>Whether the route is in place in this process.</summary>
    public static bool Installed { get; private set; }

    /// <summary>Why <see cref="Install"/> left libtorch's GEMM alone, when it did.</summary>
    public static string? Failure { get; private set; }

    /// <summary>How many of libtorch's GEMM calls the kernel has computed in this process.</summary>
    public static long Routed => Interlocked.Read(ref s_routed);

    /// <summary>What computes libtorch's float32 GEMM calls in this process, for <c>sdpipe doctor</c> and <c>sdpipe bench</c>.</summary>
    public static string Describe() =>
        Installed && InferenceKernels.Enabled && InferenceKernels.AmdRules ? "oneDNN's brgemm kernel, routed from libtorch's MKL calls (AMD's rules; runtime.kernels=off leaves them to MKL)"
        : Preferred && Failure is { } failure ? $"MKL (routing to oneDNN's brgemm kernel failed: {failure})"
        : "MKL";

    /// <summary>
    /// Puts the route in place once per process, where <see cref="Preferred"/>; true when it is in place. Nothing changes
    /// when the library's slot is not found or holds anything but MKL's <c>sgemm_</c> or its unresolved stub (another
    /// library interposing it).
    /// </summary>
    public static bool Install()
    {
        lock (Gate)
        {
            if (Installed) return true;
            if (!Preferred) return false;
            if (!LibTorchCpu.TryGetExport(Symbol, out var mkl) || !LibTorchCpu.TryGetExport("_ZN2at18in_parallel_regionEv", out var inParallelRegion))
            {
                Failure = $"{Library} does not export {Symbol} and at::in_parallel_region";
                return false;
            }
            if (PltSlot.Find(Library, Symbol, out string? failure) is not { } slot)
            {
                Failure = failure;
                return false;
            }
            long current = *(long*)slot.Address;
            if (current != mkl && (current < slot.LazyStubs.Start || current >= slot.LazyStubs.End))
            {
                Failure = $"{Library}'s {Symbol} slot points to 0x{current:x}, neither its own {Symbol} nor its PLT stub: another library interposes it";
                return false;
            }
            s_mkl = (delegate* unmanaged<byte*, byte*, int*, int*, int*, float*, float*, int*, float*, int*, float*, float*, int*, void>)mkl;
            s_inParallelRegion = (delegate* unmanaged<byte>)inParallelRegion;
            delegate* unmanaged<byte*, byte*, int*, int*, int*, float*, float*, int*, float*, int*, float*, float*, int*, void> hook = &Sgemm;
            if (!PltSlot.TryWrite(slot, (nint)hook))
            {
                Failure = $"{Library}'s {Symbol} slot could not be made writable";
                return false;
            }
            Installed = true;
            Failure = null;
            return true;
        }
    }

    /// <summary>
    /// Whether a product reaches the kernel: C = α·A·B + β·C (each operand as stored or transposed, 'N' or 'T') with a
    /// finite α and β = 0 or 1, every side at least 16 and m·n·k at least 2²⁰. MKL keeps the rest, which the step spends little on.
    /// </summary>
    internal static bool Routes(byte transa, byte transb, int m, int n, int k, float alpha, float beta) =>
        IsTranspose(transa) is not null && IsTranspose(transb) is not null && float.IsFinite(alpha) && (beta == 0f || beta == 1f)
        && m >= LeastSide && n >= LeastSide && k >= LeastSide && (long)m * n * k >= LeastProduct;

    private static bool? IsTranspose(byte code) => code switch
    {
        (byte)'N' or (byte)'n' => false,
        (byte)'T' or (byte)'t' => true,
        _ => null,
    };

    // Fortran sgemm_: column-major C (m × n) = α·op(A)·op(B) + β·C. Read row-major, the same memory is Cᵀ (n × m) =
    // op(B)ᵀ·op(A)ᵀ, whose left operand is B as stored unless B is transposed, and right operand A likewise.
    [UnmanagedCallersOnly]
    private static void Sgemm(byte* transa, byte* transb, int* m, int* n, int* k, float* alpha, float* a, int* lda, float* b, int* ldb,
        float* beta, float* c, int* ldc)
    {
        if (t_inside || KernelThreads.InsidePart || !InferenceKernels.Enabled || !InferenceKernels.AmdRules || !Routes(*transa, *transb, *m, *n, *k, *alpha, *beta)
            || !OneDnn.TryEnterEnabled())
        {
            s_mkl(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        // Inside one of libtorch's parallel loops (flash attention's blocks) each thread computes its own product.
        bool inParallelRegion = s_inParallelRegion() != 0;
        t_inside = true;
        bool done = false;
        try
        {
            Multiply(*transa, *transb, *m, *n, *k, *alpha, a, *lda, b, *ldb, *beta != 0f, c, *ldc, threads: inParallelRegion ? 1 : 0);
            done = true;
            Interlocked.Increment(ref s_routed);
        }
        catch (OutOfMemoryException)
        {
            // Thrown before C is written (GemmKernel and the scaled product's scratch allocate first): MKL computes it instead.
        }
        finally
        {
            t_inside = false;
            OneDnn.ExitEnabled();
        }
        if (!done) s_mkl(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    // The column-major product read row-major (see Sgemm): Cᵀ (n × m) (+)= α·op(B)ᵀ·op(A)ᵀ. With α ≠ 1 (flash attention folds
    // 1/√d into its products) the product is scaled as C is written: in place when C is overwritten, through a scratch
    // block added in one fused multiply-add when C accumulates.
    private static void Multiply(byte transa, byte transb, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb,
        bool accumulate, float* c, int ldc, int threads)
    {
        bool aTransposed = IsTranspose(transa) == true, bTransposed = IsTranspose(transb) == true;
        if (alpha == 1f || !accumulate)
        {
            GemmKernel.Multiply(n, m, k, b, ldb, bTransposed, a, lda, aTransposed, c, ldc, accumulate, threads);
            if (alpha != 1f)
                for (long row = 0; row < n; row++) Scale(new Span<float>(c + row * ldc, m), alpha);
            return;
        }
        float* product = KernelTensors.AllocateFloats((long)n * m, "GEMM scratch buffer");
        try
        {
            GemmKernel.Multiply(n, m, k, b, ldb, bTransposed, a, lda, aTransposed, product, m, false, threads);
            for (long row = 0; row < n; row++)
                AddScaled(new Span<float>(c + row * ldc, m), new ReadOnlySpan<float>(product + row * m, m), alpha);
        }
        finally
        {
            NativeMemory.AlignedFree(product);
        }
    }

    private static void Scale(Span<float> values, float alpha)
    {
        int i = 0;
        var factor = Vector512.Create(alpha);
        ref float start = ref MemoryMarshal.GetReference(values);
        for (; i <= values.Length - 16; i += 16)
            Vector512.Multiply(Vector512.LoadUnsafe(ref start, (nuint)i), factor).StoreUnsafe(ref start, (nuint)i);
        for (; i < values.Length; i++) values[i] *= alpha;
    }

    private static void AddScaled(Span<float> target, ReadOnlySpan<float> product, float alpha)
    {
        int i = 0;
        var factor = Vector512.Create(alpha);
        ref float start = ref MemoryMarshal.GetReference(target);
        ref float source = ref MemoryMarshal.GetReference(product);
        for (; i <= target.Length - 16; i += 16)
            Vector512.FusedMultiplyAdd(factor, Vector512.LoadUnsafe(ref source, (nuint)i), Vector512.LoadUnsafe(ref start, (nuint)i))
                .StoreUnsafe(ref start, (nuint)i);
        for (; i < target.Length; i++) target[i] = MathF.FusedMultiplyAdd(alpha, product[i], target[i]);
    }
}
