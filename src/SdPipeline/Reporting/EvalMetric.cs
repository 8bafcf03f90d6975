namespace SdPipeline.Reporting;

/// <summary>A <c>"kind":"eval"</c> line of <c>metrics.jsonl</c>: the held-out loss at one step.</summary>
/// <param name="Step">The training step it was measured after.</param>
/// <param name="HeldoutLoss">Loss on the held-out split with the right captions.</param>
/// <param name="HeldoutLossShuffled">The same loss with captions shuffled among the images, when measured.</param>
public sealed record EvalMetric(long Step, double HeldoutLoss, double? HeldoutLossShuffled)
{
    /// <summary>
    /// Shuffled minus true-caption loss: how much worse the model predicts noise with the wrong text.
    /// Larger means the model uses the caption; near zero means it ignores it.
    /// </summary>
    public double? CaptionShuffleGap => HeldoutLossShuffled - HeldoutLoss;
}
