using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Schedulers;
using SdPipeline.Tokenization;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification;

/// <summary>
/// The components of the model folder under test, each loaded once (CPU, float32, eval mode) and shared by the
/// checks. A component that is absent or fails to load is remembered, and every access to it throws
/// <see cref="ModelComponentException"/> naming the folder, so only the rows that need it fail.
/// </summary>
internal sealed class ModelComponents : IDisposable
{
    public const string Tokenizer = "tokenizer";
    public const string TextEncoder = "text_encoder";
    public const string Tokenizer2 = "tokenizer_2";
    public const string TextEncoder2 = "text_encoder_2";
    public const string Unet = "unet";
    public const string Vae = "vae";
    public const string Scheduler = "scheduler";

    private readonly DiffusersFolder _folder;
    private readonly Dictionary<string, object> _loaded = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Exception> _failed = new(StringComparer.Ordinal);

    public ModelComponents(DiffusersFolder folder) => _folder = folder;

    /// <summary>The model folder.</summary>
    public string Root => _folder.Root;

    /// <summary>
    /// Loads the named components not loaded yet. Call it outside any dispose scope: module parameters created
    /// inside one would be freed with it.
    /// </summary>
    public void Preload(IEnumerable<string> components)
    {
        foreach (string component in components)
        {
            if (_loaded.ContainsKey(component) || _failed.ContainsKey(component)) continue;
            try
            {
                _loaded[component] = Load(component);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _failed[component] = e is ModelComponentException ? e : new ModelComponentException($"cannot load {component}/ of {Root}: {e.Message}");
            }
        }
    }

    public ClipTokenizer ClipTokenizer => Get<ClipTokenizer>(Tokenizer);

    public ClipTextModel ClipTextModel => Get<ClipTextModel>(TextEncoder);

    /// <summary>SDXL's second tokenizer (pads with "!").</summary>
    public ClipTokenizer ClipTokenizer2 => Get<ClipTokenizer>(Tokenizer2);

    /// <summary>SDXL's second text encoder.</summary>
    public ClipTextModelWithProjection ClipTextModelWithProjection => Get<ClipTextModelWithProjection>(TextEncoder2);

    /// <summary>SDXL's prompt encoding over the four text components (preload them first).</summary>
    public Sampling.SdxlPromptEncoder SdxlPromptEncoder => new(ClipTokenizer, ClipTokenizer2, ClipTextModel, ClipTextModelWithProjection);

    /// <summary>model_index.json's <c>force_zeros_for_empty_prompt</c> (diffusers' default: true).</summary>
    public bool ForceZerosForEmptyPrompt => Sampling.StableDiffusionXLPipeline.ReadForceZerosForEmptyPrompt(_folder);

    public UNet2DConditionModel UNet => Get<UNet2DConditionModel>(Unet);

    public AutoencoderKL AutoencoderKL => Get<AutoencoderKL>(Vae);

    public SchedulerConfig SchedulerConfig => Get<SchedulerConfig>(Scheduler);

    /// <summary>A UNet of its own for a check that changes the weights (training); the caller disposes it.</summary>
    public UNet2DConditionModel LoadUNetForTraining()
    {
        RequireFolder(Unet);
        var unet = UNet2DConditionModel.FromFolder(_folder);
        unet.train();
        return unet;
    }

    public void Dispose()
    {
        foreach (var component in _loaded.Values.OfType<IDisposable>()) component.Dispose();
        _loaded.Clear();
    }

    private T Get<T>(string component)
    {
        if (_loaded.TryGetValue(component, out var value)) return (T)value;
        if (_failed.TryGetValue(component, out var error)) throw new ModelComponentException(error.Message);
        throw new InvalidOperationException($"{component} was not preloaded");
    }

    private object Load(string component)
    {
        RequireFolder(component);
        switch (component)
        {
            case Tokenizer:
                return ClipTokenizer.FromFolder(_folder.Component(Tokenizer));
            case Scheduler:
                return SchedulerConfig.Load(Path.Combine(_folder.Component(Scheduler), "scheduler_config.json"));
            case TextEncoder:
                return Eval(ClipTextModel.FromPretrained(_folder));
            case Tokenizer2:
                return ClipTokenizer.FromFolder(_folder.Component(Tokenizer2));
            case TextEncoder2:
                return Eval(ClipTextModelWithProjection.FromPretrained(_folder));
            case Unet:
                return Eval(UNet2DConditionModel.FromFolder(_folder));
            case Vae:
                return Eval(AutoencoderKL.FromFolder(_folder));
            default:
                throw new ArgumentOutOfRangeException(nameof(component), component, "unknown model component");
        }
    }

    private static T Eval<T>(T module) where T : nn.Module
    {
        module.eval();
        return module;
    }

    private void RequireFolder(string component)
    {
        string path = Path.Combine(Root, component);
        if (!Directory.Exists(path)) throw new ModelComponentException($"the model has no {component}/ folder ({path})");
    }
}
