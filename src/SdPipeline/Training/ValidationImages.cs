using System.Globalization;
using System.Text.RegularExpressions;
using Newtonsoft.Json;
using SdPipeline.Files;

namespace SdPipeline.Training;

/// <summary>
/// The validation images of a run: <c>validation/step-NNNNNN-prompt-PP.png</c> (each written atomically) and
/// <c>validation/prompts.json</c> (the prompts by index, the seed), <c>validation/grid.png</c> (a row per step, a column per
/// prompt, recomposed after each pass), mirrored into TensorBoard as
/// <c>validation/prompt-PP</c> images at their step. A resumed run rewrites the steps after its checkpoint with the
/// same images (they are seeded), so no step appears twice.
/// </summary>
public static partial class ValidationImages
{
    /// <summary>The folder inside the train artifact.</summary>
    public const string FolderName = "validation";

    /// <summary>Every pass so far as one image inside <see cref="FolderName"/>: a row per step, a column per prompt.</summary>
    public const string GridFile = "grid.png";

    /// <summary>The prompt list inside <see cref="FolderName"/>.</summary>
    public const string PromptsFile = "prompts.json";

    /// <summary>The file name of prompt <paramref name="prompt"/>'s image at <paramref name="step"/>.</summary>
    public static string FileName(long step, int prompt) =>
        string.Create(CultureInfo.InvariantCulture, $"step-{step:D6}-prompt-{prompt:D2}.png");

    /// <summary>Writes one validation pass's images (one per prompt, in order) and mirrors them into TensorBoard.</summary>
    public static void Write(string runFolder, long step, IReadOnlyList<string> prompts, long seed, IReadOnlyList<byte[]> pngs, TensorBoardLog? tensorBoard)
    {
        if (pngs.Count != prompts.Count) throw new ArgumentException($"{pngs.Count} images for {prompts.Count} prompts", nameof(pngs));
        string folder = Path.Combine(runFolder, FolderName);
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, PromptsFile), JsonConvert.SerializeObject(new ValidationPrompts(prompts, seed), Formatting.Indented));
        for (int i = 0; i < pngs.Count; i++)
        {
            string path = Path.Combine(folder, FileName(step, i));
            AtomicFile.WriteAllBytes(path, pngs[i]);
            tensorBoard?.Image(string.Create(CultureInfo.InvariantCulture, $"validation/prompt-{i:D2}"), path, step);
        }
        WriteGrid(runFolder);
    }

    /// <summary>Recomposes <see cref="GridFile"/> from every complete pass on disk (rows in step order).</summary>
    private static void WriteGrid(string runFolder)
    {
        var series = Read(runFolder);
        var rows = series?.Steps.Where(s => s.Files.All(f => f is not null)).ToList();
        if (series is null || rows is null || rows.Count == 0) return;
        var cells = rows.SelectMany(r => r.Files.Select(f => File.ReadAllBytes(f!))).ToList();
        AtomicFile.WriteAllBytes(Path.Combine(runFolder, FolderName, GridFile), Images.ImageGrid.ComposePng(cells, series.Prompts.Count, padding: 2));
    }

    /// <summary>The validation images of the run in <paramref name="runFolder"/>, step by step; null when it sampled none.</summary>
    public static ValidationSeries? Read(string runFolder)
    {
        string folder = Path.Combine(runFolder, FolderName);
        string promptsFile = Path.Combine(folder, PromptsFile);
        if (!File.Exists(promptsFile)) return null;
        var prompts = JsonConvert.DeserializeObject<ValidationPrompts>(File.ReadAllText(promptsFile))
            ?? throw new InvalidDataException($"{promptsFile}: empty");
        var files = Directory.EnumerateFiles(folder, "step-*.png")
            .Select(path => (Path: path, Match: FilePattern().Match(Path.GetFileName(path))))
            .Where(f => f.Match.Success)
            .Select(f => (f.Path, Step: long.Parse(f.Match.Groups[1].Value, CultureInfo.InvariantCulture), Prompt: int.Parse(f.Match.Groups[2].Value, CultureInfo.InvariantCulture)))
            .Where(f => f.Prompt < prompts.Prompts.Count)
            .ToList();
        var rows = files.GroupBy(f => f.Step).OrderBy(g => g.Key)
            .Select(g => new ValidationStep(g.Key, Enumerable.Range(0, prompts.Prompts.Count)
                .Select(i => g.Where(f => f.Prompt == i).Select(f => f.Path).FirstOrDefault()).ToList()))
            .ToList();
        return new ValidationSeries(prompts.Prompts, prompts.Seed, rows);
    }

    [GeneratedRegex(@"^step-(\d+)-prompt-(\d+)\.png$", RegexOptions.CultureInvariant)]
    private static partial Regex FilePattern();
}

/// <summary><c>validation/prompts.json</c>.</summary>
/// <param name="Prompts">The prompts by index.</param>
/// <param name="Seed">The seed of every image.</param>
public sealed record ValidationPrompts(
    [property: JsonProperty("prompts")] IReadOnlyList<string> Prompts,
    [property: JsonProperty("seed")] long Seed);

/// <summary>Every validation pass of a run.</summary>
/// <param name="Prompts">The prompts, in column order.</param>
/// <param name="Seed">The seed of every image.</param>
/// <param name="Steps">One row per step sampled, in step order.</param>
public sealed record ValidationSeries(IReadOnlyList<string> Prompts, long Seed, IReadOnlyList<ValidationStep> Steps);

/// <summary>One validation pass.</summary>
/// <param name="Step">The optimizer step (0: the base model, before training).</param>
/// <param name="Files">The image of each prompt, by prompt index; null where one is missing.</param>
public sealed record ValidationStep(long Step, IReadOnlyList<string?> Files);
