using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>What one scheduler step returns (diffusers' <c>SchedulerOutput</c>).</summary>
/// <param name="PrevSample">x_{t−1}: the latents to feed the next step.</param>
/// <param name="PredOriginalSample">The predicted denoised x₀ at this step, for previews; null for the multistep samplers (PNDM, DPM-Solver), which diffusers does not report it for.</param>
public sealed record SchedulerStepOutput(Tensor PrevSample, Tensor? PredOriginalSample);
