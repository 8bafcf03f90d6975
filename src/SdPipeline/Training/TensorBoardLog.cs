using Newtonsoft.Json.Linq;
using TorchSharp;

namespace SdPipeline.Training;

/// <summary>
/// The training signals of <c>metrics.jsonl</c> as TensorBoard event files (TorchSharp's
/// <c>torch.utils.tensorboard.SummaryWriter</c>) in <c>tensorboard/</c> beside it, written as each record is, so
/// <c>tensorboard --logdir artifacts/train</c> follows a run live: <c>train/loss</c>, <c>train/lr</c>,
/// <c>train/grad_norm</c>, <c>train/loss_scale</c>, <c>train/images_per_s</c>, <c>eval/heldout_loss</c>,
/// <c>eval/shuffled_loss</c> and <c>eval/caption_shuffle_gap</c>. A resumed run appends, so the steps between the
/// checkpoint and the interruption appear twice in TensorBoard (metrics.jsonl itself is cut back). The validation
/// images (<see cref="ValidationImages"/>) go into the same file, as TensorBoard follows one writer per folder.
/// </summary>
public sealed class TensorBoardLog
{
    /// <summary>The folder inside the run folder.</summary>
    public const string FolderName = "tensorboard";

    private static readonly string[] TrainFields = ["loss", "lr", "grad_norm", "loss_scale", "images_per_s"];

    private readonly TorchSharp.Modules.SummaryWriter _writer;

    /// <summary>Opens (or continues) the event log in <c>tensorboard/</c> of <paramref name="runFolder"/>.</summary>
    public TensorBoardLog(string runFolder)
    {
        string folder = Path.Combine(runFolder, FolderName);
        Directory.CreateDirectory(folder);
        _writer = torch.utils.tensorboard.SummaryWriter(folder);
    }

    /// <summary>Writes the scalars of one metrics record (<c>kind</c> train or eval, with its <c>step</c>).</summary>
    public void Write(JObject record)
    {
        if (record.Value<long?>("step") is not long step) return;
        switch (record.Value<string>("kind"))
        {
            case "train":
                foreach (string field in TrainFields)
                    Scalar($"train/{field}", record[field], step);
                break;
            case "eval":
                Scalar("eval/heldout_loss", record["heldout_loss"], step);
                Scalar("eval/shuffled_loss", record["heldout_loss_shuffled"], step);
                if (record.Value<double?>("heldout_loss") is double loss && record.Value<double?>("heldout_loss_shuffled") is double shuffled)
                    _writer.add_scalar("eval/caption_shuffle_gap", (float)(shuffled - loss), (int)step);
                break;
        }
    }

    /// <summary>Writes the image file at <paramref name="pngPath"/> as an image summary under <paramref name="tag"/> at <paramref name="step"/>.</summary>
    public void Image(string tag, string pngPath, long step) => _writer.add_img(tag, pngPath, (int)step);

    private void Scalar(string tag, JToken? value, long step)
    {
        if (value is { Type: JTokenType.Float or JTokenType.Integer } && value.Value<double>() is var number && double.IsFinite(number))
            _writer.add_scalar(tag, (float)number, (int)step);
    }
}
