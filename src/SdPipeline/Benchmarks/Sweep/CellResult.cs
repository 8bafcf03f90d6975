using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using Newtonsoft.Json.Serialization;
using SdPipeline.Config;
using SdPipeline.Files;
using SdPipeline.Pipeline;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>
/// <c>cell.json</c>: what one benchmark cell measured — or why it has no measurement (out of memory, a failure, a
/// timeout). Step figures are over the timed steps only (the warm-up steps are excluded).
/// </summary>
public sealed record CellResult
{
    /// <summary>The file inside a cell's artifact.</summary>
    public const string FileName = "cell.json";

    /// <summary>Status of a cell that measured its steps.</summary>
    public const string Ok = "ok";

    /// <summary>Status of a cell that ran out of memory (or that the pre-flight check refused for lack of it).</summary>
    public const string OutOfMemory = "oom";

    /// <summary>Status of a cell that failed otherwise.</summary>
    public const string Failed = "failed";

    /// <summary>Status of a cell stopped at <c>benchmark.cell_timeout_seconds</c>.</summary>
    public const string Timeout = "timeout";

    /// <summary>The JSON settings of cell and sweep results: snake_case, indented.</summary>
    public static JsonSerializerSettings JsonSettings { get; } = new()
    {
        ContractResolver = new DefaultContractResolver { NamingStrategy = new SnakeCaseNamingStrategy() },
        Formatting = Formatting.Indented,
        DateTimeZoneHandling = DateTimeZoneHandling.Utc,
    };

    /// <summary>The cell id.</summary>
    public required string Id { get; init; }

    /// <summary>The cell's compute precision.</summary>
    public required string MixedPrecision { get; init; }

    /// <summary>The cell's gradient checkpointing.</summary>
    public required bool GradientCheckpointing { get; init; }

    /// <summary><c>full</c> or <c>half</c>.</summary>
    public required string Resolution { get; init; }

    /// <summary>The training method: <c>full</c> or <c>lora</c> (results written before the method axis are full).</summary>
    public string Method { get; init; } = TrainingMethods.Full;

    /// <summary>The training resolution in pixels.</summary>
    public required int ResolutionPixels { get; init; }

    /// <summary><see cref="Ok"/>, <see cref="OutOfMemory"/>, <see cref="Failed"/> or <see cref="Timeout"/>.</summary>
    public required string Status { get; init; }

    /// <summary>What went wrong (the last lines of the error), or null.</summary>
    public string? Error { get; init; }

    /// <summary>Images per micro-batch.</summary>
    public required int BatchSize { get; init; }

    /// <summary>Micro-batches per optimizer step.</summary>
    public required int GradientAccumulationSteps { get; init; }

    /// <summary>Steps run before the timed ones.</summary>
    public required int WarmupSteps { get; init; }

    /// <summary>Timed steps.</summary>
    public required int TimedSteps { get; init; }

    /// <summary>Seconds of each timed optimizer step.</summary>
    public IReadOnlyList<double> StepSeconds { get; init; } = [];

    /// <summary>Median of <see cref="StepSeconds"/>; null without a measurement.</summary>
    public double? MedianStepSeconds { get; init; }

    /// <summary>Images per second at the median step.</summary>
    public double? ImagesPerSecond { get; init; }

    /// <summary>Peak memory of the run: the process's resident set on the CPU, device memory on CUDA.</summary>
    public long? PeakMemoryBytes { get; init; }

    /// <summary>The loss of the last step.</summary>
    public double? FinalLoss { get; init; }

    /// <summary>The pre-flight estimate of the memory the run needs (train's <c>preflight.json</c>), in bytes.</summary>
    public long? EstimateBytes { get; init; }

    /// <summary>The pre-flight estimate by part (GiB), as <c>preflight.json</c> has it.</summary>
    public JObject? Estimate { get; init; }

    /// <summary>The device trained on.</summary>
    public string? Device { get; init; }

    /// <summary>The CPU the cell ran on (whatever the device: it names the machine).</summary>
    public string? CpuModel { get; init; }

    /// <summary>The timeout a <see cref="Timeout"/> cell hit, in seconds (a larger one retries it).</summary>
    public int? TimeoutSeconds { get; init; }

    /// <summary>When the cell finished.</summary>
    public DateTime FinishedUtc { get; init; }

    /// <summary>The result as indented snake_case JSON.</summary>
    public string ToJson() => JsonConvert.SerializeObject(this, JsonSettings);

    /// <summary>Writes <c>cell.json</c> into <paramref name="folder"/>.</summary>
    public void Write(string folder) => AtomicFile.WriteAllText(Path.Combine(folder, FileName), ToJson() + "\n");

    /// <summary>Reads <c>cell.json</c> from a cell's artifact folder.</summary>
    /// <exception cref="InvalidDataException">The file is missing or unreadable.</exception>
    public static CellResult Read(string folder)
    {
        string path = Path.Combine(folder, FileName);
        try
        {
            return JsonConvert.DeserializeObject<CellResult>(File.ReadAllText(path), JsonSettings)
                ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            throw new InvalidDataException($"{path} cannot be read: {e.Message}", e);
        }
    }
}
