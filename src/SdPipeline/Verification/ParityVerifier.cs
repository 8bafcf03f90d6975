using SdPipeline.Verification.Checks;
using SdPipeline.Weights;
using TorchSharp;

namespace SdPipeline.Verification;

/// <summary>
/// Checks a model folder (diffusers layout) against a folder of parity fixtures laid out like
/// <c>shared/fixtures/parity</c>: each <c>NAME.safetensors</c> holds inputs and reference outputs of diffusers, its
/// sidecar <c>NAME.json</c> what they are and the settings that produced them. Each pair goes to the check its name
/// calls for (<see cref="KnownFixtures"/>); a <c>tokenization.jsonl</c> is checked against the model's tokenizer.
/// Everything runs on the CPU in float32.
/// </summary>
/// <remarks>
/// A fixture that cannot be interpreted (unknown name, missing sidecar or tensor, shape mismatch) and a check whose
/// model component is missing give failed rows; nothing aborts the run.
/// </remarks>
public sealed class ParityVerifier
{
    /// <summary>The fixture names (or name patterns) the verifier has a check for, in the order it runs them.</summary>
    public static readonly IReadOnlyList<string> KnownFixtures =
        ["text_encoder", "text_encoders", "unet", "vae", "schedulers", "rng", "pipeline", "pipeline_*", "train_step_*", "train_step_*" + AllGradsCheck.Suffix];

    private readonly DiffusersFolder _model;
    private readonly string _parityFolder;
    private readonly IReadOnlyList<(string Check, string Path)> _tokenizationFiles;

    /// <summary>Prepares a run; nothing is loaded yet.</summary>
    /// <param name="model">The model folder under test.</param>
    /// <param name="parityFolder">The fixtures.</param>
    /// <param name="tokenizationFile">A tokenization reference (OpenAI's <c>tokenization.jsonl</c> or transformers'
    /// <c>tokenization_transformers.jsonl</c> format); null takes the parity folder's, if it has either.</param>
    /// <exception cref="DirectoryNotFoundException">The parity folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The tokenization file does not exist.</exception>
    public ParityVerifier(DiffusersFolder model, string parityFolder, string? tokenizationFile = null)
    {
        if (!Directory.Exists(parityFolder)) throw new DirectoryNotFoundException($"parity folder '{parityFolder}' not found");
        if (tokenizationFile is not null && !File.Exists(tokenizationFile))
            throw new FileNotFoundException($"tokenization file '{tokenizationFile}' not found", tokenizationFile);
        _model = model;
        _parityFolder = parityFolder;
        _tokenizationFiles = tokenizationFile is not null
            ? [("tokenization", tokenizationFile)]
            : new[] { TokenizationCheck.FileName, TokenizationCheck.TransformersFileName }
                .Select(name => (Check: Path.GetFileNameWithoutExtension(name), Path: Path.Combine(parityFolder, name)))
                .Where(file => File.Exists(file.Path))
                .ToList();
    }

    /// <summary>Runs every check; <paramref name="onRow"/> sees each row as soon as it is known.</summary>
    public IReadOnlyList<ParityRow> Run(Action<ParityRow>? onRow = null)
    {
        var rows = new ParityRows(onRow);
        using var components = new ModelComponents(_model);

        foreach (var (check, path) in _tokenizationFiles)
        {
            components.Preload([ModelComponents.Tokenizer]);
            rows.Check(check, () => TokenizationCheck.Run(check, path, components));
        }

        var names = Directory.EnumerateFiles(_parityFolder)
            .Where(f => Path.GetExtension(f) is ".safetensors" or ".json")
            .Select(Path.GetFileNameWithoutExtension)
            .Distinct(StringComparer.Ordinal)
            .OrderBy(Order)
            .ThenBy(n => n, StringComparer.Ordinal)
            .ToList();
        foreach (string name in names!)
            RunFixture(name!, components, rows);

        if (rows.All.Count == 0)
            rows.Add(ParityRow.CannotInterpret("(none)", $"{_parityFolder} holds no NAME.safetensors + NAME.json fixtures, no {TokenizationCheck.FileName} and no {TokenizationCheck.TransformersFileName}"));
        return rows.All;
    }

    private void RunFixture(string name, ModelComponents components, ParityRows rows)
    {
        if (CheckFor(name, sdxl: false) is null)
        {
            rows.Add(ParityRow.CannotInterpret(name, $"no check for a fixture named '{name}' (known: {string.Join(", ", KnownFixtures)})"));
            return;
        }
        ParityFixture fixture;
        try
        {
            fixture = ParityFixture.Open(_parityFolder, name);
        }
        catch (ParityFixtureException e)
        {
            rows.Add(ParityRow.CannotInterpret(name, e.Message));
            return;
        }
        using (fixture)
        {
            // SDXL's fixtures carry the UNet's added conditions; the same names then call for the SDXL checks.
            var check = CheckFor(name, sdxl: fixture.Contains("time_ids") || fixture.Contains("add_time_ids") || fixture.Contains("step0.time_ids"))!;
            // Outside the check's dispose scope: the loaded modules outlive it.
            components.Preload(check.Components);
            using var scope = torch.NewDisposeScope();
            rows.Run(name, () => check.Run(fixture, components, rows));
        }
    }

    private static IParityCheck? CheckFor(string name, bool sdxl) => name switch
    {
        "text_encoder" => new TextEncoderCheck(),
        "text_encoders" => new SdxlTextEncodersCheck(),
        "unet" => new UNetCheck(),
        "vae" => new VaeCheck(),
        "schedulers" => new SchedulersCheck(),
        "rng" => new RngCheck(),
        _ when name == "pipeline" || name.StartsWith("pipeline_", StringComparison.Ordinal) => sdxl ? new SdxlPipelineCheck() : new PipelineCheck(),
        _ when name.StartsWith("train_step_", StringComparison.Ordinal) && name.EndsWith(AllGradsCheck.Suffix, StringComparison.Ordinal) => new AllGradsCheck(),
        _ when name.StartsWith("train_step_", StringComparison.Ordinal) => sdxl ? new SdxlTrainStepCheck() : new TrainStepCheck(),
        _ => null,
    };

    private static int Order(string? name)
    {
        int index = KnownFixtures.ToList().FindIndex(pattern => Matches(name!, pattern));
        return index < 0 ? int.MaxValue : index;
    }

    private static bool Matches(string name, string pattern)
    {
        int star = pattern.IndexOf('*', StringComparison.Ordinal);
        return star < 0
            ? name == pattern
            : name.StartsWith(pattern[..star], StringComparison.Ordinal) && name.EndsWith(pattern[(star + 1)..], StringComparison.Ordinal)
                && name.Length >= pattern.Length - 1;
    }
}
