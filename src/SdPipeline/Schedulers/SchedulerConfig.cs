using System.Globalization;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using Newtonsoft.Json.Serialization;

namespace SdPipeline.Schedulers;

/// <summary>
/// A diffusers <c>scheduler_config.json</c>: the training noise schedule plus the options of each sampler.
/// One record serves every scheduler class, as in diffusers, where <c>from_config</c> hands the same keys to
/// any class and each class reads the ones it knows.
/// </summary>
/// <remarks>
/// Keys whose default differs between diffusers classes (<c>timestep_spacing</c>, <c>clip_sample</c>,
/// <c>set_alpha_to_one</c>, <c>skip_prk_steps</c>, <c>variance_type</c>) are nullable here: null means "absent, use the
/// scheduler class's own default" (SD 1.5 ships no <c>timestep_spacing</c>, so DDIM/PNDM/DDPM use <c>leading</c>
/// while Euler and DPM-Solver use <c>linspace</c>). Every other default equals the Python <c>__init__</c> default.
/// Keys that select a feature SdPipeline does not implement are refused by the scheduler that would use them.
/// </remarks>
public sealed record SchedulerConfig
{
    /// <summary>The <c>beta_schedule</c> values SdPipeline computes.</summary>
    public static readonly IReadOnlyList<string> BetaSchedules = ["linear", "scaled_linear", "squaredcos_cap_v2"];

    /// <summary>The <c>timestep_spacing</c> values (Table 2 of arXiv:2305.08891).</summary>
    public static readonly IReadOnlyList<string> TimestepSpacings = ["leading", "linspace", "trailing"];

    private static readonly JsonSerializer Serializer = JsonSerializer.Create(new JsonSerializerSettings
    {
        ContractResolver = new DefaultContractResolver { NamingStrategy = new SnakeCaseNamingStrategy() },
        MissingMemberHandling = MissingMemberHandling.Ignore,
        FloatParseHandling = FloatParseHandling.Double,
    });

    /// <summary>The key listing the keys diffusers reads as absent (see <see cref="Parse"/>).</summary>
    private const string UseDefaultValuesKey = "_use_default_values";

    /// <summary>The diffusers class the folder ships (<c>_class_name</c>, e.g. <c>PNDMScheduler</c> for SD 1.5).</summary>
    [JsonProperty("_class_name")]
    public string? ClassName { get; init; }

    /// <summary>The diffusers version that wrote the file (<c>_diffusers_version</c>); informative only.</summary>
    [JsonProperty("_diffusers_version")]
    public string? DiffusersVersion { get; init; }

    /// <summary>Number of diffusion steps the model was trained with.</summary>
    public int NumTrainTimesteps { get; init; } = 1000;

    /// <summary>First beta of the <c>linear</c> / <c>scaled_linear</c> schedules.</summary>
    public double BetaStart { get; init; } = 0.0001;

    /// <summary>Last beta of the <c>linear</c> / <c>scaled_linear</c> schedules.</summary>
    public double BetaEnd { get; init; } = 0.02;

    /// <summary>How betas are spread over the training steps: one of <see cref="BetaSchedules"/>.</summary>
    public string BetaSchedule { get; init; } = "linear";

    /// <summary>Explicit betas (one per training step); when set, they replace <see cref="BetaSchedule"/>.</summary>
    public IReadOnlyList<double>? TrainedBetas { get; init; }

    /// <summary>What the UNet predicts: one of <see cref="PredictionTypes.All"/>.</summary>
    public string PredictionType { get; init; } = PredictionTypes.Epsilon;

    /// <summary>Added to every inference timestep under <c>leading</c> spacing (SD 1.5: 1, so 50 steps run 981…1).</summary>
    public int StepsOffset { get; init; }

    /// <summary>One of <see cref="TimestepSpacings"/>, or null for the scheduler class's default.</summary>
    public string? TimestepSpacing { get; init; }

    /// <summary>Clamp the predicted x₀ to ±<see cref="ClipSampleRange"/> (DDPM, DDIM); null = class default (true).</summary>
    public bool? ClipSample { get; init; }

    /// <summary>The clamp bound of <see cref="ClipSample"/>.</summary>
    public double ClipSampleRange { get; init; } = 1.0;

    /// <summary>
    /// DDIM/PNDM: whether the step past t = 0 uses ᾱ = 1 (true) or ᾱ₀ (false, SD 1.5); null = class default
    /// (DDIM true, PNDM false).
    /// </summary>
    public bool? SetAlphaToOne { get; init; }

    /// <summary>PNDM: skip the Runge-Kutta warm-up and run PLMS only (SD 1.5: true); null = class default (false).</summary>
    public bool? SkipPrkSteps { get; init; }

    /// <summary>DDPM's posterior variance (<c>fixed_small</c> supported); null = class default.</summary>
    public string? VarianceType { get; init; }

    /// <summary>Dynamic thresholding of x₀ (Imagen); not supported, must be false.</summary>
    public bool Thresholding { get; init; }

    /// <summary>Rescale betas to zero terminal SNR (arXiv:2305.08891); not supported, must be false.</summary>
    public bool RescaleBetasZeroSnr { get; init; }

    /// <summary>Euler: how sigmas are interpolated between training steps (<c>linear</c> supported).</summary>
    public string InterpolationType { get; init; } = "linear";

    /// <summary>Euler: <c>discrete</c> timesteps (supported) or <c>continuous</c>.</summary>
    public string TimestepType { get; init; } = "discrete";

    /// <summary>Euler, DPM-Solver: Karras sigmas; not supported, must be false.</summary>
    public bool UseKarrasSigmas { get; init; }

    /// <summary>Euler, DPM-Solver: exponential sigmas; not supported, must be false.</summary>
    public bool UseExponentialSigmas { get; init; }

    /// <summary>Euler, DPM-Solver: beta sigmas; not supported, must be false.</summary>
    public bool UseBetaSigmas { get; init; }

    /// <summary>Euler, DPM-Solver: the last sigma, <c>zero</c> or <c>sigma_min</c> (σ of training step 0).</summary>
    public string FinalSigmasType { get; init; } = "zero";

    /// <summary>DPM-Solver: order of the multistep solver (1 or 2 supported).</summary>
    public int SolverOrder { get; init; } = 2;

    /// <summary>DPM-Solver: the algorithm (<c>dpmsolver++</c> supported).</summary>
    public string AlgorithmType { get; init; } = "dpmsolver++";

    /// <summary>DPM-Solver: the second-order formula (<c>midpoint</c> supported).</summary>
    public string SolverType { get; init; } = "midpoint";

    /// <summary>DPM-Solver: use lower-order steps at the end when there are fewer than 15 steps.</summary>
    public bool LowerOrderFinal { get; init; } = true;

    /// <summary>DPM-Solver: make the last step a first-order (Euler) step.</summary>
    public bool EulerAtFinal { get; init; }

    /// <summary>DPM-Solver: clip λ(t) from below; -∞ (the default) clips nothing.</summary>
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;

    /// <summary>DPM-Solver: uniform-λ steps; not supported, must be false.</summary>
    public bool UseLuLambdas { get; init; }

    /// <summary>DPM-Solver: flow-matching sigmas; not supported, must be false.</summary>
    public bool UseFlowSigmas { get; init; }

    /// <summary>DPM-Solver: resolution-dependent timestep shifting; not supported, must be false.</summary>
    public bool UseDynamicShifting { get; init; }

    /// <summary>Where the config came from (a file path, or a description), for error messages.</summary>
    [JsonIgnore]
    public string Source { get; init; } = "scheduler config";

    /// <summary>
    /// Keys of the file this record has no property for. diffusers keeps adding options; one listed here
    /// changes nothing SdPipeline computes, but a caller may want to log it.
    /// </summary>
    [JsonIgnore]
    public IReadOnlyList<string> UnrecognisedKeys { get; init; } = [];

    /// <summary>Reads and validates a <c>scheduler_config.json</c>.</summary>
    /// <exception cref="SchedulerConfigException">The file is missing, is not a JSON object, has a wrongly typed value or an invalid one.</exception>
    public static SchedulerConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new SchedulerConfigException($"scheduler config '{path}' not found (a diffusers model folder has it at scheduler/scheduler_config.json)");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>
    /// Parses and validates the JSON text of a <c>scheduler_config.json</c>. Keys listed under <c>_use_default_values</c>
    /// read as absent, as diffusers reads them, so each scheduler applies its own class default to them.
    /// </summary>
    /// <param name="json">The file's text.</param>
    /// <param name="source">Named in error messages (usually the path).</param>
    /// <exception cref="SchedulerConfigException">Not a JSON object, a wrongly typed value or an invalid one.</exception>
    public static SchedulerConfig Parse(string json, string source = "scheduler_config.json")
    {
        JObject obj;
        try
        {
            obj = JToken.Parse(json) as JObject
                ?? throw new SchedulerConfigException($"{source}: a scheduler config is a JSON object of diffusers keys");
        }
        catch (JsonReaderException e)
        {
            throw new SchedulerConfigException($"{source}: invalid JSON at line {e.LineNumber}, position {e.LinePosition}: {e.Message}");
        }

        obj = WithoutDefaultedKeys(obj, source);
        SchedulerConfig config;
        try
        {
            config = obj.ToObject<SchedulerConfig>(Serializer) ?? new SchedulerConfig();
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidCastException or OverflowException)
        {
            throw new SchedulerConfigException($"{source}: {e.Message}");
        }

        var known = KnownKeys();
        config = config with
        {
            Source = source,
            UnrecognisedKeys = obj.Properties().Select(p => p.Name).Where(name => !known.Contains(name)).ToArray(),
        };
        config.Validate();
        return config;
    }

    /// <summary>Checks the keys every scheduler reads; each scheduler checks its own options when built.</summary>
    /// <exception cref="SchedulerConfigException">A value is out of range or not among the valid ones.</exception>
    public void Validate()
    {
        if (NumTrainTimesteps < 2)
            throw new SchedulerConfigException($"{Source}: num_train_timesteps {NumTrainTimesteps} must be at least 2");
        if (TrainedBetas is null)
            RequireOneOf("beta_schedule", BetaSchedule, BetaSchedules);
        else if (TrainedBetas.Count != NumTrainTimesteps)
            throw new SchedulerConfigException($"{Source}: trained_betas has {TrainedBetas.Count} values but num_train_timesteps is {NumTrainTimesteps}; give one beta per training step");
        RequireOneOf("prediction_type", PredictionType, PredictionTypes.All);
        if (TimestepSpacing is not null)
            RequireOneOf("timestep_spacing", TimestepSpacing, TimestepSpacings);
        if (StepsOffset < 0)
            throw new SchedulerConfigException($"{Source}: steps_offset {StepsOffset} must not be negative");
    }

    /// <summary>Throws unless <paramref name="supported"/>: <paramref name="key"/> = <paramref name="value"/> selects a feature <paramref name="scheduler"/> does not implement.</summary>
    internal void Refuse(bool supported, string scheduler, string key, object? value, string allowed)
    {
        if (supported)
            return;
        string shown = value switch
        {
            null => "null",
            bool b => b ? "true" : "false",
            string s => $"'{s}'",
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
        throw new SchedulerConfigException($"{Source}: {key} = {shown} is not supported by SdPipeline's {scheduler} scheduler (supported: {allowed}); change it or pick another scheduler");
    }

    // diffusers' extract_init_dict drops every key a file lists under _use_default_values (the keys the saving class
    // filled with its own defaults; diffusers 0.18 wrote the list), so the loading class applies its defaults instead:
    // a DDIM config's "timestep_spacing": "leading" listed there is "linspace" for Euler, its "set_alpha_to_one": true is
    // false for PNDM.
    private static JObject WithoutDefaultedKeys(JObject obj, string source)
    {
        if (!obj.TryGetValue(UseDefaultValuesKey, out var listed))
            return obj;
        if (listed is not JArray keys || keys.Any(k => k.Type != JTokenType.String))
            throw new SchedulerConfigException($"{source}: {UseDefaultValuesKey} must be a list of key names (diffusers writes the keys the saving class defaulted); found {listed.ToString(Formatting.None)}");
        var kept = (JObject)obj.DeepClone();
        foreach (var key in keys)
            kept.Remove(key.Value<string>()!);
        kept.Remove(UseDefaultValuesKey);
        return kept;
    }

    private void RequireOneOf(string key, string value, IReadOnlyList<string> valid)
    {
        if (!valid.Contains(value))
            throw new SchedulerConfigException($"{Source}: {key} '{value}' is not supported; valid values: {string.Join(", ", valid)}");
    }

    private static HashSet<string> KnownKeys()
    {
        var naming = new SnakeCaseNamingStrategy();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in typeof(SchedulerConfig).GetProperties())
        {
            if (property.GetCustomAttributes(typeof(JsonIgnoreAttribute), false).Length > 0 || !property.CanWrite)
                continue;
            var explicitName = (JsonPropertyAttribute?)property.GetCustomAttributes(typeof(JsonPropertyAttribute), false).FirstOrDefault();
            keys.Add(explicitName?.PropertyName ?? naming.GetPropertyName(property.Name, false));
        }
        return keys;
    }
}
