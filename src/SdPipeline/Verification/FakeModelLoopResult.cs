using static TorchSharp.torch;

namespace SdPipeline.Verification;

/// <summary>What a <see cref="FakeModelLoop"/> run produced.</summary>
/// <param name="Xs">x after each step, stacked on a new first axis [steps, …].</param>
/// <param name="ModelOutputs">The fake model's output fed to each step [steps, …].</param>
public sealed record FakeModelLoopResult(Tensor Xs, Tensor ModelOutputs);
