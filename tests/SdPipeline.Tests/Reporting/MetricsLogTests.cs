using SdPipeline.Reporting;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Reporting;

public sealed class MetricsLogTests
{
    [Test]
    public void Parse_Should_ReadTrainAndEvalLines_And_IgnoreUnknownFieldsAndOtherKinds()
    {
        // Given the documented line formats, an unknown field and a line of another kind
        string[] lines =
        [
            """{"kind":"train","step":12,"epoch":0,"loss":0.123,"lr":0.0001,"grad_norm":0.8,"loss_scale":null,"skipped":false,"step_time_s":0.31,"images_per_s":25.8,"peak_memory_bytes":123456789,"extra":{"a":1}}""",
            "",
            """{"kind":"eval","step":100,"heldout_loss":0.11,"heldout_loss_shuffled":0.13}""",
            """{"kind":"checkpoint","step":100}""",
        ];

        // When
        var log = MetricsLog.Parse(lines, "metrics.jsonl");

        // Then
        Assert.That(log.Train, Is.EqualTo(new[] { new TrainMetric(12, 0, 0.123, 0.0001, 0.8, null, false, 0.31, 25.8, 123456789) }));
        Assert.That(log.Eval, Has.Count.EqualTo(1));
        Assert.That(log.Eval[0].HeldoutLoss, Is.EqualTo(0.11));
        Assert.That(log.Eval[0].CaptionShuffleGap, Is.EqualTo(0.02).Within(1e-12));
    }

    [Test]
    public void Parse_Should_KeepASkippedStep_When_ItsLossIsNull()
    {
        var log = MetricsLog.Parse(["""{"kind":"train","step":7,"loss":null,"skipped":true,"loss_scale":32768}"""], "m");

        Assert.That(log.Train[0].Skipped, Is.True);
        Assert.That(log.Train[0].Loss, Is.Null);
        Assert.That(log.Train[0].LossScale, Is.EqualTo(32768));
    }

    [Test]
    public void Read_Should_ReadAnFp16SkippedStep_AsTheTrainerWritesIt()
    {
        // Given a step the fp16 loss scaler skipped, written as the trainer writes it: no gradient norm was measured
        // (GradientClip.None's NaN), the loss of its forward finite
        using var temp = new TempFolder();
        string path = temp.File(SdPipeline.Training.FineTuner.MetricsFile);
        using (var metrics = new SdPipeline.Training.MetricsWriter(path, 0))
            metrics.Write(new Newtonsoft.Json.Linq.JObject
            {
                ["kind"] = "train", ["step"] = 1, ["loss"] = 0.5, ["lr"] = 1e-4, ["grad_norm"] = double.NaN,
                ["loss_scale"] = 65536.0, ["skipped"] = true, ["step_time_s"] = 0.2, ["images_per_s"] = 20.0,
            });

        // When
        var log = MetricsLog.Read(path);

        // Then the step is read, its norm not a number
        Assert.That(log.Train, Has.Count.EqualTo(1));
        Assert.That(log.Train[0].Skipped, Is.True);
        Assert.That(log.Train[0].GradNorm, Is.NaN);
    }

    [Test]
    public void Read_Should_NameFileAndLine_When_ALineIsNotJson()
    {
        // Given a log whose third line was cut off mid-write
        using var temp = new TempFolder();
        string path = temp.File("metrics.jsonl");
        File.WriteAllLines(path, ["""{"kind":"train","step":1,"loss":0.5}""", "", """{"kind":"train","step":2,"lo"""]);

        // When / Then
        var error = Assert.Throws<InvalidDataException>(() => MetricsLog.Read(path));
        Assert.That(error!.Message, Does.StartWith($"{path} line 3: not valid JSON"));
    }

    [TestCase("""{"kind":"train","loss":0.5}""", "line 1: the \"train\" line lacks the required field \"step\"")]
    [TestCase("""{"kind":"train","step":1}""", "line 1: the \"train\" line lacks the required field \"loss\"")]
    [TestCase("""{"kind":"train","step":"one","loss":0.5}""", "field \"step\" is \"one\", not a whole number")]
    [TestCase("""{"kind":"eval","step":1,"heldout_loss":"low"}""", "field \"heldout_loss\" is \"low\", not a number")]
    [TestCase("""{"step":1,"loss":0.5}""", "line 1: the metrics line has no string field \"kind\"")]
    [TestCase("""[1,2]""", "line 1: expected a JSON object, got Array")]
    public void Parse_Should_SayWhatIsWrong_When_ALineIsMalformed(string line, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => MetricsLog.Parse([line], "run/metrics.jsonl"));

        Assert.That(error!.Message, Does.StartWith("run/metrics.jsonl line 1:"));
        Assert.That(error.Message, Does.Contain(expected));
    }
}
