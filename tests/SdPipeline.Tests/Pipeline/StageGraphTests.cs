using SdPipeline.Pipeline;
using SdPipeline.Stages;

namespace SdPipeline.Tests.Pipeline;

public sealed class StageGraphTests
{
    [Test]
    public void Downstream_Should_FollowEdgesTransitively()
    {
        Assert.That(ProjectStages.Graph.Downstream("download"), Is.EqualTo(new[] { "latents", "train", "sample", "report" }));
        Assert.That(ProjectStages.Graph.Downstream("report"), Is.Empty);
    }

    [Test]
    public void Constructor_Should_Reject_When_UpstreamIsDefinedLater()
    {
        Assert.Throws<ArgumentException>(() => new StageGraph(
        [
            new StageDefinition("b", "B", 1, [], ["a"], ""),
            new StageDefinition("a", "A", 1, [], [], ""),
        ]));
    }

    [Test]
    public void Get_Should_NameTheClosestStage_When_NameIsUnknown()
    {
        var error = Assert.Throws<SdPipeline.Config.ConfigException>(() => ProjectStages.Graph.Get("downlod"))!;
        Assert.That(error.Message, Does.Contain("did you mean 'download'"));
    }

    [Test]
    public void EveryStageConfigKey_Should_ExistInTheSchema()
    {
        var config = SdPipeline.Config.ConfigLoader.Load(null);
        foreach (var stage in ProjectStages.Graph.Stages)
            Assert.DoesNotThrow(() => config.Slice(stage.ConfigKeys), stage.Name);
    }

    [Test]
    public void TokenizerCleaning_Should_KeyTheStagesThatTokenize_When_ItChanges()
    {
        // Given the stages that tokenize captions (latents) and prompts (sample), and the model stage, which does not
        var keys = ProjectStages.Graph.Stages.ToDictionary(s => s.Name, s => s.ConfigKeys);

        // Then a change of tokenizer clean-up re-encodes the captions and resamples (train follows latents), and keeps the model
        Assert.That(keys["latents"], Does.Contain("model.tokenizer_cleaning"));
        Assert.That(keys["sample"], Does.Contain("model.tokenizer_cleaning"));
        Assert.That(keys["model"], Does.Not.Contain("model.tokenizer_cleaning"));
        Assert.That(ProjectStages.Graph.Downstream("latents"), Does.Contain("train"));
    }
}
