using SdPipeline.Config;

namespace SdPipeline.Tests.Config;

/// <summary>"Did you mean" for people who type diffusers' train_text_to_image.py argument names.</summary>
public sealed class DiffusersArgumentsTests
{
    [Test]
    public void ArgparseName_Should_PointAtOurKey_When_SetWithoutASection()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, ["pretrained_model_name_or_path=hf:a/b"]));
        Assert.That(error!.Message, Does.Contain("did you mean 'model.base'").And.Contain("--pretrained_model_name_or_path"));
    }

    [Test]
    public void UnsupportedArgparseName_Should_SayWhyAndWhatHelpsInstead()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, ["train.use_8bit_adam=true"]));
        Assert.That(error!.Message, Does.Contain("not supported").And.Contain("train.method=lora"));
    }

    [TestCase("pretrained_vae_model_name_or_path=madebyollin/sdxl-vae-fp16-fix", "float32")]
    [TestCase("timestep_bias_strategy=later", "uniformly")]
    public void SdxlScriptArgument_Should_SayWhyItIsNotSupported_InsteadOfGuessingAnUnrelatedKey(string setting, string reason)
    {
        // The argument of configs/sdxl.json's own recipe (diffusers' README_sdxl.md); it was answered "did you mean 'train.fused_backward_pass'?"
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, [setting]));
        Assert.That(error!.Message, Does.Contain("not supported").And.Contain(reason).And.Not.Contain("did you mean"));
    }

    [TestCase("network_dim=16", "train.lora_rank")]
    [TestCase("enable_bucket=true", "latents.bucketing")]
    [TestCase("min_bucket_reso=256", "latents.bucket_min_side")]
    [TestCase("caption_dropout_rate=0.1", "train.caption_dropout")]
    public void KohyaArgument_Should_PointAtOurKey_NamingKohya(string setting, string key)
    {
        // sd-scripts' LoRA arguments (train_network.py, sdxl_train_network.py): network_dim was answered "did you mean 'latents.seed'?"
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, [setting]));
        Assert.That(error!.Message, Does.Contain($"did you mean '{key}'").And.Contain("kohya's --"));
    }

    [Test]
    public void EveryMappedKey_Should_ExistInTheSchema()
    {
        foreach (var (name, target) in DiffusersArguments.Map.Concat(DiffusersArguments.Kohya).Where(p => !p.Value.Contains(' ')))
            Assert.That(ConfigSchema.Find(target), Is.Not.Null, $"--{name} → {target}");
    }

    [Test]
    public void UnknownNonDiffusersKey_Should_StillGetTheNearestSpelling()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, ["train.learning_rat=1"]));
        Assert.That(error!.Message, Does.Contain("did you mean 'train.learning_rate'"));
    }
}
