using System.Runtime.InteropServices;
using SdPipeline.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>Where a benchmark ran: enough to tell two results apart, not to identify anyone.</summary>
/// <param name="Host">Machine name.</param>
/// <param name="Os">Operating system description.</param>
/// <param name="CpuModel">CPU model with family and model numbers (<see cref="Runtime.CpuModel.Name"/>).</param>
/// <param name="LogicalCores">Logical cores visible to the process.</param>
/// <param name="MemoryBytes">Physical memory available to the process.</param>
/// <param name="DotNet">.NET runtime.</param>
/// <param name="TorchSharp">TorchSharp assembly version.</param>
/// <param name="LibTorch">libtorch version.</param>
/// <param name="Device">Device the work ran on.</param>
/// <param name="Threads">libtorch intra-op threads.</param>
/// <param name="InteropThreads">libtorch inter-op threads.</param>
public sealed record MachineInfo(
    string Host,
    string Os,
    string CpuModel,
    int LogicalCores,
    long MemoryBytes,
    string DotNet,
    string TorchSharp,
    string LibTorch,
    string Device,
    int Threads,
    int InteropThreads)
{
    /// <summary>Describes this process on <paramref name="device"/> (after the thread count has been set).</summary>
    public static MachineInfo Capture(Device device)
    {
        var facts = TorchRuntime.Probe(device);
        return new MachineInfo(
            Environment.MachineName,
            RuntimeInformation.OSDescription,
            Runtime.CpuModel.Name,
            Environment.ProcessorCount,
            GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
            RuntimeInformation.FrameworkDescription,
            facts.TorchSharpVersion,
            facts.LibTorchVersion,
            facts.Device,
            facts.Threads,
            torch.get_num_interop_threads());
    }
}
