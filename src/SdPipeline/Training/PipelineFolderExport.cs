using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;
using SdPipeline.Weights;

namespace SdPipeline.Training;

/// <summary>
/// The pieces of the train artifact's <c>pipeline/</c> folder that make it load with a plain
/// <c>StableDiffusionPipeline.from_pretrained(folder)</c>, however the base model was fetched.
/// </summary>
public static class PipelineFolderExport
{
    /// <summary>
    /// The base's <c>model_index.json</c> with every component the folder does not hold set to <c>[null, null]</c>.
    /// diffusers loads a listed component whose subfolder is missing from the folder's root instead, and fails there: SD 1.5
    /// lists <c>safety_checker</c> and <c>feature_extractor</c>, which the model stage does not fetch. Without the safety
    /// checker, <c>requires_safety_checker</c> becomes false, as diffusers' own single-file conversion writes it.
    /// </summary>
    /// <param name="baseIndex">The base model's <c>model_index.json</c>.</param>
    /// <param name="components">The component folders the pipeline folder holds (the scheduler among them).</param>
    public static JObject ModelIndex(JObject baseIndex, IReadOnlyCollection<string> components)
    {
        ArgumentNullException.ThrowIfNull(baseIndex);
        var index = (JObject)baseIndex.DeepClone();
        foreach (var property in index.Properties().ToList())
        {
            if (property.Name.StartsWith('_') || components.Contains(property.Name)) continue;
            if (property.Value is not JArray { Count: 2 } entry || entry[0].Type == JTokenType.Null) continue;
            property.Value = new JArray(JValue.CreateNull(), JValue.CreateNull());
            if (property.Name == "safety_checker") index["requires_safety_checker"] = false;
        }
        return index;
    }

    /// <summary>
    /// The base's <c>scheduler_config.json</c> recording what the trained UNet predicts, in a form diffusers reads as
    /// written (a key listed under <c>_use_default_values</c> would be replaced by the scheduler class's default).
    /// </summary>
    /// <param name="baseScheduler">The base model's scheduler config; left as it was.</param>
    /// <param name="predictionType">What the trained UNet predicts.</param>
    public static JObject SchedulerConfig(JObject baseScheduler, string predictionType)
    {
        ArgumentNullException.ThrowIfNull(baseScheduler);
        var scheduler = (JObject)baseScheduler.DeepClone();
        DiffusersConfigWriter.Set(scheduler, "prediction_type", predictionType);
        return scheduler;
    }

    /// <summary>
    /// Links a base component into the pipeline folder. Without a variant the whole folder is linked. With one
    /// (<c>model.variant=fp16</c>) each file is linked by itself, a variant's weights under the plain name
    /// (<c>diffusion_pytorch_model.fp16.safetensors</c> as <c>diffusion_pytorch_model.safetensors</c>): diffusers loads a
    /// folder without <c>variant=</c> from the plain names only, and the variant is what training read.
    /// </summary>
    /// <param name="source">The base model's component folder.</param>
    /// <param name="destination">The link or folder to make inside the pipeline folder.</param>
    /// <param name="variant">The precision variant, or null.</param>
    public static void LinkComponent(string source, string destination, string? variant)
    {
        string target = Path.GetFullPath(source);
        if (variant is null)
        {
            Directory.CreateSymbolicLink(destination, target);
            return;
        }
        Directory.CreateDirectory(destination);
        // Link name → file: a variant's file under its plain name, in the place of a plain file of that name.
        var links = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string file in Directory.EnumerateFiles(target).Select(Path.GetFileName).OfType<string>())
        {
            if (DiffusersFolder.IsVariantFile(file, variant)) links[DiffusersFolder.PlainName(file, variant)] = file;
            else links.TryAdd(file, file);
        }
        foreach (var (name, file) in links)
            File.CreateSymbolicLink(Path.Combine(destination, name), Path.Combine(target, file));
    }
}
