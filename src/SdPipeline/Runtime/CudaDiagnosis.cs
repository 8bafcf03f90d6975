namespace SdPipeline.Runtime;

/// <summary>What the machine offers CUDA, as <c>--device cuda</c> found it when CUDA turned out to be unavailable.</summary>
/// <param name="CudaBuild">Whether libtorch_cuda.so ships beside the tool (a <c>-p:TorchBackend=cuda</c> build).</param>
/// <param name="NativeDirectory">Where it was looked for.</param>
/// <param name="DriverVersion">The NVIDIA kernel module's version from /proc/driver/nvidia/version; null when absent.</param>
/// <param name="DriverLibraryLoads">Whether the driver's user-space library libcuda.so.1 loads.</param>
/// <param name="DeviceNodes">The /dev/nvidiaN device nodes.</param>
/// <param name="CudaVisibleDevices">CUDA_VISIBLE_DEVICES; null when unset.</param>
/// <param name="NvidiaVisibleDevices">NVIDIA_VISIBLE_DEVICES (the container toolkit's); null when unset.</param>
internal sealed record CudaDiagnosis(
    bool CudaBuild,
    string NativeDirectory,
    string? DriverVersion,
    bool DriverLibraryLoads,
    IReadOnlyList<string> DeviceNodes,
    string? CudaVisibleDevices,
    string? NvidiaVisibleDevices);
