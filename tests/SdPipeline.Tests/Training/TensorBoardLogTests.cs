using System.Text;
using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;
using SdPipeline.Training;

namespace SdPipeline.Tests.Training;

/// <summary>metrics.jsonl's records mirrored into TensorBoard event files as they are written.</summary>
public sealed class TensorBoardLogTests
{
    [Test]
    public void MetricsRecords_Should_AppearAsTensorBoardScalars_When_Written()
    {
        using var temp = new TempFolder();
        using (var metrics = new MetricsWriter(temp.File(FineTuner.MetricsFile), 0))
        {
            metrics.Write(new JObject { ["kind"] = "eval", ["step"] = 0, ["heldout_loss"] = 0.5, ["heldout_loss_shuffled"] = 0.6 });
            metrics.Write(new JObject { ["kind"] = "train", ["step"] = 1, ["loss"] = 0.4, ["lr"] = 1e-4, ["grad_norm"] = 2.0, ["loss_scale"] = null });
        }

        var events = Directory.GetFiles(Path.Combine(temp.Path, TensorBoardLog.FolderName), "events.out.tfevents.*");
        Assert.That(events, Has.Length.EqualTo(1), "TensorBoard finds runs by this file-name prefix");
        string content = Encoding.Latin1.GetString(File.ReadAllBytes(events[0]));
        foreach (string tag in new[] { "train/loss", "train/lr", "train/grad_norm", "eval/heldout_loss", "eval/shuffled_loss", "eval/caption_shuffle_gap" })
            Assert.That(content, Does.Contain(tag), tag);
        Assert.That(content, Does.Not.Contain("train/loss_scale"), "a null field (no loss scaler) is not a scalar");
    }
}
