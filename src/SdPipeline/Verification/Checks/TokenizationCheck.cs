using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Tokenization;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// A tokenization reference: every prompt through the model's tokenizer against the reference ids, one row with the
/// number of lines that differ. Each line says whose tokenizer made it, and the matching clean-up is checked:
/// <c>input_ids</c> lines (<c>tokenization_transformers.jsonl</c>: transformers' CLIPTokenizer, what diffusers runs)
/// with <see cref="ClipTextCleaning.Transformers"/> against <c>input_ids_without_ftfy</c>; <c>ids</c> lines
/// (<c>tokenization.jsonl</c>: OpenAI's SimpleTokenizer) with <see cref="ClipTextCleaning.OpenAi"/>, ftfy-sensitive lines
/// against their <c>ids_without_ftfy</c>. SdPipeline has no ftfy, so the ftfy columns are not what it reproduces.
/// </summary>
internal static class TokenizationCheck
{
    /// <summary>The OpenAI reference's file name, found in a parity folder.</summary>
    public const string FileName = "tokenization.jsonl";

    /// <summary>The transformers reference's file name, found in a parity folder.</summary>
    public const string TransformersFileName = "tokenization_transformers.jsonl";

    /// <summary>Checks every line of <paramref name="path"/>; the row is called <paramref name="check"/>.</summary>
    public static ParityRow Run(string check, string path, ModelComponents model)
    {
        var tokenizers = new Dictionary<ClipTextCleaning, ClipTokenizer>();
        ClipTokenizer TokenizerFor(ClipTextCleaning cleaning)
        {
            if (!tokenizers.TryGetValue(cleaning, out var tokenizer))
                tokenizers[cleaning] = tokenizer = model.ClipTokenizer.Cleaning == cleaning
                    ? model.ClipTokenizer
                    : ClipTokenizer.FromFolder(Path.Combine(model.Root, ModelComponents.Tokenizer), cleaning);
            return tokenizer;
        }

        int lines = 0, ftfySensitive = 0;
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
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
            var reference = Reference.Of(record, $"{path}:{lineNumber}");
            lines++;
            if (reference.FtfySensitive) ftfySensitive++;
            counts[reference.Tokenizer] = counts.GetValueOrDefault(reference.Tokenizer) + 1;
            long[] actual = TokenizerFor(reference.Cleaning).Encode(prompt);
            if (!actual.SequenceEqual(reference.Ids))
                mismatches.Add($"line {lineNumber} {JsonConvert.ToString(prompt)}: first difference at position {FirstDifference(actual, reference.Ids)}");
        }
        if (lines == 0) return ParityRow.CannotInterpret(check, $"{path} holds no prompts");

        string note = $"{mismatches.Count} of {lines} lines differ ({string.Join(", ", counts.Select(c => $"{c.Value} {c.Key}"))}); "
            + $"{ftfySensitive} ftfy-sensitive lines compared with their ids without ftfy (no ftfy here)";
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

    /// <summary>What one reference line expects: whose tokenizer, the ids without ftfy, whether ftfy changes them.</summary>
    private sealed record Reference(string Tokenizer, ClipTextCleaning Cleaning, long[] Ids, bool FtfySensitive)
    {
        public static Reference Of(JObject record, string where)
        {
            if (record["input_ids"] is not null || record["input_ids_without_ftfy"] is not null)
            {
                long[] ids = ReadIds(record, "input_ids_without_ftfy", where);
                bool sensitive = record["input_ids"]?.ToObject<long[]>() is long[] withFtfy && !withFtfy.SequenceEqual(ids);
                return new Reference("transformers", ClipTextCleaning.Transformers, ids, sensitive);
            }
            if (record["ids"] is not null)
            {
                bool sensitive = record.Value<bool?>("ftfy_sensitive") ?? false;
                return new Reference("openai", ClipTextCleaning.OpenAi, ReadIds(record, sensitive ? "ids_without_ftfy" : "ids", where), sensitive);
            }
            throw new ParityFixtureException(
                $"{where}: neither 'input_ids_without_ftfy' (transformers' CLIPTokenizer) nor 'ids' (OpenAI's SimpleTokenizer): not a tokenization reference line");
        }

        private static long[] ReadIds(JObject record, string key, string where)
        {
            try
            {
                return record[key]?.ToObject<long[]>() ?? throw new ParityFixtureException($"{where}: no '{key}'");
            }
            catch (Exception e) when (e is JsonException or ArgumentException)
            {
                throw new ParityFixtureException($"{where}: '{key}' must be a list of token ids: {e.Message}");
            }
        }
    }
}
