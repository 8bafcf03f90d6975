using System.Diagnostics;
using SdPipeline.Models.Unet;
using SdPipeline.Runtime;
using SdPipeline.Training;
using SdPipeline.Training.Checkpointing;
using SdPipeline.Training.Optimization;
using SdPipeline.Training.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>
/// <c>sdpipe bench train-step</c>: one training step of a UNet with random weights — forward, MSE against a fixed
/// target, backward, optionally the trainer's gradient clipping, <see cref="AdamW"/> over every parameter, optionally the
/// EMA — with each phase timed on its own and the whole step
/// timed together, against the fp32 matmul ceiling measured in the same run. The comparison PyTorch was measured on
/// (docs/performance.md): SD 1.5, batch 1, 32×32 latents, fp32, 2 threads.
/// </summary>
public static class TrainStepBenchmark
{
    /// <summary>The constant learning rate of the timed AdamW steps (its value does not change the cost).</summary>
    public const double LearningRate = 1e-4;

    /// <summary>Summary key: median step seconds over median matmul seconds (PyTorch: 30.2; the target is at most 27).</summary>
    public const string StepOverMatmul = "step_over_matmul_seconds";

    /// <summary>Summary key: forward+backward GFLOP/s as a fraction of the matmul's (PyTorch: 0.19; the target is at least 0.25).</summary>
    public const string ForwardBackwardOfMatmul = "forward_backward_of_matmul_flops";

    /// <summary>Summary key: the process's peak resident memory in GiB (PyTorch: 14.0).</summary>
    public const string PeakRssGib = "peak_rss_gib";

    /// <summary>Summary key: the process's peak anonymous resident memory in GiB (<see cref="AnonymousMemoryPeak"/>), where it can be sampled.</summary>
    public const string PeakAnonymousGib = "peak_anonymous_gib";

    /// <summary>
    /// Summary key: the train stage's pre-flight memory estimate (<see cref="MemoryEstimate"/>) for this step at the first
    /// size, in GiB, to set beside <see cref="PeakRssGib"/>.
    /// </summary>
    public const string PreflightEstimateGib = "preflight_estimate_gib";

    /// <summary>
    /// Summary key: the first warm-up step's seconds at the first size, where there is a warm-up. It allocates the
    /// gradients and AdamW's moments (twice the weights), so on a machine that backs memory lazily it is mostly first
    /// touches of memory (docs/performance.md).
    /// </summary>
    public const string WarmupStepSeconds = "warmup_step_seconds";

    /// <summary>Summary key: <see cref="WarmupStepSeconds"/> over the median timed step (the performance goal in docs/performance.md: at most 2).</summary>
    public const string WarmupOverStep = "warmup_over_step";

    /// <summary>Runs the benchmark; one set of rows per latent size in <paramref name="options"/>.</summary>
    /// <param name="options">Sizes, batch, repeats, seed, config, precision, checkpointing.</param>
    /// <param name="device">Where to run (after the threads have been set).</param>
    /// <param name="log">Progress lines; null for silence.</param>
    /// <param name="cancellation">Stops the benchmark between runs (Ctrl+C, SIGTERM); no report is made then.</param>
    /// <exception cref="Models.Shared.DiffusersConfigException">The config file cannot be read or is not supported.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was requested.</exception>
    public static BenchmarkReport Run(BenchmarkOptions options, Device device, Action<string>? log = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var config = options.UnetConfig();
        var precision = MixedPrecision.Parse(options.MixedPrecision);
        var machine = MachineInfo.Capture(device);
        // Over the whole run, as the peak RSS beside it is the process's.
        using var anonymous = AnonymousMemoryPeak.Start();

        var before = MatmulCeiling.MeasureLogged(device, options.MatmulSize, log);

        log?.Invoke("building the UNet with random weights ...");
        torch.manual_seed(options.Seed);
        using var unet = new UNet2DConditionModel(config, device);
        AutocastLayers.Apply(unet);
        unet.train();
        var parameters = unet.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        long parameterCount = parameters.Sum(p => p.parameter.numel());
        if (options.GradientCheckpointing) GradientCheckpointing.Apply(unet);
        using var optimizer = new AdamW(parameters);
        using var fused = options.FusedBackwardPass ? FusedBackwardPass.Attach(optimizer, unet) : null;
        using var ema = options.Ema ? new EmaModel(parameters, new EmaSettings(), device) : null;

        var measured = new List<(int Size, FlopCount Flops, Phases Phases, double? Warmup)>();
        var probes = new List<double>();
        foreach (int size in options.Sizes)
        {
            using var scope = torch.NewDisposeScope();
            using var generator = new Generator((ulong)options.Seed, device);
            var (sample, timestep, text) = UnetBenchmark.Inputs(config, options.Batch, size, generator, device);
            var target = torch.randn([options.Batch, config.OutChannels, size, size], generator: generator, device: device);

            FlopCount flops;
            GradientCheckpointing.Remove(unet); // the counter must see each block once
            using (torch.NewDisposeScope())
                flops = FlopCounter.Count(unet, () => unet.call(sample, timestep, text), shapesOnly: true);
            if (options.GradientCheckpointing) GradientCheckpointing.Apply(unet);
            log?.Invoke($"train step {size}x{size}: {flops.ForwardBackward / 1e9:0.0} GFLOP forward+backward");

            var phases = new Phases();
            double? warmup = null;
            for (int i = 0; i < options.Warmup + options.Repeats; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                optimizer.ZeroGrad();
                var kernelBefore = KernelProcessorTime();
                long? faultsBefore = ProcessMemory.PageFaults();
                var (forward, backward, clip, adamw, averaging, step) = Step(unet, optimizer, fused, options.MaxGradNorm, ema, precision, sample, timestep, text, target, device);
                // Where a slow step's time went when it is not arithmetic: first touches of memory (the warm-up's gradients and
                // AdamW's state), each a page fault and, on a VM backing memory lazily, seconds in the kernel (docs/performance.md).
                string faults = ProcessMemory.PageFaults() - faultsBefore is long count
                    ? $"; {Thousands(count)} page faults, {(KernelProcessorTime() - kernelBefore).TotalSeconds:0.0} s CPU in the kernel" : "";
                bool timed = i >= options.Warmup;
                // The step's peak is reached with every gradient alive; the probe's operands on top of them would be
                // counted as the step's (0.2 GiB at 4096², measured: 13.65 GiB after the warm-up, 14.01 after a probed step).
                optimizer.ZeroGrad();
                // A matmul after each timed step: on a shared machine the load drifts within a run, and the ceiling
                // pooled from these probes is the one the steps actually ran under.
                double matmul = timed ? ProbeMatmul(options.MatmulSize, device) : double.NaN;
                if (i == 0 && !timed) warmup = step;
                if (timed)
                {
                    phases.Add(forward, backward, clip, adamw, averaging, step);
                    probes.Add(matmul);
                }
                log?.Invoke($"train step {size}x{size} {(timed ? $"run {i - options.Warmup + 1}/{options.Repeats}" : $"warm-up {i + 1}/{options.Warmup}")}: " +
                    $"{step:0.000} s (forward {forward:0.000}, backward {backward:0.000}{(options.MaxGradNorm > 0 ? $", clipping {clip:0.000}" : "")}, AdamW {adamw:0.000}{(ema is null ? "" : $", EMA {averaging:0.000}")}); peak RSS {ProcessMemory.PeakResidentBytes() / (double)(1L << 30):0.00} GiB{faults}" +
                    (timed ? $"; matmul after it {matmul:0.000} s, step/matmul {step / matmul:0.0}" : ""));
            }
            optimizer.ZeroGrad();
            measured.Add((size, flops, phases, warmup));
        }

        var after = MatmulCeiling.Measure(device, options.MatmulSize);
        after = after with { Seconds = [.. probes, .. after.Seconds] };
        log?.Invoke($"fp32 matmul {options.MatmulSize}³ after: {after.Gflops:0.0} GFLOP/s");
        double ceiling = BenchmarkReport.PooledMatmulGflops(before, after);
        double matmulSeconds = before.Flop / ceiling / 1e9;
        long peak = ProcessMemory.PeakResidentBytes();
        anonymous?.Dispose();
        long? peakAnonymous = anonymous?.PeakBytes;

        var rows = new List<BenchmarkRow>();
        foreach (var (size, flops, phases, _) in measured)
        {
            BenchmarkRow Row(string @case, IReadOnlyList<double> seconds, FlopPart part) =>
                BenchmarkRow.Phase("train_step", @case, size, size * 8, options.Batch, options.Warmup, new Timing(seconds, peak, false, peakAnonymous), flops, part, ceiling);
            rows.Add(Row("forward", phases.Forward, FlopPart.Forward));
            rows.Add(Row("backward", phases.Backward, FlopPart.Backward));
            rows.Add(Row("forward_backward", phases.Forward.Zip(phases.Backward, (f, b) => f + b).ToList(), FlopPart.ForwardBackward));
            if (options.MaxGradNorm > 0) rows.Add(Row("clip_grad_norm", phases.Clip, FlopPart.None));
            rows.Add(Row("adamw", phases.AdamW, FlopPart.None));
            if (options.Ema) rows.Add(Row("ema", phases.Ema, FlopPart.None));
            rows.Add(Row("step", phases.Step, FlopPart.ForwardBackward));
        }
        // The headline figures are those of the first size (32×32 by default: the PyTorch comparison).
        var first = rows.Take(rows.Count / measured.Count).ToList();
        var report = BenchmarkReport.Of("train_step", options, machine, parameterCount, before, after, rows);
        var summary = new Dictionary<string, double>
        {
            [StepOverMatmul] = Math.Round(first.Single(r => r.Case == "step").MedianSeconds / matmulSeconds, 2),
            [ForwardBackwardOfMatmul] = Math.Round(first.Single(r => r.Case == "forward_backward").RatioToMatmul, 3),
            [PeakRssGib] = Math.Round(peak / (double)(1L << 30), 2),
            [PreflightEstimateGib] = MemoryEstimate.Gib(MemoryEstimate.For(config, parameterCount, textEncoderParameters: 0, trainTextEncoder: false,
                options.Batch, options.Sizes[0], options.Sizes[0], precision.Name, options.GradientCheckpointing, ema: options.Ema, emaOnCpu: false,
                onGpu: device.type == DeviceType.CUDA, fusedBackwardPass: options.FusedBackwardPass).Total),
        };
        if (peakAnonymous is long bytes) summary[PeakAnonymousGib] = Math.Round(bytes / (double)(1L << 30), 2);
        if (measured[0].Warmup is double warmupSeconds)
        {
            summary[WarmupStepSeconds] = warmupSeconds;
            summary[WarmupOverStep] = Math.Round(warmupSeconds / first.Single(r => r.Case == "step").MedianSeconds, 2);
        }
        return report with
        {
            ModelConfig = report.ModelConfig + (precision.AutocastDtype is null ? "" : $", {precision.Name}") + (options.GradientCheckpointing ? ", gradient checkpointing" : "") + (options.FusedBackwardPass ? ", fused backward pass" : "")
                + (options.MaxGradNorm > 0 ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $", gradients clipped to norm {options.MaxGradNorm}") : "")
                + (options.Ema ? ", EMA" : ""),
            Summary = summary,
        };
    }

    // One step, each phase timed: the tensors it makes are disposed when it returns, the gradients stay for AdamW.
    private static (double Forward, double Backward, double Clip, double AdamW, double Ema, double Step) Step(UNet2DConditionModel unet, AdamW optimizer, FusedBackwardPass? fused,
        double maxGradNorm, EmaModel? ema, MixedPrecision precision, Tensor sample, Tensor timestep, Tensor text, Tensor target, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var clock = Stopwatch.StartNew();
        fused?.Begin(LearningRate);
        Tensor loss;
        using (precision.EnterAutocast())
        {
            var output = unet.call(sample, timestep, text);
            loss = AutocastOps.MseLoss(output, target);
        }
        Synchronize(device);
        double forward = clock.Elapsed.TotalSeconds;
        loss.backward();
        Synchronize(device);
        double backward = clock.Elapsed.TotalSeconds - forward;
        // As the trainer clips: the norm over every gradient, its factor applied by AdamW.
        var clip = maxGradNorm > 0 ? GradientNorm.Measure(optimizer.Parameters.Select(p => p.Parameter), maxGradNorm) : GradientClip.None;
        Synchronize(device);
        double clipped = clock.Elapsed.TotalSeconds;
        // Fused: the parameters were updated inside backward; what is left is the parameters outside the training layers.
        if (fused is not null) fused.Finish();
        else optimizer.Step(LearningRate, clip.Coefficient);
        Synchronize(device);
        double stepped = clock.Elapsed.TotalSeconds;
        ema?.Step(optimizer.Parameters);
        Synchronize(device);
        double total = clock.Elapsed.TotalSeconds;
        return (forward, backward, clipped - forward - backward, stepped - clipped, total - stepped, total);
    }

    private static TimeSpan KernelProcessorTime()
    {
        using var self = Process.GetCurrentProcess();
        return self.PrivilegedProcessorTime;
    }

    private static string Thousands(long count) =>
        count >= 1_000_000 ? $"{count / 1e6:0.00} M" : count >= 1_000 ? $"{count / 1e3:0.0} k" : count.ToString(System.Globalization.CultureInfo.InvariantCulture);

    // Fresh operands, freed at once: the probe must not raise the peak memory the benchmark reports.
    private static double ProbeMatmul(int size, Device device)
    {
        using var scope = torch.NewDisposeScope();
        using var generator = new Generator(0, device);
        var a = torch.randn(size, size, generator: generator, device: device);
        var b = torch.randn(size, size, generator: generator, device: device);
        return MatmulCeiling.TimeOne(a, b, device);
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }

    private sealed class Phases
    {
        public List<double> Forward { get; } = [];
        public List<double> Backward { get; } = [];
        public List<double> Clip { get; } = [];
        public List<double> AdamW { get; } = [];
        public List<double> Ema { get; } = [];
        public List<double> Step { get; } = [];

        public void Add(double forward, double backward, double clip, double adamw, double ema, double step)
        {
            Forward.Add(forward);
            Backward.Add(backward);
            Clip.Add(clip);
            AdamW.Add(adamw);
            Ema.Add(ema);
            Step.Add(step);
        }
    }
}
