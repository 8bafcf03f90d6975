using Newtonsoft.Json.Linq;

namespace SdPipeline.Tests.Benchmarks;

/// <summary>The fields of a benchmark JSON report that scripts and the later report stage read.</summary>
internal static class BenchJson
{
    private static readonly string[] TopLevel =
        ["schema_version", "benchmark", "created_utc", "machine", "model_config", "parameters", "seed", "matmul_before", "matmul_after", "matmul_gflops", "flop_counting", "rows"];

    private static readonly string[] MachineFields = ["host", "os", "cpu_model", "logical_cores", "memory_bytes", "dot_net", "torch_sharp", "lib_torch", "device", "threads"];

    private static readonly string[] MatmulFields = ["size", "seconds", "median_seconds", "gflops"];

    private static readonly string[] RowFields =
    [
        "model", "case", "latent_size", "image_size", "batch", "warmup", "repeats", "seconds", "median_seconds", "min_seconds",
        "gflop", "gflop_by_op", "gflops", "ratio_to_matmul", "peak_rss_bytes", "peak_rss_is_per_case", "peak_anonymous_bytes", "items_per_second", "derived",
    ];

    public static void AssertSchema(JObject json, string benchmark, int rows)
    {
        Assert.That(json.Properties().Select(p => p.Name), Is.SupersetOf(TopLevel));
        Assert.That(json.Value<int>("schema_version"), Is.EqualTo(1));
        Assert.That(json.Value<string>("benchmark"), Is.EqualTo(benchmark));
        Assert.That(((JObject)json["machine"]!).Properties().Select(p => p.Name), Is.SupersetOf(MachineFields));
        Assert.That(((JObject)json["matmul_before"]!).Properties().Select(p => p.Name), Is.SupersetOf(MatmulFields));
        Assert.That(((JObject)json["matmul_after"]!).Properties().Select(p => p.Name), Is.SupersetOf(MatmulFields));
        var rowList = (JArray)json["rows"]!;
        Assert.That(rowList, Has.Count.EqualTo(rows));
        foreach (var row in rowList.Cast<JObject>())
        {
            Assert.That(row.Properties().Select(p => p.Name), Is.SupersetOf(RowFields));
            Assert.That(((JObject)row["gflop_by_op"]!).Properties().Select(p => p.Name), Is.EquivalentTo(new[] { "convolution", "linear", "attention" }));
        }
    }
}
