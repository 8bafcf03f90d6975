namespace SdPipeline.Models.Shared;

/// <summary>
/// oneDNN's batch-reduce GEMM micro-kernel as libtorch 2.10 exports it (<c>at::native::cpublas::brgemm</c>, float32):
/// one thread's C (+)= A·B for row-major blocks, compiled by oneDNN for the instruction set it finds. On an AMD EPYC
/// Zen 4 it runs the UNet's linear layers' shapes at 155–215 GFLOP/s on two threads (a C program) where libtorch's
/// MKL, which takes its AMD code path there, reaches 110–198 (docs/performance.md, fourteenth session). TorchSharp has
/// no binding, so the symbol is looked up by its C++ name; a libtorch without it leaves <see cref="IsAvailable"/> false.
/// </summary>
/// <remarks>
/// libtorch runs the product through its own GEMM (MKL) instead when oneDNN is switched off (<see cref="OneDnn"/>) or
/// the CPU lacks AVX2: the same result to float32 rounding, at MKL's speed. The compiled kernels are cached per thread
/// and per shape, so callers keep to a few block shapes.
/// </remarks>
internal static unsafe class Brgemm
{
    // void at::native::cpublas::brgemm(int64_t M, int64_t N, int64_t K, int64_t ld_a, int64_t ld_b, int64_t ld_c,
    //     bool add_C, const float* A, const float* B, float* C, bool is_vnni)
    private const string Symbol = "_ZN2at6native7cpublas6brgemmEllllllbPKfS3_Pfb";

    private static readonly delegate* unmanaged<long, long, long, long, long, long, byte, float*, float*, float*, byte, void> Function = Find();

    /// <summary>Whether this libtorch exports the kernel.</summary>
    public static bool IsAvailable => Function != null;

    /// <summary>
    /// C (+)= A·B: A is <paramref name="m"/> × <paramref name="k"/> with rows <paramref name="lda"/> apart, B is
    /// <paramref name="k"/> × <paramref name="n"/> with rows <paramref name="ldb"/> apart, C is <paramref name="m"/> ×
    /// <paramref name="n"/> with rows <paramref name="ldc"/> apart; C is overwritten unless <paramref name="accumulate"/>.
    /// </summary>
    public static void Multiply(long m, long n, long k, long lda, long ldb, long ldc, bool accumulate, float* a, float* b, float* c) =>
        Function(m, n, k, lda, ldb, ldc, accumulate ? (byte)1 : (byte)0, a, b, c, 0);

    private static delegate* unmanaged<long, long, long, long, long, long, byte, float*, float*, float*, byte, void> Find() =>
        LibTorchCpu.TryGetExport(Symbol, out var address)
            ? (delegate* unmanaged<long, long, long, long, long, long, byte, float*, float*, float*, byte, void>)address
            : null;
}
