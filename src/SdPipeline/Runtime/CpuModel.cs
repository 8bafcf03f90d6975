namespace SdPipeline.Runtime;

/// <summary>
/// The CPU's model name and family from <c>/proc/cpuinfo</c>. Kernels inside libtorch differ by CPU (oneDNN's JIT,
/// MKL's code paths), so a figure or a verdict is only meaningful with the CPU it was measured on.
/// </summary>
public static class CpuModel
{
    /// <summary>For example <c>AMD EPYC (family 25, model 17)</c>; <c>unknown CPU</c> where /proc/cpuinfo is absent.</summary>
    public static string Name { get; } = Read();

    private static string Read()
    {
        const string cpuinfo = "/proc/cpuinfo";
        if (!File.Exists(cpuinfo)) return "unknown CPU";
        string? name = null, family = null, model = null;
        foreach (string line in File.ReadLines(cpuinfo))
        {
            int colon = line.IndexOf(':');
            if (colon < 0) { if (name is not null) break; continue; }
            string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            if (key == "model name") name ??= value;
            else if (key == "cpu family") family ??= value;
            else if (key == "model") model ??= value;
        }
        return name is null ? "unknown CPU" : family is null ? name : $"{name} (family {family}, model {model})";
    }
}
