using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>How the project's CPU kernels (<see cref="AttentionKernel"/>, <see cref="GroupNormKernel"/>) reach a tensor's memory.</summary>
internal static unsafe class KernelTensors
{
    /// <summary>A CPU float32 tensor whose bytes TorchSharp can span (its span's length is an int).</summary>
    public static bool Addressable(Tensor tensor) =>
        tensor.device_type == DeviceType.CPU && tensor.dtype == ScalarType.Float32 && tensor.NumberOfElements <= int.MaxValue / sizeof(float);

    /// <summary>The first element of a contiguous addressable tensor (TorchSharp refuses any other).</summary>
    public static float* Address(Tensor tensor) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(tensor.bytes));
}
