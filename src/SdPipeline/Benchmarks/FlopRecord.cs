namespace SdPipeline.Benchmarks;

/// <summary>One counted call of a layer.</summary>
/// <param name="Module">The layer's name in the model (<c>down_blocks.0.resnets.0.conv1</c>).</param>
/// <param name="Op">What was counted.</param>
/// <param name="InputShape">The (real) input shape; for attention the attending hidden states.</param>
/// <param name="OutputShape">The (real) output shape.</param>
/// <param name="Forward">Forward FLOPs.</param>
/// <param name="Backward">Backward FLOPs the call implies (0 when it ran without autograd).</param>
public sealed record FlopRecord(string Module, FlopOp Op, long[] InputShape, long[] OutputShape, double Forward, double Backward);
