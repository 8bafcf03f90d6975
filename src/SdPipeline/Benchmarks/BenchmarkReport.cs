using Newtonsoft.Json;
using Newtonsoft.Json.Serialization;
using SdPipeline.Files;
using SdPipeline.Pipeline;
using SdPipeline.Runtime;

namespace SdPipeline.Benchmarks;

/// <summary>The result of one benchmark run: where it ran, the matmul ceiling measured alongside, and one row per case.</summary>
public sealed record BenchmarkReport
{
    /// <summary>The JSON layout version this code writes; bumped when a field changes meaning or disappears.</summary>
    public const int CurrentSchemaVersion = 1;

    /// <summary>How the FLOPs were counted, written into every report so the numbers can be compared with PyTorch's.</summary>
    public const string FlopConvention =
        "PyTorch flop_counter conventions: 2 FLOPs per multiply-add in convolutions, linear layers and the two attention matmuls; " +
        "norms, activations, adds and softmax count 0. Backward: grad-weight plus grad-input where the layer's input needs a gradient " +
        "(so conv_in and the text-embedding to_k/to_v have no grad-input); attention backward is 2x forward (plain bmm path).";

    // Shared with KernelReport. A NaN (a kernel's output difference) is written as the string "NaN", which JSON readers accept.
    internal static readonly JsonSerializerSettings Settings = new()
    {
        ContractResolver = new DefaultContractResolver { NamingStrategy = new SnakeCaseNamingStrategy() },
        Formatting = Formatting.Indented,
        DateTimeZoneHandling = DateTimeZoneHandling.Utc,
        FloatFormatHandling = FloatFormatHandling.String,
    };

    /// <summary>The JSON layout version.</summary>
    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    /// <summary>Which benchmark: <c>unet</c>, <c>vae</c>, <c>train_step</c>, <c>latents</c>.</summary>
    public required string Benchmark { get; init; }

    /// <summary>When the run finished.</summary>
    public required DateTime CreatedUtc { get; init; }

    /// <summary>Machine, versions and threads.</summary>
    public required MachineInfo Machine { get; init; }

    /// <summary>The architecture benchmarked: <c>sd15</c> (built in) or the config file's path.</summary>
    public required string ModelConfig { get; init; }

    /// <summary>Parameters of the model.</summary>
    public required long Parameters { get; init; }

    /// <summary>Seed of the random weights and inputs.</summary>
    public required int Seed { get; init; }

    /// <summary>The fp32 matmul ceiling measured before the model cases.</summary>
    public required MatmulCeiling MatmulBefore { get; init; }

    /// <summary>
    /// The same measured after them (for <c>train-step</c>, also one probe after each timed step, listed first): a large
    /// difference from <see cref="MatmulBefore"/> means the machine's load changed during the run.
    /// </summary>
    public required MatmulCeiling MatmulAfter { get; init; }

    /// <summary>The ceiling the rows are compared with: GFLOP/s at the median of all matmul runs, before and after.</summary>
    public double MatmulGflops => PooledMatmulGflops(MatmulBefore, MatmulAfter);

    /// <summary>How FLOPs were counted.</summary>
    public string FlopCounting => FlopConvention;

    /// <summary>The measured cases.</summary>
    public required IReadOnlyList<BenchmarkRow> Rows { get; init; }

    /// <summary>
    /// PyTorch's figures for the rows it was measured on, on this CPU's class (<see cref="PyTorchFigures"/>): empty for
    /// another architecture, precision or checkpointing setting, or a CPU no figure was measured on.
    /// </summary>
    public IReadOnlyList<PyTorchComparison> PyTorch { get; init; } = [];

    /// <summary>Figures of the whole run beyond the rows (a training step's time over the matmul's, its peak memory), or null.</summary>
    public IReadOnlyDictionary<string, double>? Summary { get; init; }

    /// <summary>
    /// The report of one <c>sdpipe bench</c> run: the fields every benchmark fills the same way (name, time, machine,
    /// the model config it was built from, seed, the matmul ceiling around the model cases) and its rows.
    /// </summary>
    public static BenchmarkReport Of(string benchmark, BenchmarkOptions options, MachineInfo machine, long parameters,
        MatmulCeiling before, MatmulCeiling after, IReadOnlyList<BenchmarkRow> rows) => new()
    {
        Benchmark = benchmark,
        CreatedUtc = DateTime.UtcNow,
        Machine = machine,
        ModelConfig = options.ConfigFile ?? "sd15",
        Parameters = parameters,
        Seed = options.Seed,
        MatmulBefore = before,
        MatmulAfter = after,
        Rows = rows,
        PyTorch = options.ConfigFile is null && !options.GradientCheckpointing
            ? PyTorchComparison.Of(rows, CpuModel.Identity, variant: PyTorchFigures.VariantOf(options))
            : [],
    };

    /// <summary>The ceiling pooled from two measurements of the same size.</summary>
    public static double PooledMatmulGflops(MatmulCeiling before, MatmulCeiling after) =>
        before.Flop / Statistics.Median(before.Seconds.Concat(after.Seconds)) / 1e9;

    /// <summary>The report as indented snake_case JSON.</summary>
    public string ToJson() => JsonConvert.SerializeObject(this, Settings);

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/> atomically, creating its folder.</summary>
    public void Write(string path) => WriteJson(path, ToJson());

    /// <summary>Writes <paramref name="json"/> and a newline to <paramref name="path"/> atomically, creating its folder.</summary>
    internal static void WriteJson(string path, string json)
    {
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(path, json + "\n");
    }
}
