using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Benchmarks;

/// <summary><c>sdpipe bench</c> as a user runs it, on the tiny fixture configs so that it takes seconds.</summary>
public sealed class BenchCommandTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    internal static string TinyConfig(string component) => Path.Combine(RepoPaths.Fixtures, "tiny-sd", component, "config.json");

    private ProcessResult Sdpipe(params string[] arguments) => CliRunner.Sdpipe(_temp.Path, null, arguments);

    [Test]
    public void BenchUnet_Should_WriteForwardAndBackwardRows_To_TheDefaultJson()
    {
        // When the tiny UNet is benchmarked at one 8×8 size, one timed run, no warm-up
        var result = Sdpipe("bench", "unet", "--sizes", "8", "--repeats", "1", "--warmup", "0", "--threads", "1",
            "--matmul-size", "128", "--config-file", TinyConfig("unet"));

        // Then it succeeds, prints the table, and writes artifacts/bench/unet.json with a forward and a forward+backward row
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Contain("forward_backward").And.Contain("GFLOP/s"));
        var json = JObject.Parse(File.ReadAllText(_temp.File("artifacts/bench/unet.json")));
        BenchJson.AssertSchema(json, "unet", rows: 2);
        Assert.That(json.Value<string>("model_config"), Is.EqualTo(TinyConfig("unet")));
        Assert.That(json.Value<long>("parameters"), Is.EqualTo(1_427_012L));
        Assert.That(json["machine"]!.Value<int>("threads"), Is.EqualTo(1));
        Assert.That(json["matmul_before"]!.Value<int>("size"), Is.EqualTo(128));
        var rows = json["rows"]!;
        Assert.That(rows.Select(r => r.Value<string>("case")), Is.EqualTo(new[] { "forward", "forward_backward" }));
        foreach (var row in rows)
        {
            Assert.That(row.Value<int>("latent_size"), Is.EqualTo(8));
            Assert.That(row.Value<int>("image_size"), Is.EqualTo(64));
            Assert.That(row["seconds"]!.Count(), Is.EqualTo(1));
            Assert.That(row.Value<double>("gflops"), Is.EqualTo(row.Value<double>("gflop") / row.Value<double>("median_seconds")).Within(1e-6).Percent);
            Assert.That(row.Value<long>("peak_rss_bytes"), Is.GreaterThan(0));
            // the tiny UNet's runs on top of the runtime: anonymous memory is most of the resident memory, not all of it
            if (OperatingSystem.IsLinux())
                Assert.That(row.Value<long>("peak_anonymous_bytes"), Is.InRange(row.Value<long>("peak_rss_bytes") / 4, row.Value<long>("peak_rss_bytes")));
        }
        Assert.That(result.Output, Does.Contain("peak anon"));
        // forward+backward costs about 3× the forward (less the layers whose input needs no gradient)
        double ratio = rows[1]!.Value<double>("gflop") / rows[0]!.Value<double>("gflop");
        Assert.That(ratio, Is.InRange(2.5, 3.0));
    }

    [Test]
    public void BenchTrainStep_Should_WriteEveryPhase_ProbeTheMatmulAfterEachTimedStep_And_SetTheEstimateBesideThePeak()
    {
        // When a training step of the tiny UNet is benchmarked at 8×8, two timed steps after the default warm-ups
        string output = _temp.File("train.json");
        var result = Sdpipe("bench", "train-step", "--sizes", "8", "--repeats", "2", "--threads", "1",
            "--matmul-size", "128", "--config-file", TinyConfig("unet"), "--output", output);

        // Then each phase has a row of two runs, the matmul after the model holds one probe per timed step besides its
        // own five runs, and the summary sets the pre-flight estimate beside the measured peak
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        var json = JObject.Parse(File.ReadAllText(output));
        BenchJson.AssertSchema(json, "train_step", rows: 5);
        Assert.That(json["rows"]!.Select(r => r.Value<string>("case")), Is.EqualTo(new[] { "forward", "backward", "forward_backward", "adamw", "step" }));
        Assert.That(json["rows"]!.Select(r => r["seconds"]!.Count()), Is.All.EqualTo(2));
        Assert.That(json["matmul_before"]!["seconds"]!.Count(), Is.EqualTo(5));
        Assert.That(json["matmul_after"]!["seconds"]!.Count(), Is.EqualTo(2 + 5));
        var summary = (JObject)json["summary"]!;
        Assert.That(summary.Value<double>("peak_rss_gib"), Is.GreaterThan(0));
        if (OperatingSystem.IsLinux())
            Assert.That(summary.Value<double>("peak_anonymous_gib"), Is.InRange(0.01, summary.Value<double>("peak_rss_gib")));
        // weights, gradients and AdamW's moments of 1.4 M parameters are ~0.02 GiB: the estimate is mostly the runtime allowance
        Assert.That(summary.Value<double>("preflight_estimate_gib"), Is.InRange(0.5, 1.0));
        // two warm-ups, as PyTorch's figures were timed; the first (the log's "warm-up 1/2: X s") and its ratio to the
        // median timed step in the summary
        Assert.That(result.All, Does.Contain("warm-up 2/2: "));
        var warmup = Regex.Match(result.All, @"warm-up 1/2: (\d+\.\d{3}) s");
        Assert.That(warmup.Success, result.All);
        Assert.That(summary.Value<double>("warmup_step_seconds"), Is.EqualTo(double.Parse(warmup.Groups[1].Value, CultureInfo.InvariantCulture)).Within(0.0006));
        double medianStep = json["rows"]!.Single(r => r.Value<string>("case") == "step").Value<double>("median_seconds");
        Assert.That(summary.Value<double>("warmup_over_step"), Is.EqualTo(summary.Value<double>("warmup_step_seconds") / medianStep).Within(0.006));
        Assert.That(result.All, Does.Contain("step/matmul"));
    }

    [Test]
    public void BenchVae_Should_WriteEncodeDecodeAndCombinedRows_To_TheGivenFile()
    {
        // When the tiny VAE (one downsampling: images are 2× the latents) is benchmarked at latent size 8
        var result = Sdpipe("bench", "vae", "--sizes", "8", "--repeats", "1", "--warmup", "0", "--matmul-size", "64",
            "--config-file", TinyConfig("vae"), "--output", "out/vae.json");

        // Then encode, decode and the derived encode+decode rows are written
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        var json = JObject.Parse(File.ReadAllText(_temp.File("out/vae.json")));
        BenchJson.AssertSchema(json, "vae", rows: 3);
        var rows = json["rows"]!;
        Assert.That(rows.Select(r => r.Value<string>("case")), Is.EqualTo(new[] { "encode", "decode", "encode_decode" }));
        Assert.That(rows.Select(r => r.Value<int>("image_size")), Is.All.EqualTo(16));
        Assert.That(rows.Select(r => r.Value<bool>("derived")), Is.EqualTo(new[] { false, false, true }));
        Assert.That(rows[2]!.Value<double>("median_seconds"),
            Is.EqualTo(rows[0]!.Value<double>("median_seconds") + rows[1]!.Value<double>("median_seconds")).Within(1e-9));
    }

    [TestCase("--sizes", "32,abc")]
    [TestCase("--sizes", "0")]
    [TestCase("--repeats", "0")]
    [TestCase("--warmup", "-1")]
    public void Bench_Should_ExitWith2_When_AnOptionIsOutOfRange(string option, string value)
    {
        var result = Sdpipe("bench", "unet", option, value);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("error:"));
    }

    [Test]
    public void Bench_Should_ExitWith2_And_NameTheFile_When_TheConfigFileIsMissing()
    {
        var result = Sdpipe("bench", "unet", "--config-file", "no/such/config.json", "--matmul-size", "16");

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("no/such/config.json"));
    }

    [Test]
    public void Bench_Should_StopAfterTheRunUnderWay_And_WriteNoReport_When_SigtermArrives()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("sends SIGTERM with kill(1)");

        // Given a benchmark of far more runs than the test waits for, under way
        string output = _temp.File("unet.json");
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = _temp.Path, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string argument in new[] { RepoPaths.CliDll, "bench", "unet", "--sizes", "8", "--repeats", "100000", "--warmup", "0",
                     "--threads", "1", "--matmul-size", "64", "--config-file", TinyConfig("unet"), "--output", output })
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = new System.Text.StringBuilder();
        var running = new ManualResetEventSlim();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) stderr.AppendLine(e.Data);
            if (e.Data.Contains("run 2/100000")) running.Set();
        };
        process.BeginErrorReadLine();
        try
        {
            Assert.That(running.Wait(TimeSpan.FromMinutes(3)), Is.True, () => $"the benchmark did not start its runs:\n{stderr}");

            // When SIGTERM arrives (as from `kill`, a CI runner's cancel or a container's stop)
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();

            // Then it exits soon with the interrupted code, says so, and writes no report
            Assert.That(process.WaitForExit(TimeSpan.FromSeconds(60)), Is.True, "the benchmark kept running after SIGTERM");
            process.WaitForExit();
            Assert.That(process.ExitCode, Is.EqualTo(1), stderr.ToString());
            Assert.That(stderr.ToString(), Does.Contain("interrupted: no report written"));
            Assert.That(stderr.ToString(), Does.Not.Contain("run 100000/100000"));
            Assert.That(File.Exists(output), Is.False);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
