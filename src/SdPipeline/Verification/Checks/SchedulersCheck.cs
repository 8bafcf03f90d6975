using System.Globalization;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>schedulers</c>: the noise tables and training functions of the sidecar's <c>base_config</c>, every sampling
/// loop its <c>entries</c> describe (run with the fixtures' fake model, <see cref="FakeModelLoop"/>), and the single
/// DDPM/DDIM steps. Independent of the model folder: it checks SdPipeline's schedulers.
/// </summary>
internal sealed partial class SchedulersCheck : IParityCheck
{
    public IReadOnlyList<string> Components { get; } = [];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        string name = fixture.Name;
        var baseConfig = new Lazy<SchedulerConfig>(() => SchedulerConfig.Parse(fixture.Require<JObject>("base_config").ToString(), $"{name}.json base_config"));
        CheckTraining(fixture, rows, baseConfig);

        var entries = fixture.Setting<JObject>("entries") ?? throw new ParityFixtureException($"{name}.json has no 'entries'");
        foreach (var entry in entries.Properties())
        {
            string check = $"{name}.{entry.Name}";
            if (entry.Value is JObject loop)
                rows.Check(check, () => CompareLoop(fixture, entry.Name, loop), $"{loop.Value<string>("cls")}, {loop.Value<int?>("num_inference_steps")} steps");
            else if (fixture.Contains($"{entry.Name}.xs"))
                rows.Check(check, () => CompareRecordedNoiseLoop(fixture, entry.Name, entry.Value.ToString(), baseConfig.Value), "recorded step noise");
            else if (fixture.Keys.Any(k => k.StartsWith($"{entry.Name}.", StringComparison.Ordinal) && k.EndsWith(".prev_sample", StringComparison.Ordinal)))
                rows.Check(check, () => CompareSingleSteps(fixture, entry.Name, entry.Value.ToString(), baseConfig.Value));
            else if (!fixture.Keys.Any(k => k.StartsWith($"{entry.Name}.", StringComparison.Ordinal)))
                rows.Add(ParityRow.CannotInterpret(check, $"no tensor named {entry.Name}.*"));
        }
    }

    private static void CheckTraining(ParityFixture fixture, ParityRows rows, Lazy<SchedulerConfig> baseConfig)
    {
        string name = fixture.Name;
        if (fixture.Contains("ddpm.betas"))
            rows.Check($"{name}.ddpm.tables", () =>
            {
                using var schedule = new NoiseSchedule(baseConfig.Value);
                return
                [
                    TensorComparison.Of("betas", schedule.Betas, fixture.Get("ddpm.betas"), ParityTolerance.SchedulerTable),
                    TensorComparison.Of("alphas_cumprod", schedule.AlphasCumprod, fixture.Get("ddpm.alphas_cumprod"), ParityTolerance.SchedulerTable),
                ];
            });
        if (fixture.Contains("add_noise.noisy"))
            rows.Check($"{name}.add_noise", () =>
            {
                using var schedule = new NoiseSchedule(baseConfig.Value);
                var noisy = schedule.AddNoise(fixture.Get("add_noise.x0"), fixture.Get("add_noise.noise"), fixture.Get("add_noise.timesteps"));
                return [TensorComparison.Of("add_noise", noisy, fixture.Get("add_noise.noisy"), ParityTolerance.SchedulerLoop)];
            });
        if (fixture.Contains("get_velocity.v"))
            rows.Check($"{name}.get_velocity", () =>
            {
                using var schedule = new NoiseSchedule(baseConfig.Value);
                var velocity = schedule.GetVelocity(fixture.Get("add_noise.x0"), fixture.Get("add_noise.noise"), fixture.Get("add_noise.timesteps"));
                return [TensorComparison.Of("get_velocity", velocity, fixture.Get("get_velocity.v"), ParityTolerance.SchedulerLoop)];
            });
        if (fixture.Contains("compute_snr.snr"))
            rows.Check($"{name}.compute_snr", () =>
            {
                using var schedule = new NoiseSchedule(baseConfig.Value);
                var snr = schedule.ComputeSnr(fixture.Get("add_noise.timesteps"));
                return [TensorComparison.Of("compute_snr", snr, fixture.Get("compute_snr.snr"), ParityTolerance.SchedulerTable)];
            });
    }

    // An entry that records its class, steps and resolved config: a deterministic loop.
    private static List<TensorComparison> CompareLoop(ParityFixture fixture, string entry, JObject loop)
    {
        string cls = loop.Value<string>("cls") ?? throw new ParityFixtureException($"{fixture.Name}.json entries.{entry} has no 'cls'");
        int steps = loop.Value<int?>("num_inference_steps") ?? throw new ParityFixtureException($"{fixture.Name}.json entries.{entry} has no 'num_inference_steps'");
        var config = SchedulerConfig.Parse(loop["config"]?.ToString() ?? "{}", $"{fixture.Name}.json entries.{entry}.config");
        using var scheduler = Create(cls, config);
        var result = FakeModelLoop.Run(scheduler, steps, fixture.Get("x_init"));
        return CompareTrajectory(fixture, entry, scheduler, result);
    }

    // DDPM loops: the entry is a description; the prediction type is in the name and each step's noise is recorded.
    private static List<TensorComparison> CompareRecordedNoiseLoop(ParityFixture fixture, string entry, string description, SchedulerConfig baseConfig)
    {
        string cls = ClassIn(description) ?? throw new ParityFixtureException($"{fixture.Name}.json entries.{entry} names no scheduler class");
        var config = baseConfig with { PredictionType = entry.Contains(PredictionTypes.VPrediction, StringComparison.Ordinal) ? PredictionTypes.VPrediction : PredictionTypes.Epsilon };
        using var timesteps = fixture.Get($"{entry}.timesteps");
        using var scheduler = Create(cls, config);
        var noise = fixture.Contains($"{entry}.variance_noise") ? fixture.Get($"{entry}.variance_noise") : null;
        var result = FakeModelLoop.Run(scheduler, (int)timesteps.shape[0], fixture.Get("x_init"), stepNoise: noise);
        return CompareTrajectory(fixture, entry, scheduler, result);
    }

    private static List<TensorComparison> CompareTrajectory(ParityFixture fixture, string entry, IScheduler scheduler, FakeModelLoopResult result)
    {
        // The trajectory first: among equal errors a row shows its first comparison.
        var comparisons = new List<TensorComparison> { TensorComparison.Of("xs", result.Xs, fixture.Get($"{entry}.xs"), ParityTolerance.SchedulerLoop) };
        if (fixture.Contains($"{entry}.final"))
            comparisons.Add(TensorComparison.Of("final", result.Xs[-1], fixture.Get($"{entry}.final"), ParityTolerance.SchedulerLoop));
        if (fixture.Contains($"{entry}.model_outputs"))
            comparisons.Add(TensorComparison.Of("model_outputs", result.ModelOutputs, fixture.Get($"{entry}.model_outputs"), ParityTolerance.SchedulerLoop));
        var expectedTimesteps = fixture.Get($"{entry}.timesteps");
        comparisons.Add(TensorComparison.Of("timesteps", scheduler.Timesteps, expectedTimesteps,
            torch.is_integral(expectedTimesteps.dtype) ? ParityTolerance.Exact : ParityTolerance.FloatTimesteps));
        if (fixture.Contains($"{entry}.sigmas"))
        {
            var sigmas = scheduler switch
            {
                EulerDiscreteScheduler euler => euler.Sigmas,
                EulerAncestralDiscreteScheduler ancestral => ancestral.Sigmas,
                DpmSolverMultistepScheduler dpm => dpm.Sigmas,
                _ => throw new ParityFixtureException($"{entry}.sigmas recorded, but {scheduler.Name} has no sigmas"),
            };
            comparisons.Add(TensorComparison.Of("sigmas", sigmas, fixture.Get($"{entry}.sigmas"), ParityTolerance.SchedulerTable));
        }
        if (fixture.Contains($"{entry}.init_noise_sigma"))
            comparisons.Add(TensorComparison.Of("init_noise_sigma", scheduler.InitNoiseSigma, fixture.Get($"{entry}.init_noise_sigma").item<float>(), ParityTolerance.SchedulerTable));
        return comparisons;
    }

    // ENTRY.PREDICTION_TYPE.tT.{prev_sample,pred_original_sample}: one step from ddpm_single.sample at t.
    private static List<TensorComparison> CompareSingleSteps(ParityFixture fixture, string entry, string description, SchedulerConfig baseConfig)
    {
        string cls = ClassIn(description) ?? (entry.StartsWith("ddim", StringComparison.Ordinal) ? "DDIMScheduler" : "DDPMScheduler");
        var sample = fixture.Get("ddpm_single.sample");
        var comparisons = new List<TensorComparison>();
        foreach (string key in fixture.Keys.Where(k => k.StartsWith($"{entry}.", StringComparison.Ordinal) && k.EndsWith(".prev_sample", StringComparison.Ordinal)))
        {
            var match = SingleStepKey().Match(key[(entry.Length + 1)..^".prev_sample".Length]);
            if (!match.Success) throw new ParityFixtureException($"'{key}': expected {entry}.PREDICTION_TYPE.tTIMESTEP.prev_sample");
            string predictionType = match.Groups[1].Value;
            long t = long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
            string prefix = key[..^".prev_sample".Length];
            var expected = fixture.Get(key);

            using var scheduler = Create(cls, baseConfig with { PredictionType = predictionType });
            // DDPM steps from a fresh scheduler (previous timestep t − 1); DDIM from a schedule of the described step count.
            if (StepsIn(description) is { } steps) scheduler.SetTimesteps(steps);
            // The generator fed the DDIM steps the ten stacked outputs of dpmpp2m_epsilon_10 (their shape shows it),
            // not the ddpm_single.model_output the description names.
            var modelOutput = expected.dim() > sample.dim() && fixture.Contains("dpmpp2m_epsilon_10.model_outputs")
                ? fixture.Get("dpmpp2m_epsilon_10.model_outputs")
                : fixture.Get("ddpm_single.model_output");
            var noise = t > 0 && fixture.Contains($"{entry}.variance_noise") ? fixture.Get($"{entry}.variance_noise") : null;
            var output = scheduler.Step(modelOutput, tensor(t), sample, noise: noise);

            comparisons.Add(TensorComparison.Of($"{predictionType}.t{t}.prev_sample", output.PrevSample, expected, ParityTolerance.SchedulerLoop));
            if (fixture.Contains($"{prefix}.pred_original_sample"))
                comparisons.Add(TensorComparison.Of($"{predictionType}.t{t}.pred_original_sample",
                    output.PredOriginalSample ?? throw new ParityFixtureException($"{scheduler.Name} reports no pred_original_sample"),
                    fixture.Get($"{prefix}.pred_original_sample"), ParityTolerance.SchedulerLoop));
        }
        return comparisons;
    }

    private static IScheduler Create(string cls, SchedulerConfig config)
    {
        try
        {
            return SchedulerFactory.Create(SchedulerFactory.ShippedName(config with { ClassName = cls }), config);
        }
        catch (SchedulerConfigException e)
        {
            throw new ParityFixtureException(e.Message);
        }
    }

    private static string? ClassIn(string description) => SchedulerClass().Match(description) is { Success: true } m ? m.Value : null;

    private static int? StepsIn(string description) =>
        StepCount().Match(description) is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;

    [GeneratedRegex(@"^([a-z_]+)\.t(\d+)$")]
    private static partial Regex SingleStepKey();

    [GeneratedRegex(@"\b[A-Z][A-Za-z]*Scheduler\b")]
    private static partial Regex SchedulerClass();

    [GeneratedRegex(@"\((\d+) steps set\)")]
    private static partial Regex StepCount();
}
