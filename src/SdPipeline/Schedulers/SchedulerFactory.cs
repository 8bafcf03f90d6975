namespace SdPipeline.Schedulers;

/// <summary>
/// Builds a sampler by its user-facing name. The names are config values (for example a sampling section's
/// <c>scheduler</c> key), so they are short, lowercase and stable:
/// <list type="table">
/// <item><term><c>ddpm</c></term><description><see cref="DdpmScheduler"/>: ancestral DDPM, stochastic; needs many steps.</description></item>
/// <item><term><c>ddim</c></term><description><see cref="DdimScheduler"/>: DDIM with η = 0, deterministic.</description></item>
/// <item><term><c>pndm</c></term><description><see cref="PndmScheduler"/>: PLMS, what SD 1.5 ships (<c>skip_prk_steps</c> must be true).</description></item>
/// <item><term><c>euler</c></term><description><see cref="EulerDiscreteScheduler"/>: Euler on the probability-flow ODE, deterministic.</description></item>
/// <item><term><c>euler_ancestral</c></term><description><see cref="EulerAncestralDiscreteScheduler"/>: Euler steps plus fresh noise, stochastic.</description></item>
/// <item><term><c>dpmsolver++</c></term><description><see cref="DpmSolverMultistepScheduler"/>: DPM-Solver++(2M), deterministic; good in 20–25 steps.</description></item>
/// </list>
/// Every scheduler takes the model's <c>scheduler_config.json</c> (its training noise schedule) and applies its own
/// class defaults to the keys the file leaves out, exactly as diffusers' <c>from_config</c> does.
/// </summary>
public static class SchedulerFactory
{
    /// <summary>Name of <see cref="DdpmScheduler"/>.</summary>
    public const string Ddpm = "ddpm";

    /// <summary>Name of <see cref="DdimScheduler"/>.</summary>
    public const string Ddim = "ddim";

    /// <summary>Name of <see cref="PndmScheduler"/>.</summary>
    public const string Pndm = "pndm";

    /// <summary>Name of <see cref="EulerDiscreteScheduler"/>.</summary>
    public const string Euler = "euler";

    /// <summary>Name of <see cref="EulerAncestralDiscreteScheduler"/>.</summary>
    public const string EulerAncestral = "euler_ancestral";

    /// <summary>Name of <see cref="DpmSolverMultistepScheduler"/>.</summary>
    public const string DpmSolverPlusPlus = "dpmsolver++";

    /// <summary>Every valid name, in the order the documentation lists them.</summary>
    public static readonly IReadOnlyList<string> Names = [Ddpm, Ddim, Pndm, Euler, EulerAncestral, DpmSolverPlusPlus];

    private static readonly Dictionary<string, string> NamesByDiffusersClass = new(StringComparer.Ordinal)
    {
        ["DDPMScheduler"] = Ddpm,
        ["DDIMScheduler"] = Ddim,
        ["PNDMScheduler"] = Pndm,
        ["EulerDiscreteScheduler"] = Euler,
        ["EulerAncestralDiscreteScheduler"] = EulerAncestral,
        ["DPMSolverMultistepScheduler"] = DpmSolverPlusPlus,
    };

    /// <summary>Builds the scheduler <paramref name="name"/> (one of <see cref="Names"/>) over <paramref name="config"/>.</summary>
    /// <exception cref="SchedulerConfigException">An unknown name (the message lists the valid ones), or a config the scheduler cannot honour.</exception>
    public static IScheduler Create(string name, SchedulerConfig config) => name switch
    {
        Ddpm => new DdpmScheduler(config),
        Ddim => new DdimScheduler(config),
        Pndm => new PndmScheduler(config),
        Euler => new EulerDiscreteScheduler(config),
        EulerAncestral => new EulerAncestralDiscreteScheduler(config),
        DpmSolverPlusPlus => new DpmSolverMultistepScheduler(config),
        _ => throw new SchedulerConfigException($"unknown scheduler '{name}'; valid names: {string.Join(", ", Names)}"),
    };

    /// <summary>
    /// The name of the scheduler a model folder ships (its config's <c>_class_name</c>, e.g. <c>PNDMScheduler</c> → <c>pndm</c>).
    /// </summary>
    /// <exception cref="SchedulerConfigException">The config has no <c>_class_name</c>, or names a class SdPipeline has no port of.</exception>
    public static string ShippedName(SchedulerConfig config)
    {
        if (config.ClassName is null)
            throw new SchedulerConfigException($"{config.Source}: no _class_name, so the shipped scheduler is unknown; name one of: {string.Join(", ", Names)}");
        return NamesByDiffusersClass.TryGetValue(config.ClassName, out string? name)
            ? name
            : throw new SchedulerConfigException($"{config.Source}: _class_name '{config.ClassName}' has no SdPipeline port; name one of: {string.Join(", ", Names)}");
    }
}
