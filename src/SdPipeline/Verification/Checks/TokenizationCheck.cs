using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>tokenization.jsonl</c>: every prompt through the model's tokenizer against the reference ids, one row with the
/// number of lines that differ. SdPipeline's tokenizer has no ftfy, so ftfy-sensitive lines are compared with their
/// <c>ids_without_ftfy</c>.
/// </summary>
internal static class TokenizationCheck
{
    public const string FileName = "tokenization.jsonl";

    public static ParityRow Run(string path, ModelComponents model)
    {
        const string check = "tokenization";
        var tokenizer = model.ClipTokenizer;
        int lines = 0, ftfySensitive = 0;
        var mismatches = new List<string>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JObject record;
            try
            {
                record = JObject.Parse(line);
            }
            catch (JsonReaderException e)
            {
                return ParityRow.CannotInterpret(check, $"{path}:{lineNumber}: {e.Message}");
            }
            string prompt = record.Value<string>("prompt") ?? throw new ParityFixtureException($"{path}:{lineNumber}: no 'prompt'");
            bool sensitive = record.Value<bool?>("ftfy_sensitive") ?? false;
            string key = sensitive ? "ids_without_ftfy" : "ids";
            long[] expected = record[key]?.ToObject<long[]>() ?? throw new ParityFixtureException($"{path}:{lineNumber}: no '{key}'");
            lines++;
            if (sensitive) ftfySensitive++;
            long[] actual = tokenizer.Encode(prompt);
            if (!actual.SequenceEqual(expected))
                mismatches.Add($"line {lineNumber} {JsonConvert.ToString(prompt)}: first difference at position {FirstDifference(actual, expected)}");
        }
        if (lines == 0) return ParityRow.CannotInterpret(check, $"{path} holds no prompts");

        string note = $"{mismatches.Count} of {lines} lines differ; {ftfySensitive} ftfy-sensitive lines compared with ids_without_ftfy (no ftfy here)";
        if (mismatches.Count > 0) note += " — " + string.Join("; ", mismatches.Take(3)) + (mismatches.Count > 3 ? "; …" : "");
        return new ParityRow(check, null, null, "exact", mismatches.Count == 0, note);
    }

    private static int FirstDifference(long[] actual, long[] expected)
    {
        int length = Math.Min(actual.Length, expected.Length);
        for (int i = 0; i < length; i++)
            if (actual[i] != expected[i]) return i;
        return length;
    }
}
