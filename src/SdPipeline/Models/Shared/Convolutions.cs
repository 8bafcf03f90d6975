using System.Collections;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>How the models call their 3×3 convolutions.</summary>
public static class Convolutions
{
    /// <summary>
    /// <paramref name="convolution"/> applied to <paramref name="input"/>. In inference (<paramref name="inference"/>:
    /// the caller is in eval mode with autograd off) a 3×3, stride-1 convolution of a channels-last float32 input on an
    /// AVX-512 CPU runs as <see cref="WinogradConvolution"/> unless a hook watches the layer (a LoRA adapter, a FLOP
    /// counter); otherwise the layer is called as it is.
    /// </summary>
    public static Tensor Apply(nn.Module<Tensor, Tensor> convolution, Tensor input, bool inference) =>
        inference && convolution is Conv2d conv && WinogradConvolution.Applies(input, conv) && !HasHooks(conv)
            ? WinogradConvolution.Convolve(input, conv)
            : convolution.call(input);

    // TorchSharp 0.107 keeps a module's hooks in protected dictionaries and says nothing of them publicly. A TorchSharp
    // without these fields counts as hooked, so a layer is never taken from its hooks.
    private static readonly FieldInfo[] HookFields = FindHookFields();

    private static FieldInfo[] FindHookFields()
    {
        var hookable = typeof(nn.Module<Tensor, Tensor>).BaseType;
        string[] names = ["pre_hooks", "post_hooks", "module_pre_hooks", "module_post_hooks"];
        var fields = names.Select(n => hookable?.GetField(n, BindingFlags.Instance | BindingFlags.NonPublic))
            .OfType<FieldInfo>().Where(f => typeof(ICollection).IsAssignableFrom(f.FieldType)).ToArray();
        return fields.Length == names.Length ? fields : [];
    }

    /// <summary>Whether a forward hook or pre-hook is registered on <paramref name="module"/> (true when that cannot be told).</summary>
    internal static bool HasHooks(nn.Module<Tensor, Tensor> module) =>
        HookFields.Length == 0 || HookFields.Any(f => f.GetValue(module) is ICollection { Count: > 0 });
}
