namespace SdPipeline.Benchmarks;

/// <summary>What a model benchmark runs.</summary>
public sealed record BenchmarkOptions
{
    /// <summary>Latent sizes (square; pixels are 8× for Stable Diffusion).</summary>
    public IReadOnlyList<int> Sizes { get; init; } = [32, 64];

    /// <summary>Samples per run.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>Untimed runs before the timed ones, per case (two, as PyTorch's figures were timed).</summary>
    public int Warmup { get; init; } = 2;

    /// <summary>Timed runs per case; the median is reported.</summary>
    public int Repeats { get; init; } = 3;

    /// <summary>Seed of the random weights and inputs.</summary>
    public int Seed { get; init; }

    /// <summary>n of the n³ fp32 matmul that measures the machine's ceiling.</summary>
    public int MatmulSize { get; init; } = 4096;

    /// <summary>A diffusers <c>config.json</c> to benchmark instead of the built-in SD 1.5 architecture; null for SD 1.5.</summary>
    public string? ConfigFile { get; init; }

    /// <summary>The UNet to benchmark: <see cref="ConfigFile"/>'s, or SD 1.5's.</summary>
    /// <exception cref="Models.Shared.DiffusersConfigException">The config file cannot be read or is not supported.</exception>
    public Models.Unet.UNet2DConditionConfig UnetConfig() =>
        ConfigFile is null ? Sd15Configs.Unet : Models.Unet.UNet2DConditionConfig.Load(ConfigFile);

    /// <summary>Training step only: <c>no</c>, <c>bf16</c> or <c>fp16</c> (as <c>train.mixed_precision</c>).</summary>
    public string MixedPrecision { get; init; } = "no";

    /// <summary>Training step only: recompute the UNet's blocks in backward (as <c>train.gradient_checkpointing</c>).</summary>
    public bool GradientCheckpointing { get; init; }

    /// <summary>Training step only: AdamW stepped per parameter inside backward (as <c>train.fused_backward_pass</c>).</summary>
    public bool FusedBackwardPass { get; init; }

    /// <summary>
    /// Training step only: the global gradient norm is clipped to this before AdamW (as <c>train.max_grad_norm</c>); 0 leaves
    /// the step unclipped, as PyTorch's figures were measured.
    /// </summary>
    public double MaxGradNorm { get; init; }

    /// <summary>Training step only: an exponential moving average of the weights updated after AdamW (as <c>train.use_ema</c>).</summary>
    public bool Ema { get; init; }

    /// <summary>Checks the values, naming the first bad one.</summary>
    /// <exception cref="ArgumentException">A value out of range.</exception>
    public void Validate()
    {
        if (Sizes.Count == 0) throw new ArgumentException("at least one size is needed (e.g. 32,64)");
        foreach (int size in Sizes)
            if (size < 1) throw new ArgumentException($"size {size} must be a positive number of latent pixels");
        if (Batch < 1) throw new ArgumentException($"batch {Batch} must be at least 1");
        if (Warmup < 0) throw new ArgumentException($"warm-up {Warmup} cannot be negative");
        if (Repeats < 1) throw new ArgumentException($"repeats {Repeats} must be at least 1");
        if (MatmulSize < 1) throw new ArgumentException($"matmul size {MatmulSize} must be positive");
        if (!(MaxGradNorm >= 0) || double.IsInfinity(MaxGradNorm)) throw new ArgumentException($"--max-grad-norm {MaxGradNorm} must be a finite number ≥ 0 (0: no clipping)");
        if (MaxGradNorm > 0 && FusedBackwardPass)
            throw new ArgumentException("--max-grad-norm needs every gradient before AdamW, which --fused-backward-pass never holds: leave one of them out (training refuses the pair too)");
        if (MixedPrecision is not ("no" or "bf16" or "fp16")) throw new ArgumentException($"mixed precision '{MixedPrecision}' must be no, bf16 or fp16");
    }
}
