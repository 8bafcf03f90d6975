using System.Runtime.InteropServices;
using TorchSharp;

namespace SdPipeline.Runtime;

/// <summary>
/// libtorch's own log (c10's <c>LOG(WARNING)</c>), which writes straight to standard error: on some CPUs it prints
/// "Could not initialize NNPACK! Reason: Unsupported hardware." once per convolution call site, 168 lines in one
/// training-step benchmark. The tool keeps those lines out of the user's log unless asked
/// (<c>SDPIPE_LIBTORCH_WARNINGS=1</c>); <c>sdpipe doctor</c> always shows them.
/// </summary>
/// <remarks>
/// libtorch built without glog reads its level from the exported flag <c>FLAGS_caffe2_log_level</c> (0 info,
/// 1 warning, 2 error) at every message; <c>TORCH_CPP_LOG_LEVEL</c> is read only by PyTorch's Python module, so
/// the flag is set directly once libtorch is loaded.
/// </remarks>
public static class LibTorchLog
{
    /// <summary>The variable that shows libtorch's warnings when set to 1.</summary>
    public const string ShowVariable = "SDPIPE_LIBTORCH_WARNINGS";

    /// <summary>c10's warning level.</summary>
    public const int Warning = 1;

    /// <summary>c10's error level.</summary>
    public const int Error = 2;

    /// <summary>Loads libtorch and sets its log level: warnings shown when <paramref name="showWarnings"/> or <see cref="ShowVariable"/> asks, else errors only.</summary>
    public static void Apply(bool showWarnings = false) =>
        TrySetLevel(showWarnings || Environment.GetEnvironmentVariable(ShowVariable) == "1" ? Warning : Error);

    /// <summary>The level in force, or null when this libtorch has no such flag.</summary>
    public static int? Level => Flag() is { } flag ? Marshal.ReadInt32(flag) : null;

    /// <summary>Sets the level; false when this libtorch has no such flag.</summary>
    public static bool TrySetLevel(int level)
    {
        if (Flag() is not { } flag) return false;
        Marshal.WriteInt32(flag, level);
        return true;
    }

    private static IntPtr? Flag()
    {
        _ = torch.get_num_threads(); // loads libtorch, and libc10 with it
        if (!NativeLibrary.TryLoad("libc10.so", typeof(torch).Assembly, null, out var library)
            && !NativeLibrary.TryLoad("c10", typeof(torch).Assembly, null, out library)) return null;
        return NativeLibrary.TryGetExport(library, "FLAGS_caffe2_log_level", out var flag) ? flag : null;
    }
}
