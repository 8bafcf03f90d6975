using System.Collections;
using System.Reflection;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Frees the tensors a custom autograd function saved for backward once its backward has run, as libtorch does for its
/// own nodes. libtorch's engine calls <c>release_variables</c> on every node after running it (unless the graph is
/// retained); TorchSharp 0.107's native node for custom functions does not implement it, so the tensors its
/// <c>AutogradContext</c> saved live until the node itself is destroyed: with the whole graph, after backward. In a
/// training step that keeps every such layer's saved activations to the end of backward, where the gradients are all
/// allocated and the step's memory peaks (docs/performance.md: +0.07 GiB at 512 px for the training attention kernel).
/// </summary>
/// <remarks>
/// The saved variables are TorchSharp's private <c>AutogradContext._savedVariables</c>, found by reflection; a TorchSharp
/// without that field makes <see cref="Release"/> return false, which the tests catch (memory is then freed with the
/// graph, as before). A second backward through a released node finds no saved tensors; nothing in the project retains
/// a graph.
/// </remarks>
internal static class SavedTensors
{
    private static readonly FieldInfo? SavedVariables =
        typeof(autograd.AutogradContext).GetField("_savedVariables", BindingFlags.NonPublic | BindingFlags.Instance);

    private static long s_released;

    /// <summary>How many contexts <see cref="Release"/> has emptied in this process.</summary>
    public static long Released => Interlocked.Read(ref s_released);

    /// <summary>Frees what <paramref name="ctx"/> saved; false if this TorchSharp keeps its saved tensors elsewhere.</summary>
    public static bool Release(autograd.AutogradContext ctx)
    {
        if (SavedVariables?.GetValue(ctx) is not IList saved) return false;
        lock (saved)
        {
            foreach (var variable in saved) (variable as IDisposable)?.Dispose();
            saved.Clear();
        }
        Interlocked.Increment(ref s_released);
        return true;
    }
}
