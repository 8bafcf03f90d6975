using System.Globalization;

namespace SdPipeline.Verification;

/// <summary>
/// The verification table as aligned plain text, one line per <see cref="ParityRow"/>, so a long run can print each
/// row as soon as it is known and logs stay readable without a terminal.
/// </summary>
public static class ParityTable
{
    private const int CheckWidth = 44, NumberWidth = 10, ToleranceWidth = 25, PassWidth = 5;

    /// <summary>What the columns mean, then the column titles.</summary>
    public static IEnumerable<string> Header()
    {
        yield return "max rel = max |ours − reference| / abs max of the reference (per element where the tolerance says /elem)";
        yield return Line("check", "max abs", "max rel", "tolerance", "pass", "note");
    }

    /// <summary>One row.</summary>
    public static string Line(ParityRow row) =>
        Line(row.Check, Number(row.MaxAbsError), Number(row.MaxRelError), row.Tolerance, row.Passed ? "ok" : "FAIL", row.Note);

    /// <summary>The closing count, for example <c>71 checks: 71 passed</c> or <c>71 checks: 70 passed, 1 FAILED</c>.</summary>
    public static string Summary(IReadOnlyCollection<ParityRow> rows)
    {
        int failed = rows.Count(r => !r.Passed);
        return failed == 0 ? $"{rows.Count} checks: {rows.Count} passed" : $"{rows.Count} checks: {rows.Count - failed} passed, {failed} FAILED";
    }

    /// <summary>A number as the table shows it: 3 significant digits in exponent form, <c>0</c>, <c>-</c> for none.</summary>
    public static string Number(double? value) => value switch
    {
        null => "-",
        0 => "0",
        double.PositiveInfinity => "inf",
        { } v when double.IsNaN(v) => "NaN",
        { } v => v.ToString("0.00e+00", CultureInfo.InvariantCulture),
    };

    private static string Line(string check, string maxAbs, string maxRel, string tolerance, string pass, string note) =>
        $"{check.PadRight(CheckWidth)} {maxAbs.PadLeft(NumberWidth)} {maxRel.PadLeft(NumberWidth)}  {tolerance.PadRight(ToleranceWidth)} {pass.PadRight(PassWidth)} {note}".TrimEnd();
}
