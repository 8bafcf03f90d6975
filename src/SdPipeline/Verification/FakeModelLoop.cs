using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification;

/// <summary>
/// The sampling loop of the scheduler fixtures (parity/schedulers.*), with their fake model in place of a UNet:
/// <c>x = x_init · init_noise_sigma; for t: x = step(0.1 · scale_model_input(x, t) + 0.0005 · t, t, x)</c>.
/// </summary>
/// <remarks>
/// The generator multiplied 0.0005 by the timestep tensor, so that product is a float32 one (the recorded model
/// outputs say so bit for bit; 0.0005 · float(t) in float64, as schedulers.json words it, is one ulp off at times).
/// </remarks>
public static class FakeModelLoop
{
    /// <summary>The fixtures' stand-in for the UNet: <c>0.1 · modelInput + 0.0005 · t</c>.</summary>
    public static Tensor FakeModel(Tensor modelInput, Tensor timestep) =>
        modelInput * 0.1 + 0.0005f * timestep.to_type(ScalarType.Float32).item<float>();

    /// <summary>Runs <paramref name="steps"/> steps from <paramref name="xInit"/>, one dispose scope per step.</summary>
    /// <param name="scheduler">The sampler (its timesteps are set here).</param>
    /// <param name="steps">Inference steps.</param>
    /// <param name="xInit">The initial latents, before <see cref="IScheduler.InitNoiseSigma"/>.</param>
    /// <param name="generator">Draws the noise of stochastic steps.</param>
    /// <param name="stepNoise">Or the recorded noise of each step, [visits, …] (a stochastic step takes element i).</param>
    public static FakeModelLoopResult Run(IScheduler scheduler, int steps, Tensor xInit, torch.Generator? generator = null, Tensor? stepNoise = null)
    {
        scheduler.SetTimesteps(steps);
        var xs = new List<Tensor>();
        var modelOutputs = new List<Tensor>();
        var x = xInit * scheduler.InitNoiseSigma;
        long count = scheduler.Timesteps.shape[0];
        if (stepNoise is not null && stepNoise.shape[0] < count)
            throw new ArgumentException($"{stepNoise.shape[0]} recorded noise draws for {count} steps", nameof(stepNoise));
        for (long i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            var t = scheduler.Timesteps[i];
            var modelOutput = FakeModel(scheduler.ScaleModelInput(x, t), t);
            var next = scheduler.Step(modelOutput, t, x, generator, stepNoise?[i]).PrevSample;
            modelOutputs.Add(modelOutput.MoveToOuterDisposeScope());
            xs.Add(next.MoveToOuterDisposeScope());
            x = xs[^1];
        }
        return new FakeModelLoopResult(stack(xs), stack(modelOutputs));
    }
}
