namespace SdPipeline.Benchmarks;

/// <summary>One measured case of a benchmark: a model, an operation and a size.</summary>
public sealed record BenchmarkRow
{
    /// <summary><c>unet</c>, <c>vae</c>, <c>train_step</c> or <c>latents</c>.</summary>
    public required string Model { get; init; }

    /// <summary>
    /// The operation: <c>forward</c>, <c>forward_backward</c>, <c>encode</c>, <c>decode</c>, <c>encode_decode</c>; for a training
    /// step also <c>backward</c>, <c>adamw</c> and <c>step</c>; for the latent cache <c>preprocess</c> and <c>preprocess_encode</c>.
    /// </summary>
    public required string Case { get; init; }

    /// <summary>Latent side length.</summary>
    public required int LatentSize { get; init; }

    /// <summary>Image side length in pixels that latent size stands for.</summary>
    public required int ImageSize { get; init; }

    /// <summary>Samples per run.</summary>
    public required int Batch { get; init; }

    /// <summary>Untimed runs before the timed ones.</summary>
    public required int Warmup { get; init; }

    /// <summary>Timed runs.</summary>
    public required int Repeats { get; init; }

    /// <summary>Seconds of each timed run.</summary>
    public required IReadOnlyList<double> Seconds { get; init; }

    /// <summary>Median seconds per run.</summary>
    public required double MedianSeconds { get; init; }

    /// <summary>Fastest run.</summary>
    public required double MinSeconds { get; init; }

    /// <summary>Model FLOPs of one run, in units of 10⁹ (from <see cref="FlopCounter"/>).</summary>
    public required double Gflop { get; init; }

    /// <summary><see cref="Gflop"/> by operation: convolution, linear, attention.</summary>
    public required IReadOnlyDictionary<string, double> GflopByOp { get; init; }

    /// <summary>Achieved rate at the median: <see cref="Gflop"/> / <see cref="MedianSeconds"/>.</summary>
    public required double Gflops { get; init; }

    /// <summary><see cref="Gflops"/> as a fraction of the fp32 matmul ceiling measured in the same run.</summary>
    public required double RatioToMatmul { get; init; }

    /// <summary>Peak resident memory of the case, in bytes.</summary>
    public required long PeakRssBytes { get; init; }

    /// <summary>Whether <see cref="PeakRssBytes"/> is the case's own peak (reset before it) or the process's so far.</summary>
    public required bool PeakRssIsPerCase { get; init; }

    /// <summary>
    /// Peak anonymous resident memory of the case in bytes (<see cref="Runtime.AnonymousMemoryPeak"/>: <see cref="PeakRssBytes"/>
    /// less the libraries' file pages, whose residency depends on the page cache); null where it cannot be sampled.
    /// </summary>
    public long? PeakAnonymousBytes { get; init; }

    /// <summary>Samples (images) per second at the median.</summary>
    public required double ItemsPerSecond { get; init; }

    /// <summary>True when the row is computed from other rows (encode_decode = encode + decode medians), not timed itself.</summary>
    public bool Derived { get; init; }

    /// <summary>A measured row.</summary>
    /// <param name="model">Model name.</param>
    /// <param name="case">Operation.</param>
    /// <param name="latentSize">Latent side.</param>
    /// <param name="imageSize">Pixel side.</param>
    /// <param name="batch">Samples per run.</param>
    /// <param name="harness">The harness that timed it (warm-up and repeats).</param>
    /// <param name="timing">The timing.</param>
    /// <param name="flops">FLOPs of one run.</param>
    /// <param name="matmulGflops">The ceiling.</param>
    /// <param name="backward">Count the backward FLOPs too (a forward+backward case).</param>
    public static BenchmarkRow Measured(string model, string @case, int latentSize, int imageSize, int batch, BenchmarkHarness harness,
        Timing timing, FlopCount flops, double matmulGflops, bool backward = false) =>
        Phase(model, @case, latentSize, imageSize, batch, harness.Warmup, timing, flops, backward ? FlopPart.ForwardBackward : FlopPart.Forward, matmulGflops);

    /// <summary>A measured row that counts the given <paramref name="part"/> of <paramref name="flops"/> (one phase of a training step).</summary>
    /// <param name="model">Model name.</param>
    /// <param name="case">Operation.</param>
    /// <param name="latentSize">Latent side.</param>
    /// <param name="imageSize">Pixel side.</param>
    /// <param name="batch">Samples per run.</param>
    /// <param name="warmup">Untimed runs before the timed ones.</param>
    /// <param name="timing">The timed runs.</param>
    /// <param name="flops">FLOPs of one forward (and the backward it implies).</param>
    /// <param name="part">Which of them this case does.</param>
    /// <param name="matmulGflops">The ceiling.</param>
    public static BenchmarkRow Phase(string model, string @case, int latentSize, int imageSize, int batch, int warmup,
        Timing timing, FlopCount flops, FlopPart part, double matmulGflops)
    {
        double Pick(double forward, double backward) => part switch
        {
            FlopPart.Forward => forward,
            FlopPart.Backward => backward,
            FlopPart.ForwardBackward => forward + backward,
            _ => 0,
        };
        double flop = Pick(flops.Forward, flops.Backward);
        double median = timing.Median;
        return new BenchmarkRow
        {
            Model = model,
            Case = @case,
            LatentSize = latentSize,
            ImageSize = imageSize,
            Batch = batch,
            Warmup = warmup,
            Repeats = timing.Seconds.Count,
            Seconds = timing.Seconds,
            MedianSeconds = median,
            MinSeconds = timing.Min,
            Gflop = flop / 1e9,
            GflopByOp = new Dictionary<string, double>
            {
                ["convolution"] = Pick(flops.ConvolutionForward, flops.ConvolutionBackward) / 1e9,
                ["linear"] = Pick(flops.LinearForward, flops.LinearBackward) / 1e9,
                ["attention"] = Pick(flops.AttentionForward, flops.AttentionBackward) / 1e9,
            },
            Gflops = flop / median / 1e9,
            RatioToMatmul = flop / median / 1e9 / matmulGflops,
            PeakRssBytes = timing.PeakResidentBytes,
            PeakRssIsPerCase = timing.PeakIsPerCase,
            PeakAnonymousBytes = timing.PeakAnonymousBytes,
            ItemsPerSecond = batch / median,
        };
    }

    /// <summary>A row for two measured rows run back to back (e.g. encode then decode): times and FLOPs add up.</summary>
    public static BenchmarkRow Sum(string @case, BenchmarkRow first, BenchmarkRow second, double matmulGflops)
    {
        double median = first.MedianSeconds + second.MedianSeconds;
        double gflop = first.Gflop + second.Gflop;
        return first with
        {
            Case = @case,
            Seconds = [median],
            MedianSeconds = median,
            MinSeconds = first.MinSeconds + second.MinSeconds,
            Gflop = gflop,
            GflopByOp = first.GflopByOp.Keys.ToDictionary(k => k, k => first.GflopByOp[k] + second.GflopByOp.GetValueOrDefault(k)),
            Gflops = gflop / median,
            RatioToMatmul = gflop / median / matmulGflops,
            PeakRssBytes = Math.Max(first.PeakRssBytes, second.PeakRssBytes),
            PeakRssIsPerCase = first.PeakRssIsPerCase && second.PeakRssIsPerCase,
            PeakAnonymousBytes = first.PeakAnonymousBytes is long a && second.PeakAnonymousBytes is long b ? Math.Max(a, b) : null,
            ItemsPerSecond = first.Batch / median,
            Derived = true,
        };
    }
}
