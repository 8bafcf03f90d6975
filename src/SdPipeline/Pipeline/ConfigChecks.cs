using SdPipeline.BaseModel;
using SdPipeline.Config;

namespace SdPipeline.Pipeline;

/// <summary>
/// What each stage would refuse in the config, found before anything runs: <c>sdpipe run</c> refuses its own stage's
/// (exit 2) and warns about every downstream stage's as it starts, so the first stage of a chain (the model, in
/// seconds) already says that sampling will fail, not the last after hours of training. A test puts every shipped
/// config through them.
/// </summary>
public static class ConfigChecks
{
    /// <summary>The problems of <paramref name="stage"/>'s settings in <paramref name="config"/>; empty when it can run.</summary>
    public static IReadOnlyList<string> Check(string stage, EffectiveConfig config)
    {
        var problems = new List<string>();
        var typed = config.Typed;
        switch (stage)
        {
            case "model":
                if (SingleFile(typed.Model.Base) && typed.Model.SingleFileConfig.Length == 0)
                    problems.Add("model.base is a single-file checkpoint, which carries no tokenizer: set model.single_file_config to a diffusers folder of the same architecture (its tokenizer/ is used)");
                break;
            case "train":
                if (typed.Train.MaxTrainSteps <= 0 && typed.Train.NumTrainEpochs <= 0)
                    problems.Add("train: neither train.max_train_steps nor train.num_train_epochs is positive, so there is nothing to train");
                break;
            case "sample":
                if (typed.Sample.Prompts.Length == 0 && typed.Sample.HeldoutPrompts <= 0)
                    problems.Add("sample: no prompts; set sample.prompts (a JSON list) or sample.heldout_prompts");
                if (typed.Sample.Seeds.Length == 0)
                    problems.Add("sample: sample.seeds is empty, so no image would be made");
                break;
        }
        return problems;
    }

    private static bool SingleFile(string modelBase)
    {
        try
        {
            return BaseModelSource.Parse(modelBase) is BaseModelSource.SingleFile;
        }
        catch (ConfigException)
        {
            return false; // reported by the model stage itself
        }
    }
}
