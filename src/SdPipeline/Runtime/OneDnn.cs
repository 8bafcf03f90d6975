using System.Runtime.InteropServices;

namespace SdPipeline.Runtime;

/// <summary>
/// libtorch's switch for oneDNN (MKL-DNN) on the CPU, as PyTorch's <c>torch.backends.mkldnn.enabled</c>: with it off,
/// convolutions take ATen's own path (im2col and a GEMM) instead of oneDNN's JIT kernels. TorchSharp has no binding,
/// so this calls the two members of <c>at::Context</c> that <c>libtorch_cpu.so</c> exports. The numerics self-check
/// (<see cref="Numerics.NumericsGuard"/>) turns it off when oneDNN computes a wrong result on this CPU.
/// </summary>
public static class OneDnn
{
    private const string LibTorchCpu = "libtorch_cpu";

    /// <summary>Whether the switch can be read and set here (the symbols exist in this libtorch build).</summary>
    public static bool Available => TryGet(out _);

    /// <summary>Whether libtorch will use oneDNN for the operations it supports; true where the switch is unavailable.</summary>
    public static bool Enabled => !TryGet(out bool enabled) || enabled;

    /// <summary>Turns oneDNN on or off for the whole process; false when this libtorch build has no such switch.</summary>
    public static bool TrySetEnabled(bool enabled)
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
