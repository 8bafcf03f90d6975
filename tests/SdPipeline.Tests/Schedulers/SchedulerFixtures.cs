using Newtonsoft.Json.Linq;
using SdPipeline.Schedulers;
using SdPipeline.Tests.Support;
using SdPipeline.Verification;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

/// <summary>
/// parity/schedulers.safetensors and its sidecar schedulers.json (diffusers git 58eb52c0), the fixtures' loop
/// (<see cref="FakeModelLoop"/>) and the README's tolerances (<see cref="ParityTolerance"/>), as `sdpipe verify` uses them.
/// </summary>
internal static class SchedulerFixtures
{
    /// <summary>Scheduler tables (betas, ᾱ, sigmas): relative tolerance of the fixtures README.</summary>
    public static readonly double TableRtol = ParityTolerance.SchedulerTable.Value;

    /// <summary>Scheduler loops (every x after a step): absolute tolerance of the fixtures README.</summary>
    public static readonly double LoopAtol = ParityTolerance.SchedulerLoop.Value;

    /// <summary>Euler's fractional timesteps: absolute tolerance of the fixtures README.</summary>
    public static readonly double FloatTimestepAtol = ParityTolerance.FloatTimesteps.Value;

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

    /// <summary>Largest |a − b| over all elements, in float64 (the shapes must agree).</summary>
    public static double MaxAbsDiff(Tensor actual, Tensor expected) =>
        TensorComparison.Of("", actual, expected, ParityTolerance.Exact).MaxAbsError;

    /// <summary>Largest |a − b| / |b| over the elements, in float64 (0 where a = b = 0, infinite where only b is 0).</summary>
    public static double MaxRelDiff(Tensor actual, Tensor expected) =>
        TensorComparison.Of("", actual, expected, ParityTolerance.RelativePerElement(TableRtol)).MaxRelError;

    /// <summary>Runs the fixtures' loop from <c>x_init</c>, one dispose scope per step, as the sampling loop will.</summary>
    public static FakeModelLoopResult RunLoop(IScheduler scheduler, int steps, torch.Generator? generator = null)
    {
        using var xInit = Tensors.Get("x_init");
        return FakeModelLoop.Run(scheduler, steps, xInit, generator);
    }
}
