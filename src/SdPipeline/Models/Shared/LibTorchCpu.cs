using System.Runtime.InteropServices;
using TorchSharp;

namespace SdPipeline.Models.Shared;

/// <summary>Functions that <c>libtorch_cpu</c> exports but TorchSharp does not bind, looked up by their (mangled) names.</summary>
internal static class LibTorchCpu
{
    /// <summary>The library's file name on Linux.</summary>
    public const string FileName = "libtorch_cpu.so";

    /// <summary>The address of <paramref name="symbol"/> in the libtorch TorchSharp loaded; false where this build lacks it.</summary>
    public static bool TryGetExport(string symbol, out nint address)
    {
        _ = torch.get_num_threads(); // loads libtorch from TorchSharp's package folder first
        address = 0;
        return (NativeLibrary.TryLoad(FileName, typeof(torch).Assembly, null, out var library)
                || NativeLibrary.TryLoad("torch_cpu", typeof(torch).Assembly, null, out library))
            && NativeLibrary.TryGetExport(library, symbol, out address);
    }
}
