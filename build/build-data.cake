// Everything the tasks need, read once from the command line in Setup. Paths only: no hashing, no JSON.
public sealed record BuildData(
    string Configuration,
    FilePath Solution,
    FilePath CliProject,
    FilePath CliDll,
    DirectoryPath TestResults,
    string TestFilter,
    string ArtifactsDirectory,
    ProcessArgumentBuilder PassThrough,
    DotNetMSBuildSettings MSBuild,
    string Device,
    string TorchBackend)
{
    /// <summary>The arguments this script reads; Cake's own options (--exclusive, --verbosity, ...) never reach it.</summary>
    public static readonly string[] KnownArguments = ["target", "configuration", "torch-backend", "config", "set", "artifacts", "device", "force", "filter"];

    public static BuildData From(ICakeContext context)
    {
        // A misspelt argument (--confg=configs/sd15.json, --devices=cuda) would otherwise be ignored, and the run would
        // go ahead on the default profile or the CPU. Cake's configuration overrides (--settings_x, --paths_x) have an underscore.
        foreach (string name in context.Arguments.GetArguments().Keys)
        {
            if (name.Contains('_') || KnownArguments.Contains(name, StringComparer.OrdinalIgnoreCase)) continue;
            throw new CakeException($"unknown argument --{name}; this script takes --{string.Join(", --", KnownArguments)} " +
                "(and Cake's own options such as --exclusive and --verbosity); see the README's Targets section");
        }
        string configuration = context.Argument("configuration", "Release");
        // --torch-backend=cuda builds against TorchSharp-cuda-linux (Directory.Build.props); absent, MSBuild's own
        // default applies (cpu, or the TorchBackend environment variable).
        string torchBackend = context.Argument("torch-backend", "");
        if (torchBackend is not ("" or "cpu" or "cuda"))
            throw new CakeException($"--torch-backend={torchBackend} is not supported: use --torch-backend=cpu or --torch-backend=cuda.");
        var msbuild = new DotNetMSBuildSettings();
        if (torchBackend.Length > 0) msbuild.WithProperty("TorchBackend", torchBackend);
        // Arguments that go to every `sdpipe` call: the run profile, overrides, store, device, --force.
        var passThrough = new ProcessArgumentBuilder();
        if (context.HasArgument("config")) passThrough.AppendSwitchQuoted("--config", " ", context.Argument<string>("config"));
        foreach (string set in context.Arguments<string>("set", Array.Empty<string>()))
            passThrough.AppendSwitchQuoted("--set", " ", set);
        if (context.HasArgument("artifacts")) passThrough.AppendSwitchQuoted("--artifacts", " ", context.Argument<string>("artifacts"));
        if (context.HasArgument("device")) passThrough.AppendSwitchQuoted("--device", " ", context.Argument<string>("device"));

        return new BuildData(
            configuration,
            "./SdPipeline.sln",
            "./src/SdPipeline.Cli/SdPipeline.Cli.csproj",
            $"./src/SdPipeline.Cli/bin/{configuration}/net10.0/sdpipe.dll",
            "./TestResults",
            context.Argument("filter", ""),
            context.Argument("artifacts", "artifacts"),
            passThrough,
            msbuild,
            context.Argument("device", ""),
            // The backend the builds get: the argument, else MSBuild's default (the TorchBackend environment variable, else cpu).
            torchBackend.Length > 0 ? torchBackend : context.Environment.GetEnvironmentVariable("TorchBackend") is { Length: > 0 } fromEnvironment ? fromEnvironment : "cpu");
    }
}
