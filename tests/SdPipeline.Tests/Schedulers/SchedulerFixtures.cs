using Newtonsoft.Json.Linq;
using SdPipeline.Schedulers;
using SdPipeline.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

/// <summary>
/// parity/schedulers.safetensors and its sidecar schedulers.json (diffusers git 58eb52c0), and the fixtures' loop:
/// <c>x = x_init · init_noise_sigma; for t: x = step(0.1 · scale_model_input(x, t) + 0.0005 · t, t, x)</c>.
/// </summary>
/// <remarks>
/// The generator multiplied 0.0005 by the timestep tensor, so that product is a float32 one (the recorded model
/// outputs say so bit for bit; 0.0005 · float(t) in float64, as the json words it, is one ulp off at times).
/// </remarks>
internal static class SchedulerFixtures
{
    /// <summary>Scheduler tables (betas, ᾱ, sigmas): relative tolerance of the fixtures README.</summary>
    public const double TableRtol = 1e-6;

    /// <summary>Scheduler loops (every x after a step): absolute tolerance of the fixtures README.</summary>
    public const double LoopAtol = 1e-5;

    /// <summary>Euler's fractional timesteps: absolute tolerance of the fixtures README.</summary>
    public const double FloatTimestepAtol = 1e-4;

    private static readonly Lazy<FixtureTensors> LazyTensors = new(() => FixtureTensors.OpenParity("schedulers"));
    private static readonly Lazy<JObject> LazyJson = new(() =>
        JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "parity", "schedulers.json"))));

    public static FixtureTensors Tensors => LazyTensors.Value;

    public static JObject Json => LazyJson.Value;

    /// <summary>The SD 1.5 scheduler config (no timestep_spacing) the DDPM fixtures were made with.</summary>
    public static SchedulerConfig BaseConfig =>
        SchedulerConfig.Parse(Json["base_config"]!.ToString(), "schedulers.json base_config");

    /// <summary>The resolved config diffusers recorded for a loop entry (every key of that class, its defaults filled in).</summary>
    public static SchedulerConfig ConfigOf(string entry) =>
        SchedulerConfig.Parse(Json["entries"]![entry]!["config"]!.ToString(), $"schedulers.json entries.{entry}.config");

    /// <summary>Largest |a − b| over all elements, in float64.</summary>
    public static double MaxAbsDiff(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        Assert.That(actual.shape, Is.EqualTo(expected.shape), "shape");
        return (actual.to_type(ScalarType.Float64) - expected.to_type(ScalarType.Float64)).abs().max().item<double>();
    }

    /// <summary>Largest |a − b| / |b| over the elements where b ≠ 0, in float64.</summary>
    public static double MaxRelDiff(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        Assert.That(actual.shape, Is.EqualTo(expected.shape), "shape");
        var a = actual.to_type(ScalarType.Float64);
        var b = expected.to_type(ScalarType.Float64);
        var nonZero = b != 0;
        return ((a - b).abs()[nonZero] / b.abs()[nonZero]).max().item<double>();
    }

    /// <summary>Runs the fixtures' loop with one dispose scope per step, as the sampling loop will.</summary>
    public static LoopResult RunLoop(IScheduler scheduler, int steps, torch.Generator? generator = null)
    {
        scheduler.SetTimesteps(steps);
        var xs = new List<Tensor>();
        var modelOutputs = new List<Tensor>();
        using var xInit = Tensors.Get("x_init");
        var x = xInit * scheduler.InitNoiseSigma;
        long count = scheduler.Timesteps.shape[0];
        for (long i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            var t = scheduler.Timesteps[i];
            float tValue = t.to_type(ScalarType.Float32).item<float>();
            var modelInput = scheduler.ScaleModelInput(x, t);
            var modelOutput = modelInput * 0.1 + 0.0005f * tValue;
            var next = scheduler.Step(modelOutput, t, x, generator).PrevSample;
            modelOutputs.Add(modelOutput.MoveToOuterDisposeScope());
            xs.Add(next.MoveToOuterDisposeScope());
            x = xs[^1];
        }
        return new LoopResult(stack(xs), stack(modelOutputs));
    }

    /// <summary>Every x after a step, and every fake-model output fed to a step, stacked on a new first axis.</summary>
    public sealed record LoopResult(Tensor Xs, Tensor ModelOutputs);
}
