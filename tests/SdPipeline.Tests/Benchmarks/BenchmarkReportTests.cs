using Newtonsoft.Json.Linq;
using SdPipeline.Benchmarks;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Benchmarks;

public sealed class BenchmarkReportTests
{
    private static readonly MachineInfo Machine = new("host", "Linux", "cpu", 2, 1L << 34, ".NET 10", "0.107.0", "2.10.0", "cpu", 2, 2);

    private static BenchmarkReport Report()
    {
        var harness = new BenchmarkHarness(warmup: 1, repeats: 3);
        // 100 GFLOP forward, 200 GFLOP backward; ceiling median of {1, 2, 2, 3} s for 2·1000³ FLOP = 1 GFLOP/s
        var flops = new FlopCount(60e9, 30e9, 10e9, 120e9, 60e9, 20e9);
        var before = new MatmulCeiling(1000, [1.0, 2.0]);
        var after = new MatmulCeiling(1000, [2.0, 3.0]);
        double ceiling = BenchmarkReport.PooledMatmulGflops(before, after);
        var forward = BenchmarkRow.Measured("unet", "forward", 32, 256, 2, harness, new Timing([4.0, 5.0, 6.0], 1L << 30, true, 3L << 28), flops, ceiling);
        var backward = BenchmarkRow.Measured("unet", "forward_backward", 32, 256, 2, harness, new Timing([9.0, 10.0, 30.0], 2L << 30, true), flops, ceiling, backward: true);
        return new BenchmarkReport
        {
            Benchmark = "unet",
            CreatedUtc = new DateTime(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc),
            Machine = Machine,
            ModelConfig = "sd15",
            Parameters = 859_520_964,
            Seed = 0,
            MatmulBefore = before,
            MatmulAfter = after,
            Rows = [forward, backward, BenchmarkRow.Sum("both", forward, backward, ceiling)],
        };
    }

    [Test]
    public void Rows_Should_DeriveRateRatioAndThroughput_From_MedianAndFlops()
    {
        var rows = Report().Rows;

        // forward: 100 GFLOP in a median 5 s = 20 GFLOP/s, against a pooled ceiling of 2·10⁹ / 2 s = 1 GFLOP/s
        Assert.That(rows[0].Gflop, Is.EqualTo(100).Within(1e-9));
        Assert.That(rows[0].MedianSeconds, Is.EqualTo(5.0));
        Assert.That(rows[0].MinSeconds, Is.EqualTo(4.0));
        Assert.That(rows[0].Gflops, Is.EqualTo(20).Within(1e-9));
        Assert.That(rows[0].RatioToMatmul, Is.EqualTo(20).Within(1e-9));
        Assert.That(rows[0].ItemsPerSecond, Is.EqualTo(0.4));
        // forward+backward: 300 GFLOP in 10 s; by op: convolution 60 + 120
        Assert.That(rows[1].Gflop, Is.EqualTo(300).Within(1e-9));
        Assert.That(rows[1].Gflops, Is.EqualTo(30).Within(1e-9));
        Assert.That(rows[1].GflopByOp["convolution"], Is.EqualTo(180).Within(1e-9));
        // the sum row adds medians and FLOPs and says it was not timed
        Assert.That(rows[2].MedianSeconds, Is.EqualTo(15.0));
        Assert.That(rows[2].Gflop, Is.EqualTo(400).Within(1e-9));
        Assert.That(rows[2].Derived, Is.True);
        Assert.That(rows[2].PeakRssBytes, Is.EqualTo(2L << 30));
        // a derived row knows its anonymous peak only when both of its rows do
        Assert.That(rows[0].PeakAnonymousBytes, Is.EqualTo(3L << 28));
        Assert.That(rows[2].PeakAnonymousBytes, Is.Null);
    }

    [Test]
    public void Write_Should_ProduceTheDocumentedSnakeCaseJson()
    {
        // Given a report
        using var temp = new TempFolder();
        string path = temp.File("nested/bench/unet.json");

        // When it is written (into a folder that does not exist yet)
        Report().Write(path);

        // Then the JSON carries the schema other tools read
        var json = JObject.Parse(File.ReadAllText(path));
        BenchJson.AssertSchema(json, "unet", rows: 3);
        Assert.That(json.Value<double>("matmul_gflops"), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(json["machine"]!.Value<int>("threads"), Is.EqualTo(2));
        Assert.That(json["rows"]![1]!.Value<string>("case"), Is.EqualTo("forward_backward"));
        Assert.That(json["rows"]![0]!["seconds"]!.Values<double>(), Is.EqualTo(new[] { 4.0, 5.0, 6.0 }));
        Assert.That(json.Value<DateTime>("created_utc"), Is.EqualTo(new DateTime(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc)));
    }

    [Test]
    public void Table_Should_ListEveryRow_With_RateAndShareOfMatmul()
    {
        string table = BenchmarkTable.Format(Report());

        Assert.That(table, Does.Contain("GFLOP/s").And.Contain("of matmul"));
        Assert.That(table, Does.Contain("forward_backward"));
        Assert.That(table, Does.Contain("2000%"), "forward: 20 GFLOP/s on a 1 GFLOP/s ceiling");
        Assert.That(table, Does.Contain("not timed"));
        // the anonymous peak where sampled (0.75 GiB), a dash where not, and what it leaves out
        Assert.That(table, Does.Contain("peak anon").And.Contain("0.75 GiB").And.Contain("file pages"));
        Assert.That(table.Split('\n').Single(l => l.StartsWith("unet", StringComparison.Ordinal) && l.Contains("forward_backward", StringComparison.Ordinal)), Does.Contain(" - "));
    }
}
