using System.Globalization;

namespace SdPipeline.Reporting;

/// <summary>How the report prints numbers: invariant culture, units in headers, few significant digits.</summary>
internal static class ReportFormat
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>A value with 4 significant digits (scientific for very small or large ones), or "–".</summary>
    public static string Number(double? value)
    {
        if (value is not { } v) return "–";
        if (!double.IsFinite(v)) return v.ToString(Invariant);
        double magnitude = Math.Abs(v);
        return magnitude != 0 && (magnitude < 1e-3 || magnitude >= 1e6)
            ? v.ToString("0.###e+0", Invariant)
            : v.ToString("G4", Invariant);
    }

    /// <summary>Seconds with a fitting precision.</summary>
    public static string Seconds(double seconds) =>
        seconds.ToString(seconds < 10 ? "0.00" : "0.0", Invariant);

    /// <summary>A byte count in MiB or GiB.</summary>
    public static string Bytes(long? bytes) => bytes switch
    {
        null => "–",
        >= 1L << 30 => (bytes.Value / (double)(1L << 30)).ToString("0.00", Invariant) + " GiB",
        _ => (bytes.Value / (double)(1L << 20)).ToString("0.0", Invariant) + " MiB",
    };

    /// <summary>A rate as a percentage with the counts: "87.5% (7/8)".</summary>
    public static string Rate(int matches, int total) =>
        total == 0 ? "–" : $"{(100.0 * matches / total).ToString("0.#", Invariant)}% ({matches}/{total})";

    /// <summary>The short form of a fingerprint (its first 16 hex digits, as <c>sdpipe plan</c> prints it).</summary>
    public static string ShortFingerprint(string fingerprint) => fingerprint.Length > 16 ? fingerprint[..16] : fingerprint;

    /// <summary>A timestamp as ISO 8601 UTC.</summary>
    public static string Timestamp(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", Invariant);
}
