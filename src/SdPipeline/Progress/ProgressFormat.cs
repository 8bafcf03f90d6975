using System.Globalization;

namespace SdPipeline.Progress;

/// <summary>Human-readable sizes, rates and durations for progress lines.</summary>
public static class ProgressFormat
{
    /// <summary>A quantity in its unit: "12.3 MB" or "1,024".</summary>
    public static string Amount(double value, ProgressUnit unit) => unit == ProgressUnit.Bytes
        ? Bytes(value)
        : value.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>Bytes with a binary-ish decimal prefix.</summary>
    public static string Bytes(double bytes)
    {
        string[] units = ["B", "KB", "MB", "GB", "TB"];
        int i = 0;
        while (bytes >= 1000 && i < units.Length - 1) { bytes /= 1000; i++; }
        return i == 0
            ? $"{bytes.ToString("0", CultureInfo.InvariantCulture)} B"
            : $"{bytes.ToString("0.0", CultureInfo.InvariantCulture)} {units[i]}";
    }

    /// <summary>A duration as h:mm:ss or m:ss.</summary>
    public static string Duration(TimeSpan span) => span.TotalHours >= 1
        ? span.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture)
        : span.ToString(@"m\:ss", CultureInfo.InvariantCulture);
}
