using SdPipeline.Config;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>One cell in the merged sweep: its measurement (or failure) and its change against the baseline cell.</summary>
public sealed record SweepRow
{
    /// <summary>Status of a cell without a result in the store.</summary>
    public const string NotRun = "not_run";

    /// <summary>The cell id.</summary>
    public required string Id { get; init; }

    /// <summary>The cell's compute precision.</summary>
    public required string MixedPrecision { get; init; }

    /// <summary>The cell's gradient checkpointing.</summary>
    public required bool GradientCheckpointing { get; init; }

    /// <summary><c>full</c> or <c>half</c>.</summary>
    public required string Resolution { get; init; }

    /// <summary>The training method: <c>full</c> or <c>lora</c>.</summary>
    public string Method { get; init; } = TrainingMethods.Full;

    /// <summary>The training resolution in pixels, when the cell ran.</summary>
    public int? ResolutionPixels { get; init; }

    /// <summary><c>ok</c>, <c>oom</c>, <c>failed</c>, <c>timeout</c> (see <see cref="CellResult"/>) or <see cref="NotRun"/>.</summary>
    public required string Status { get; init; }

    /// <summary>What went wrong, or null.</summary>
    public string? Error { get; init; }

    /// <summary>Median seconds per optimizer step over the timed steps.</summary>
    public double? MedianStepSeconds { get; init; }

    /// <summary>Images per second at the median step.</summary>
    public double? ImagesPerSecond { get; init; }

    /// <summary>Peak memory (RSS on the CPU, device memory on CUDA).</summary>
    public long? PeakMemoryBytes { get; init; }

    /// <summary>The pre-flight estimate of the memory the run needs.</summary>
    public long? EstimateBytes { get; init; }

    /// <summary>The loss of the last step.</summary>
    public double? FinalLoss { get; init; }

    /// <summary>Step time against the baseline's, as a fraction (−0.5 = half the time); null when either did not measure.</summary>
    public double? TimeChange { get; init; }

    /// <summary>Peak memory against the baseline's, as a fraction; null when either did not measure.</summary>
    public double? MemoryChange { get; init; }

    /// <summary>Images per micro-batch.</summary>
    public int? BatchSize { get; init; }

    /// <summary>The CPU and device the cell ran on, as <c>CPU (device)</c>, when it ran.</summary>
    public string? Machine { get; init; }

    /// <summary>The cell artifact's fingerprint (first 16 hex digits), when it exists.</summary>
    public string? Fingerprint { get; init; }
}
