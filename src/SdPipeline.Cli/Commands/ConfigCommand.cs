using System.CommandLine;
using Newtonsoft.Json;
using SdPipeline.Config;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe config</c>: the effective config, or every key with its default and meaning.</summary>
internal static class ConfigCommand
{
    private static readonly Option<bool> Defaults = new("--defaults") { Description = "List every key with its type, accepted values, default and description." };
    private static readonly Option<bool> Markdown = new("--markdown") { Description = "With --defaults: one Markdown table per section (as in the README)." };

    public static Command Create()
    {
        var command = new Command("config", "Print the effective config (after --set), or with --defaults every key documented.") { Defaults, Markdown };
        command.SetAction(result =>
        {
            if (result.GetValue(Defaults) && result.GetValue(Markdown))
            {
                Console.Write(ConfigDocumentation.Markdown());
                return ExitCodes.Success;
            }
            if (result.GetValue(Defaults))
            {
                foreach (var key in ConfigSchema.Keys)
                {
                    string allowed = key.AllowedValues.Count > 0 ? $" [{string.Join(", ", key.AllowedValues)}]" : "";
                    Console.WriteLine($"{key.Path} ({key.TypeAndRange}{allowed}) = {key.Default.ToString(Formatting.None)}");
                    Console.WriteLine($"    {key.Description}");
                }
                return ExitCodes.Success;
            }
            Console.WriteLine(GlobalOptions.LoadConfig(result).Json.ToString(Formatting.Indented));
            return ExitCodes.Success;
        });
        return command;
    }
}
