using System.Text.RegularExpressions;
using SdPipeline.Tests.Support;
using YamlDotNet.RepresentationModel;

namespace SdPipeline.Tests.Workflows;

/// <summary>One step of a workflow job, as the tests need it.</summary>
/// <param name="Index">Position in the job.</param>
/// <param name="Id">The step's id, or null.</param>
/// <param name="Name">Its name, id or action, for messages.</param>
/// <param name="Uses">The action it uses (owner/name@ref), or null.</param>
/// <param name="Run">Its shell script, or null.</param>
/// <param name="Node">The whole step.</param>
public sealed record WorkflowStep(int Index, string? Id, string Name, string? Uses, string? Run, YamlMappingNode Node)
{
    /// <summary>A <c>with:</c> input, or null.</summary>
    public string? With(string input) => Node.Children.TryGetValue("with", out var with) ? WorkflowFile.Scalar(with, input) : null;

    /// <summary>Its <c>if:</c> condition, or null.</summary>
    public string? If => WorkflowFile.Scalar(Node, "if");

    /// <summary>Every scalar in the step (name, if, with, env, run), where expressions can read outputs.</summary>
    public IEnumerable<string> Scalars => WorkflowFile.AllScalars(Node);
}

/// <summary>One job of a workflow.</summary>
/// <param name="Id">The job id.</param>
/// <param name="Node">The whole job.</param>
/// <param name="Steps">Its steps in order (empty for a job that calls a reusable workflow).</param>
public sealed record WorkflowJob(string Id, YamlMappingNode Node, IReadOnlyList<WorkflowStep> Steps)
{
    /// <summary>The runner labels of <c>runs-on</c>.</summary>
    public IReadOnlyList<string> RunsOn => Node.Children.TryGetValue("runs-on", out var runsOn)
        ? runsOn is YamlSequenceNode list ? list.Children.Select(c => ((YamlScalarNode)c).Value!).ToList() : [((YamlScalarNode)runsOn).Value!]
        : [];
}

/// <summary>A workflow under .github/workflows, parsed with YamlDotNet's representation model.</summary>
public sealed class WorkflowFile
{
    /// <summary>Matches <c>steps.ID.outputs.NAME</c> in an expression.</summary>
    public static readonly Regex StepOutputReference = new(@"steps\.(?<step>[A-Za-z_][\w-]*)\.outputs\.(?<name>[A-Za-z_][\w-]*)");

    /// <summary>Matches <c>needs.JOB.outputs.NAME</c> in an expression.</summary>
    public static readonly Regex JobOutputReference = new(@"needs\.(?<job>[A-Za-z_][\w-]*)\.outputs\.(?<name>[A-Za-z_][\w-]*)");

    private WorkflowFile(string name, string text, YamlMappingNode root)
    {
        Name = name;
        Text = text;
        Root = root;
        var jobs = (YamlMappingNode)root.Children["jobs"];
        Jobs = jobs.Children.Select(job =>
        {
            var node = (YamlMappingNode)job.Value;
            var steps = node.Children.TryGetValue("steps", out var list)
                ? ((YamlSequenceNode)list).Children.Cast<YamlMappingNode>().Select((step, i) =>
                {
                    string? id = Scalar(step, "id"), uses = Scalar(step, "uses"), run = Scalar(step, "run");
                    return new WorkflowStep(i, id, Scalar(step, "name") ?? id ?? uses ?? $"step {i}", uses, run, step);
                }).ToList()
                : [];
            return new WorkflowJob(((YamlScalarNode)job.Key).Value!, node, steps);
        }).ToList();
    }

    /// <summary>File name (train.yml).</summary>
    public string Name { get; }

    /// <summary>The file's text.</summary>
    public string Text { get; }

    /// <summary>The document's root mapping.</summary>
    public YamlMappingNode Root { get; }

    /// <summary>The jobs in file order.</summary>
    public IReadOnlyList<WorkflowJob> Jobs { get; }

    /// <summary>The folder of the repository's workflows.</summary>
    public static string Folder => Path.Combine(RepoPaths.Root, ".github", "workflows");

    /// <summary>Reads one workflow.</summary>
    public static WorkflowFile Load(string name)
    {
        string text = File.ReadAllText(Path.Combine(Folder, name));
        var yaml = new YamlStream();
        yaml.Load(new StringReader(text));
        return new WorkflowFile(name, text, (YamlMappingNode)yaml.Documents.Single().RootNode);
    }

    /// <summary>Every workflow of the repository.</summary>
    public static IReadOnlyList<WorkflowFile> All() =>
        Directory.GetFiles(Folder, "*.yml").Order(StringComparer.Ordinal).Select(f => Load(Path.GetFileName(f))).ToList();

    /// <summary>The scalar value of <paramref name="key"/> in a mapping, or null.</summary>
    public static string? Scalar(YamlNode node, string key) =>
        node is YamlMappingNode map && map.Children.TryGetValue(key, out var value) && value is YamlScalarNode scalar ? scalar.Value : null;

    /// <summary>Every scalar value under <paramref name="node"/>.</summary>
    public static IEnumerable<string> AllScalars(YamlNode node) => node switch
    {
        YamlScalarNode scalar => scalar.Value is { } value ? [value] : [],
        YamlSequenceNode list => list.Children.SelectMany(AllScalars),
        YamlMappingNode map => map.Children.SelectMany(pair => AllScalars(pair.Value)),
        _ => [],
    };
}
