// Everything the tasks need, read once from the command line in Setup. Paths only: no hashing, no JSON.
public sealed record BuildData(
    string Configuration,
    FilePath Solution,
    FilePath CliProject,
    FilePath CliDll,
    DirectoryPath TestResults,
    string TestFilter,
    string ArtifactsDirectory,
    ProcessArgumentBuilder PassThrough)
{
    public static BuildData From(ICakeContext context)
    {
        string configuration = context.Argument("configuration", "Release");
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
            passThrough);
    }
}
