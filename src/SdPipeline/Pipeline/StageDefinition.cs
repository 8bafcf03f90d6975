namespace SdPipeline.Pipeline;

/// <summary>
/// What a stage reads, declared once: the graph, the plan, the fingerprints and the Cake script all derive
/// from these definitions (see <see cref="StageGraph"/>).
/// </summary>
/// <param name="Name">Stage name, as in <c>sdpipe run NAME</c> and <c>artifacts/NAME/</c>.</param>
/// <param name="CakeTask">The Cake target that runs it.</param>
/// <param name="SchemaVersion">Bumped when the stage's output format or meaning changes, so old artifacts stop matching.</param>
/// <param name="ConfigKeys">Config keys (or whole sections) whose values change the output.</param>
/// <param name="Upstream">Stages whose artifacts this stage reads.</param>
/// <param name="Description">One line for <c>sdpipe plan</c> and <c>--tree</c>.</param>
public sealed record StageDefinition(
    string Name,
    string CakeTask,
    int SchemaVersion,
    IReadOnlyList<string> ConfigKeys,
    IReadOnlyList<string> Upstream,
    string Description)
{
    /// <summary>
    /// Inputs outside the config that change the output, as <c>name → content hash</c> (a dataset registry
    /// entry, local files). Null when the stage has none.
    /// </summary>
    public Func<StageInputContext, IReadOnlyDictionary<string, string>>? ExternalInputs { get; init; }

    /// <summary>
    /// Keys among <see cref="ConfigKeys"/> that a config leaves unused (a warm-up under a constant schedule, the LoRA settings
    /// of a full fine-tune): they are fingerprinted at their defaults, so changing one leaves the stage cached, and an artifact
    /// built before a key became unused keeps its fingerprint when the key is at its default. Null when every key counts.
    /// </summary>
    public Func<Config.EffectiveConfig, IEnumerable<string>>? UnusedKeys { get; init; }

    /// <summary>
    /// Upstream stages this stage needs built but whose fingerprint it does not inherit, because its
    /// <see cref="ExternalInputs"/> already name the part of their output it reads (the latent cache reads the
    /// VAE and text encoder of the model, not its UNet, so a new UNet does not re-encode the dataset).
    /// </summary>
    public IReadOnlySet<string> UpstreamByContent { get; init; } = new HashSet<string>();

    /// <summary>
    /// Makes the stage's runner (given the graph it runs in); null for a stage that is declared but not built. The
    /// stage registers its own runner here, so the engine names no stage.
    /// </summary>
    public Func<StageGraph, IStageRunner>? CreateRunner { get; init; }

    /// <summary>
    /// What the stage would refuse in a config, found before anything runs (empty when it can run); null for a stage
    /// that takes every config its keys' ranges allow. The stage declares its own, so the engine names no stage. Each
    /// problem is one sentence without the stage's name: the engine prefixes it (<c>train: …</c>, or
    /// <c>warning: train will refuse this config: …</c>).
    /// </summary>
    public Func<Config.EffectiveConfig, IReadOnlyList<string>>? CheckConfig { get; init; }

    /// <summary>
    /// Whether a stale stage may continue an earlier artifact (same upstream, inputs and schema, another config) instead of
    /// starting over, and from where; null answers "not related" (another key changed). Null for a stage that always starts
    /// over. The fingerprint stays that of the requested config: continuing is how it is built, not what it is.
    /// </summary>
    public Func<ContinuationCandidate, ContinuationVerdict?>? Continuation { get; init; }

    /// <summary>The problems <see cref="CheckConfig"/> finds in <paramref name="config"/>; empty when the stage can run it.</summary>
    public IReadOnlyList<string> ConfigProblems(Config.EffectiveConfig config) => CheckConfig?.Invoke(config) ?? [];
}
