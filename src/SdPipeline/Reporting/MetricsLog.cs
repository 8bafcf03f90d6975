using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Reporting;

/// <summary>
/// The training stage's <c>metrics.jsonl</c>: one JSON object per line, <c>"kind":"train"</c> per optimizer
/// step and <c>"kind":"eval"</c> per held-out evaluation. Unknown fields and other kinds are ignored, so
/// the trainer can log more without breaking the report; a line that cannot be read is an error naming
/// the file and line, never silently dropped.
/// </summary>
/// <param name="Train">The train lines, in file order.</param>
/// <param name="Eval">The eval lines, in file order.</param>
public sealed record MetricsLog(IReadOnlyList<TrainMetric> Train, IReadOnlyList<EvalMetric> Eval)
{
    /// <summary>A log without lines (a report made before or without training).</summary>
    public static MetricsLog Empty { get; } = new([], []);

    /// <summary>Reads <paramref name="path"/>. Throws <see cref="InvalidDataException"/> naming the file and line of a bad line.</summary>
    public static MetricsLog Read(string path) => Parse(File.ReadLines(path), path);

    /// <summary>Parses lines of a metrics log; <paramref name="source"/> names it in error messages.</summary>
    public static MetricsLog Parse(IEnumerable<string> lines, string source)
    {
        var train = new List<TrainMetric>();
        var eval = new List<EvalMetric>();
        int number = 0;
        foreach (string line in lines)
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var where = new LineReader(source, number, ParseObject(line, source, number));
            switch (where.Kind())
            {
                case "train":
                    train.Add(new TrainMetric(
                        where.Required<long>("step"),
                        where.Optional<int>("epoch") ?? 0,
                        where.Double("loss", required: true),
                        where.Double("lr"),
                        where.Double("grad_norm"),
                        where.Double("loss_scale"),
                        where.Optional<bool>("skipped") ?? false,
                        where.Double("step_time_s"),
                        where.Double("images_per_s"),
                        where.Optional<long>("peak_memory_bytes")));
                    break;
                case "eval":
                    eval.Add(new EvalMetric(
                        where.Required<long>("step"),
                        where.Double("heldout_loss", required: true) ?? double.NaN,
                        where.Double("heldout_loss_shuffled")));
                    break;
            }
        }
        return new MetricsLog(train, eval);
    }

    private static JObject ParseObject(string line, string source, int number)
    {
        try
        {
            using var reader = new JsonTextReader(new StringReader(line))
            {
                DateParseHandling = DateParseHandling.None,
                FloatParseHandling = FloatParseHandling.Double,
            };
            var token = JToken.ReadFrom(reader);
            if (reader.Read())
                throw new JsonReaderException("more than one JSON value on the line");
            return token as JObject ?? throw new InvalidDataException($"{source} line {number}: expected a JSON object, got {token.Type}");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source} line {number}: not valid JSON ({e.Message}); each line must be one JSON object", e);
        }
    }

    private readonly struct LineReader(string source, int number, JObject line)
    {
        public string Kind() => line["kind"] is JValue { Type: JTokenType.String } kind
            ? (string)kind!
            : throw Bad("has no string field \"kind\" (\"train\" or \"eval\")");

        public T Required<T>(string field) where T : struct =>
            Optional<T>(field) ?? throw Bad($"lacks the required field \"{field}\"");

        public T? Optional<T>(string field) where T : struct
        {
            var token = line[field];
            if (token is null || token.Type == JTokenType.Null) return null;
            try
            {
                return token.ToObject<T>();
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidCastException or OverflowException or ArgumentException)
            {
                throw Bad($"field \"{field}\" is {token.ToString(Formatting.None)}, not {Expected<T>()}");
            }
        }

        /// <summary>
        /// A number; a JSON null (or NaN/Infinity) is kept as such because an overflowed fp16 step logs one. The trainer's
        /// writer (Newtonsoft's default) writes a non-finite double as the string <c>"NaN"</c>, <c>"Infinity"</c> or <c>"-Infinity"</c>.
        /// </summary>
        public double? Double(string field, bool required = false)
        {
            var token = line[field];
            if (token is null)
                return required ? throw Bad($"lacks the required field \"{field}\"") : null;
            return token.Type switch
            {
                JTokenType.Null => null,
                JTokenType.Integer or JTokenType.Float => token.Value<double>(),
                JTokenType.String when (string?)token is "NaN" => double.NaN,
                JTokenType.String when (string?)token is "Infinity" => double.PositiveInfinity,
                JTokenType.String when (string?)token is "-Infinity" => double.NegativeInfinity,
                _ => throw Bad($"field \"{field}\" is {token.ToString(Formatting.None)}, not a number"),
            };
        }

        private static string Expected<T>() => typeof(T) == typeof(bool) ? "true or false" : "a whole number";

        private InvalidDataException Bad(string problem) => new($"{source} line {number}: the {Describe()} line {problem}");

        private string Describe() => line["kind"] is JValue { Type: JTokenType.String } kind ? $"\"{kind}\"" : "metrics";
    }
}
