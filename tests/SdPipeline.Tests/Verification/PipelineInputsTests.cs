using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Models;
using SdPipeline.Tests.Support;
using SdPipeline.Schedulers;
using SdPipeline.Verification;
using SdPipeline.Verification.Checks;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Verification;

/// <summary>
/// The pipeline fixture's sidecar in every form diffusers' <c>StableDiffusionPipeline.__call__</c> takes its arguments:
/// the shared fixture's tensors under a rewritten <c>pipeline.json</c> (written into a temporary folder).
/// </summary>
public sealed class PipelineInputsTests
{
    private static DiffusersFolder TinySd => DiffusersFolder.Open(TinySdFolder.Source);

    private static string PipelineFolder(TempFolder temp, Action<JObject> edit)
    {
        string parity = ParityFolders.CopyTo(temp.File("parity"), "pipeline");
        string sidecar = Path.Combine(parity, "pipeline.json");
        var json = JObject.Parse(File.ReadAllText(sidecar));
        edit(json);
        File.WriteAllText(sidecar, json.ToString());
        return parity;
    }

    [Test]
    public void Run_Should_PassEveryPipelineRow_When_SidecarGivesDiffusersListForms()
    {
        // Given the sidecar written as a diffusers call with lists: `prompt` as a list, one negative prompt per prompt
        // (two different strings that both tokenize as the empty prompt the tensors were recorded with: white space is
        // cleaned away), and the other arguments spelled out with their values or nulls
        using var temp = new TempFolder();
        string parity = PipelineFolder(temp, json =>
        {
            json["prompt"] = json["prompts"];
            json.Remove("prompts");
            json["negative_prompt"] = new JArray("", "   ");
            json["num_images_per_prompt"] = 1;
            json["height"] = 64;
            json["width"] = 64;
            json["clip_skip"] = null;
            json["guidance_rescale"] = 0.0;
            json["timesteps"] = null;
            json["sigmas"] = null;
            json["output_type"] = "pil";
        });

        // When the folder is verified
        var rows = new ParityVerifier(TinySd, parity).Run();

        // Then every pipeline check runs and passes
        TestContext.Out.WriteLine(string.Join("\n", rows.Select(ParityTable.Line)));
        Assert.That(rows.Select(r => r.Check), Is.SupersetOf(new[] { "pipeline.input_ids", "pipeline.prompt_embeds", "pipeline.latents", "pipeline.image" }));
        Assert.That(rows.Where(r => !r.Passed).Select(ParityTable.Line), Is.Empty);
    }

    [Test]
    public void Read_Should_RepeatEachPromptAndItsNegative_When_SidecarAsksForSeveralImagesPerPrompt()
    {
        // Given prompts as a list, one negative prompt each, two images per prompt, and diffusers' defaults left out
        using var temp = new TempFolder();
        string parity = PipelineFolder(temp, json =>
        {
            json["prompts"] = new JArray("a cat", "a dog");
            json["negative_prompt"] = new JArray("blurry", "dark");
            json["num_images_per_prompt"] = 2;
            json["clip_skip"] = 1;
            json.Remove("guidance_scale");
            json.Remove("num_inference_steps");
        });
        using var fixture = ParityFixture.Open(parity, "pipeline");

        // When the inputs are read
        var inputs = PipelineInputs.Read(fixture, SchedulerConfig.Load(Path.Combine(TinySdFolder.Source, "scheduler", "scheduler_config.json")));

        // Then images come prompt by prompt, as diffusers repeats the embeddings, each with its own negative prompt
        Assert.That(inputs.ImagePrompts, Is.EqualTo(new[] { "a cat", "a cat", "a dog", "a dog" }));
        Assert.That(inputs.ImageNegativePrompts, Is.EqualTo(new[] { "blurry", "blurry", "dark", "dark" }));
        Assert.That(inputs.PromptsForRows("input_ids", 2, negative: true), Is.EqualTo(new[] { "blurry", "dark" }));
        Assert.That((inputs.GuidanceScale, inputs.Steps, inputs.ClipSkip), Is.EqualTo((7.5, 50, 1)));
    }

    [Test]
    public void Read_Should_GiveTheStringToEveryPrompt_When_PromptAndNegativePromptAreStrings()
    {
        // Given diffusers' single-prompt form: `prompt` and `negative_prompt` as strings
        using var temp = new TempFolder();
        string parity = PipelineFolder(temp, json =>
        {
            json.Remove("prompts");
            json["prompt"] = "a fox";
            json["negative_prompt"] = "blurry";
        });
        using var fixture = ParityFixture.Open(parity, "pipeline");

        // When the inputs are read
        var inputs = PipelineInputs.Read(fixture, SchedulerConfig.Load(Path.Combine(TinySdFolder.Source, "scheduler", "scheduler_config.json")));

        // Then there is one prompt with its negative prompt
        Assert.That((inputs.Prompts, inputs.NegativePrompts), Is.EqualTo((new[] { "a fox" }, new[] { "blurry" })));
    }

    [TestCase("negative_prompt", "[\"\", \"\", \"\"]", "'negative_prompt' lists 3 prompts for 2 prompts")]
    [TestCase("negative_prompt", "7", "'negative_prompt' is Integer; expected a string, a list of strings")]
    [TestCase("num_images_per_prompt", "2", "init_latents holds 2 images; 2 prompts × num_images_per_prompt 2 make 4")]
    [TestCase("height", "512", "height 512, but init_latents are 32 high (64 px)")]
    [TestCase("guidance_rescale", "0.7", "guidance_rescale 0.7 is not implemented")]
    [TestCase("timesteps", "[999, 500]", "custom 'timesteps' are not implemented")]
    public void Run_Should_NameTheArgument_When_SidecarAsksForWhatTheRecordingCannotBe(string key, string value, string message)
    {
        // Given a sidecar whose argument disagrees with the recorded tensors, or asks for what this pipeline lacks
        using var temp = new TempFolder();
        string parity = PipelineFolder(temp, json => json[key] = JToken.Parse(value));

        // When the folder is verified
        var rows = new ParityVerifier(TinySd, parity).Run();

        // Then the generation rows cannot be interpreted, and say which argument and why
        var latents = rows.Single(r => r.Check == "pipeline.latents");
        Assert.That(latents.Passed, Is.False);
        Assert.That(latents.Note, Does.StartWith("cannot interpret:").And.Contain(message));
    }
}
