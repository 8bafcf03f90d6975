namespace SdPipeline.Reporting;

/// <summary>Prompt adherence of one model over all its judged samples.</summary>
/// <param name="Images">Samples judged.</param>
/// <param name="ColorMatches">Samples whose shape has the asked colour.</param>
/// <param name="BackgroundMatches">Samples whose background has the asked colour.</param>
/// <param name="BothMatch">Samples with both right.</param>
public sealed record AdherenceRates(int Images, int ColorMatches, int BackgroundMatches, int BothMatch)
{
    /// <summary>Share of samples with the right shape colour (0 when none was judged).</summary>
    public double ColorRate => Rate(ColorMatches);

    /// <summary>Share of samples with the right background colour.</summary>
    public double BackgroundRate => Rate(BackgroundMatches);

    /// <summary>Share of samples with both colours right.</summary>
    public double BothRate => Rate(BothMatch);

    /// <summary>Counts the verdicts.</summary>
    public static AdherenceRates Of(IEnumerable<AdherenceVerdict> verdicts)
    {
        var list = verdicts.ToList();
        return new AdherenceRates(list.Count, list.Count(v => v.ColorMatches), list.Count(v => v.BackgroundMatches),
            list.Count(v => v.ColorMatches && v.BackgroundMatches));
    }

    private double Rate(int matches) => Images == 0 ? 0 : matches / (double)Images;
}
