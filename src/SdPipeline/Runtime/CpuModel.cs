namespace SdPipeline.Runtime;

/// <summary>
/// The CPU's model name and family from <c>/proc/cpuinfo</c>. Kernels inside libtorch differ by CPU (oneDNN's JIT,
/// MKL's code paths), so a figure or a verdict is only meaningful with the CPU it was measured on.
/// </summary>
public static class CpuModel
{
    /// <summary>This machine's CPU as <c>/proc/cpuinfo</c> gives its first processor.</summary>
    public static CpuIdentity Identity { get; } = Read();

    /// <summary>For example <c>AMD EPYC (family 25, model 17)</c>; <c>unknown CPU</c> where /proc/cpuinfo is absent.</summary>
    public static string Name => Identity.ToString();

    private static CpuIdentity Read()
    {
        const string cpuinfo = "/proc/cpuinfo";
        return File.Exists(cpuinfo) ? CpuIdentity.Parse(File.ReadLines(cpuinfo)) : new CpuIdentity("unknown CPU", null, null);
    }
}

/// <summary>A CPU's model name with its family and model numbers (which tell AMD's Zen generations apart: the model name does not).</summary>
/// <param name="ModelName">The <c>model name</c> line, e.g. <c>AMD EPYC</c>.</param>
/// <param name="Family">The <c>cpu family</c> number (AMD Zen 4: 25, Zen 5: 26), or null when not given.</param>
/// <param name="Model">The <c>model</c> number, or null when not given.</param>
public sealed record CpuIdentity(string ModelName, int? Family, int? Model)
{
    /// <summary>Reads the first processor's entry of a <c>/proc/cpuinfo</c> listing.</summary>
    public static CpuIdentity Parse(IEnumerable<string> cpuinfoLines)
    {
        string? name = null, family = null, model = null;
        foreach (string line in cpuinfoLines)
        {
            int colon = line.IndexOf(':');
            if (colon < 0) { if (name is not null) break; continue; }
            string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            if (key == "model name") name ??= value;
            else if (key == "cpu family") family ??= value;
            else if (key == "model") model ??= value;
        }
        return new CpuIdentity(name ?? "unknown CPU", ParseNumber(family), ParseNumber(model));
    }

    /// <summary>
    /// Whether this CPU belongs to <paramref name="cpuClass"/>, written as <see cref="ToString"/> writes a CPU, with the
    /// model (or family and model) left out to mean any: <c>AMD EPYC (family 26)</c> is every EPYC of family 26;
    /// <c>Intel Xeon</c> every CPU whose model name starts with those words, trademark signs aside (Intel's cpuinfo says
    /// <c>Intel(R) Xeon(R) Processor</c>).
    /// </summary>
    public bool BelongsTo(string cpuClass)
    {
        ArgumentNullException.ThrowIfNull(cpuClass);
        var wanted = ParseClass(cpuClass);
        if (!Plain(ModelName).StartsWith(Plain(wanted.ModelName), StringComparison.OrdinalIgnoreCase)) return false;
        return (wanted.Family is null || wanted.Family == Family) && (wanted.Model is null || wanted.Model == Model);
    }

    /// <summary>For example <c>AMD EPYC (family 25, model 17)</c>; the model name alone when the numbers are unknown.</summary>
    public override string ToString() => Family is null ? ModelName : $"{ModelName} (family {Family}, model {Model?.ToString() ?? "?"})";

    private static string Plain(string modelName) =>
        string.Join(' ', modelName.Replace("(R)", " ", StringComparison.OrdinalIgnoreCase).Replace("(TM)", " ", StringComparison.OrdinalIgnoreCase)
            .Split(' ', StringSplitOptions.RemoveEmptyEntries));

    private static CpuIdentity ParseClass(string cpuClass)
    {
        var match = System.Text.RegularExpressions.Regex.Match(cpuClass.Trim(),
            @"^(?<name>.+?)(?:\s*\(family (?<family>\d+)(?:, model (?<model>\d+))?\))?$");
        return new CpuIdentity(match.Groups["name"].Value, ParseNumber(match.Groups["family"].Value), ParseNumber(match.Groups["model"].Value));
    }

    private static int? ParseNumber(string? text) =>
        int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int n) ? n : null;
}
