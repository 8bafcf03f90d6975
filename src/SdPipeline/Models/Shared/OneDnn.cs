using System.Runtime.InteropServices;

namespace SdPipeline.Models.Shared;

/// <summary>
/// libtorch's switch for oneDNN (MKL-DNN) on the CPU, as PyTorch's <c>torch.backends.mkldnn.enabled</c>: with it off,
/// convolutions take ATen's own path (im2col and a GEMM) instead of oneDNN's JIT kernels. TorchSharp has no binding,
/// so this calls the two members of <c>at::Context</c> that <c>libtorch_cpu.so</c> exports. The numerics self-check
/// (<c>Numerics.NumericsGuard</c>) turns it off when oneDNN computes a wrong result on this CPU; <see cref="Convolutions"/>
/// turns it off around the inference convolutions libtorch's own path computes faster.
/// </summary>
public static class OneDnn
{
    private const string LibTorchCpu = "libtorch_cpu";

    /// <summary>Whether the switch can be read and set here (the symbols exist in this libtorch build).</summary>
    public static bool Available => TryGet(out _);

    /// <summary>Whether libtorch will use oneDNN for the operations it supports; true where the switch is unavailable.</summary>
    public static bool Enabled => !TryGet(out bool enabled) || enabled;

    // Held while the switch is set, and for the whole of a Without call, so that a call's restoring the switch cannot
    // undo another thread's turning it off (the numerics self-check's, on a CPU where oneDNN is wrong).
    private static readonly Lock Gate = new();

    /// <summary>Turns oneDNN on or off for the whole process; false when this libtorch build has no such switch.</summary>
    public static bool TrySetEnabled(bool enabled)
    {
        lock (Gate) return TrySet(enabled);
    }

    /// <summary>
    /// <paramref name="operation"/> run with oneDNN off, and the switch as it was afterwards. The switch is
    /// process-wide: libtorch calls on other threads meanwhile also take its own path (the same results to float32
    /// rounding), and a thread setting the switch waits until this returns.
    /// </summary>
    public static T Without<T>(Func<T> operation)
    {
        lock (Gate)
        {
            s_withoutDepth++;
            try
            {
                if (!TryGet(out bool enabled) || !enabled || !TrySet(false)) return operation();
                try { return operation(); }
                finally { TrySet(true); }
            }
            finally { s_withoutDepth--; }
        }
    }

    // Without calls under way (changed only under Gate): while one is, the gate may be held for a whole operation.
    private static int s_withoutDepth;

    // Threads inside TryEnterEnabled/ExitEnabled (guarded by Gate), and whether the first of them turned the switch on,
    // so that the last one turns it off again.
    private static int s_enabledHolders;
    private static bool s_turnedOn;

    /// <summary>
    /// Holds the switch on until <see cref="ExitEnabled"/>, for <see cref="Brgemm"/>'s kernel, which libtorch runs only
    /// with the switch on (it hands the product to MKL otherwise). Several threads may hold it at once (the products that
    /// libtorch makes inside its parallel loops); the first turns it on, the last back off. False, and nothing held, when
    /// a <see cref="Without"/> call is under way on another thread or the switch cannot be set; never waits for a
    /// <see cref="Without"/> call, because its thread may be waiting for this one (a parallel loop inside it). Otherwise it
    /// waits its turn at the gate, which the others hold for microseconds: which products reach the kernel must not depend
    /// on two threads' timing, or the same step would round differently from run to run (a resumed training run would
    /// not reach the uninterrupted run's weights bit for bit). libtorch calls that other threads dispatch meanwhile see
    /// oneDNN on; the process's operations are dispatched from one thread at a time wherever <see cref="LibtorchGemm"/> runs.
    /// </summary>
    internal static bool TryEnterEnabled()
    {
        var spinner = new SpinWait();
        while (!Gate.TryEnter())
        {
            if (Volatile.Read(ref s_withoutDepth) > 0) return false;
            spinner.SpinOnce(sleep1Threshold: -1);
        }
        try
        {
            if (s_enabledHolders == 0)
            {
                if (!TryGet(out bool enabled) || (!enabled && !TrySet(true))) return false;
                s_turnedOn = !enabled;
            }
            s_enabledHolders++;
            return true;
        }
        finally
        {
            Gate.Exit();
        }
    }

    /// <summary>Ends <see cref="TryEnterEnabled"/>: the last holder sets the switch back as it was.</summary>
    internal static void ExitEnabled()
    {
        lock (Gate)
        {
            if (--s_enabledHolders == 0 && s_turnedOn)
            {
                TrySet(false);
                s_turnedOn = false;
            }
        }
    }

    private static bool TrySet(bool enabled)
    {
        torch_loaded();
        try
        {
            SetUserEnabledMkldnn(GlobalContext(), enabled);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    private static bool TryGet(out bool enabled)
    {
        torch_loaded();
        try
        {
            enabled = UserEnabledMkldnn(GlobalContext()) != 0;
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            enabled = true;
            return false;
        }
    }

    // TorchSharp loads libtorch from its package folder on first use; touch it first so the import below resolves
    // to the same, already loaded library.
    private static void torch_loaded() => _ = TorchSharp.torch.get_num_threads();

    // at::Context& at::globalContext()
    [DllImport(LibTorchCpu, EntryPoint = "_ZN2at13globalContextEv")]
    private static extern IntPtr GlobalContext();

    // void at::Context::setUserEnabledMkldnn(bool): a member function, so the context is the first argument.
    [DllImport(LibTorchCpu, EntryPoint = "_ZN2at7Context20setUserEnabledMkldnnEb")]
    private static extern void SetUserEnabledMkldnn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    // bool at::Context::userEnabledMkldnn() const
    [DllImport(LibTorchCpu, EntryPoint = "_ZNK2at7Context17userEnabledMkldnnEv")]
    private static extern byte UserEnabledMkldnn(IntPtr context);
}
