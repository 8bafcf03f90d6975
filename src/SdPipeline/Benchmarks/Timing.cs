namespace SdPipeline.Benchmarks;

/// <summary>The timed runs of one benchmark case (warm-ups excluded).</summary>
/// <param name="Seconds">Wall-clock seconds of each timed run, in run order.</param>
/// <param name="PeakResidentBytes">Peak resident memory during the case (warm-ups included); the whole process's peak when it could not be reset first.</param>
/// <param name="PeakIsPerCase">Whether the peak was reset before the case, so it is this case's own.</param>
/// <param name="PeakAnonymousBytes">Peak anonymous resident memory during the case (<see cref="Runtime.AnonymousMemoryPeak"/>); null where it cannot be sampled.</param>
public sealed record Timing(IReadOnlyList<double> Seconds, long PeakResidentBytes, bool PeakIsPerCase, long? PeakAnonymousBytes = null)
{
    /// <summary>The median run time (the mean of the two middle runs for an even count).</summary>
    public double Median => Statistics.Median(Seconds);

    /// <summary>The fastest run.</summary>
    public double Min => Seconds.Min();

    /// <summary>The slowest run.</summary>
    public double Max => Seconds.Max();
}
