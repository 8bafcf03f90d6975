using System.Globalization;
using System.Text.RegularExpressions;

namespace SdPipeline.Pipeline;

/// <summary>
/// Sizes as people type them on the command line, with coreutils' convention (<c>du</c>, <c>df -h</c>):
/// <c>50G</c> and <c>50GiB</c> are powers of 1024, <c>50GB</c> powers of 1000, a bare number is bytes.
/// </summary>
public static partial class ByteSize
{
    /// <summary>Parses <paramref name="text"/> (for example <c>50G</c>, <c>1.5T</c>, <c>500MB</c>, <c>1048576</c>) to bytes.</summary>
    /// <exception cref="FormatException">Not a size: the message shows the accepted forms.</exception>
    public static long Parse(string text)
    {
        var match = Pattern().Match(text.Trim());
        if (!match.Success)
            throw new FormatException($"'{text}' is not a size: use a number with an optional unit K, M, G or T (powers of 1024, as df -h), KB, MB, GB, TB (powers of 1000), for example 50G");
        double number = double.Parse(match.Groups["number"].Value, CultureInfo.InvariantCulture);
        string unit = match.Groups["unit"].Value.ToUpperInvariant();
        int power = unit.Length == 0 ? 0 : "KMGT".IndexOf(unit[0]) + 1;
        double scale = unit.EndsWith('B') && !unit.EndsWith("IB") && unit.Length == 2 ? 1000 : 1024;
        double bytes = number * Math.Pow(scale, power);
        if (bytes >= long.MaxValue) throw new FormatException($"'{text}' is too large a size");
        return (long)bytes;
    }

    [GeneratedRegex(@"^(?<number>\d+(\.\d+)?)\s*(?<unit>([KMGT](i?B)?)|B)?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
