using System.CommandLine;
using SdPipeline.Runtime;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe doctor</c>: proves the tensor runtime works here, with a real operation.</summary>
internal static class DoctorCommand
{
    public static Command Create()
    {
        var command = new Command("doctor", "Load libtorch, run a matmul with a known answer, and print versions, device and threads.");
        command.SetAction(result =>
        {
            var config = GlobalOptions.LoadConfig(result).Typed.Runtime;
            var device = TorchRuntime.Initialise(config.Device, config.Threads);
            var facts = TorchRuntime.Probe(device);
            Console.WriteLine($"TorchSharp:      {facts.TorchSharpVersion}");
            Console.WriteLine($"libtorch:        {facts.LibTorchVersion}");
            Console.WriteLine($"device:          {facts.Device} (CUDA available: {(facts.CudaAvailable ? "yes" : "no")})");
            Console.WriteLine($"threads:         {facts.Threads}");
            Console.WriteLine($"matmul 512³:     {facts.MatmulGflops:0.0} GFLOP/s, result {(facts.CheckPassed ? "correct" : "WRONG")}");
            return facts.CheckPassed ? ExitCodes.Success : ExitCodes.StageFailure;
        });
        return command;
    }
}
