namespace SdPipeline.Reporting;

/// <summary>One row of the step-time table: statistics of a per-step figure over the steps after warm-up.</summary>
/// <param name="Figure">What is measured, with its unit (<c>step time (s)</c>).</param>
/// <param name="Median">Median over the steps.</param>
/// <param name="Mean">Mean over the steps.</param>
/// <param name="Min">Smallest value.</param>
/// <param name="Max">Largest value.</param>
/// <param name="Steps">Number of steps the statistics are over.</param>
public sealed record StepTimeRow(string Figure, double Median, double Mean, double Min, double Max, int Steps);
